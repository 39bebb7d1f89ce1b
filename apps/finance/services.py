"""Writes of the finance app: datasets, training and promotion, policy, scores and the decision log.

Every service validates its input (raising `core.errors` domain errors), writes in one
transaction together with its audit event, and enqueues work on commit. Batches live in
`apps.finance.batch_scoring`, drift monitoring in `apps.finance.monitoring`; every score goes
through `apps.finance.scoring` and so through `ml.runtime`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from apps.finance.choices import DEFAULT_MODEL_NAME, DOMAIN, MODEL_KIND, ColumnRole, ColumnType, DecisionSource
from apps.finance.csv_ingest import MAX_CATEGORIES, profile_csv, upload_size_check
from apps.finance.ml import resolve_params
from apps.finance.models import CreditDataset, CreditDecision, CreditPolicy
from apps.finance.scorecard import PolicySnapshot
from apps.finance.scoring import credit_encoder, score_matrix
from apps.finance.selectors import credit_version_get, decision_get, policy_get, policy_snapshot
from core.audit.context import request_id_var
from core.audit.services import audit_record
from core.errors import ValidationFailed
from core.storage import file_sha256, media_name, stored_files
from core.tenancy.actors import Actor
from ml.models import ModelVersion, TrainingRun, served_by
from ml.selectors import registered_model_get
from ml.services import model_alias_set
from ml.training import training_run_create

_REASON_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,50}$")


# --- Datasets --------------------------------------------------------------------------------------


def dataset_create(
    *, actor: Actor, upload: UploadedFile, name: str, target: str, positive_label: str = ""
) -> CreditDataset:
    """Profile an uploaded CSV (streaming), then store it with its inferred schema.

    Nothing is stored when the file is rejected: profiling runs on the upload's own temporary
    file before the copy into storage, and a failed write deletes the copy again.
    """
    upload_size_check(upload)
    upload.seek(0)
    profile = profile_csv(upload.file, target=target, positive_label=positive_label)  # type: ignore[arg-type]  # UploadedFile.file is Optional in the stubs; an upload always has one
    sha256 = file_sha256(upload.chunks())
    with stored_files() as files:
        path = files.save(
            media_name(org_id=actor.organization.pk, domain=DOMAIN, folder="datasets", suffix=".csv"), upload
        )
        with transaction.atomic():
            dataset = CreditDataset.objects.create(
                organization=actor.organization,
                name=(name or upload.name or "dataset")[:200],
                file_path=path,
                file_size=upload.size or 0,
                sha256=sha256,
                rows=profile.rows,
                target=target.strip(),
                positive_label=profile.positive_label,
                positive_rate=profile.positive_rate,
                schema=profile.schema,
                issues=profile.issues,
                created_by=actor.user,
            )
            audit_record(
                actor=actor,
                action="finance.dataset.create",
                obj=dataset,
                details={"name": dataset.name, "rows": dataset.rows, "sha256": sha256},
            )
    return dataset


@transaction.atomic
def dataset_schema_update(
    *, actor: Actor, dataset: CreditDataset, columns: Sequence[Mapping[str, Any]]
) -> CreditDataset:
    """Apply analyst edits to the schema: type, role (feature/excluded), description, reason code, bounds.

    Edits apply to future training runs; trained versions keep the schema they were trained with.
    """
    schema = [dict(c) for c in dataset.schema]
    by_name = {c["name"]: c for c in schema}
    errors: dict[str, list[str]] = {}
    changes: dict[str, dict[str, Any]] = {}
    for edit in columns:
        name = edit.get("name")
        column = by_name.get(str(name))
        key = f"columns.{name}"
        if column is None:
            errors[key] = ["No such column."]
            continue
        change: dict[str, Any] = {}
        if "role" in edit or "excluded" in edit:
            role = edit.get("role") or (ColumnRole.EXCLUDED if edit.get("excluded") else ColumnRole.FEATURE)
            if column["role"] == ColumnRole.TARGET or role not in (ColumnRole.FEATURE, ColumnRole.EXCLUDED):
                errors[key] = ["The target's role cannot change; role is 'feature' or 'excluded'."]
                continue
            change["role"] = role
        if "type" in edit and edit["type"] != column["type"]:
            wanted = edit["type"]
            if wanted == ColumnType.NUMERIC and "observed_min" not in column:
                errors[key] = ["The column has non-numeric values; it cannot be numeric."]
                continue
            if wanted == ColumnType.CATEGORICAL and not column.get("categories"):
                errors[key] = [f"More than {MAX_CATEGORIES} distinct values: too many for a categorical feature."]
                continue
            if wanted not in (ColumnType.NUMERIC, ColumnType.CATEGORICAL):
                errors[key] = ["type is 'numeric' or 'categorical'."]
                continue
            change["type"] = wanted
        if "description" in edit:
            change["description"] = str(edit["description"] or "")[:300]
        if "reason_code" in edit:
            code = str(edit["reason_code"] or "")
            if not _REASON_CODE.match(code):
                errors[key] = ["reason_code: 1-50 letters, digits, '_', '-' or '.'."]
                continue
            change["reason_code"] = code
        for bound in ("min", "max"):
            if bound in edit:
                value = edit[bound]
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    errors[key] = [f"{bound} must be a number or null."]
                    break
                change[bound] = value
        if key in errors:
            continue
        low = change.get("min", column.get("min"))
        high = change.get("max", column.get("max"))
        if low is not None and high is not None and low > high:
            errors[key] = ["min must not exceed max."]
            continue
        column.update(change)
        if change:
            changes[column["name"]] = change
    if not errors and not any(c["role"] == ColumnRole.FEATURE for c in schema):
        errors["columns"] = ["At least one feature must remain."]
    if errors:
        raise ValidationFailed("Invalid schema edit.", code="invalid_schema", fields=errors)
    dataset.schema = schema
    dataset.save(update_fields=["schema", "updated_at"])
    audit_record(actor=actor, action="finance.dataset.schema_update", obj=dataset, details={"changes": changes})
    return dataset


# --- Training and promotion --------------------------------------------------------------------------


@transaction.atomic
def training_start(
    *,
    actor: Actor,
    dataset: CreditDataset,
    model_name: str = DEFAULT_MODEL_NAME,
    params: Mapping[str, Any] | None = None,
    promote: bool = False,
) -> TrainingRun:
    """Enqueue a training run of `model_name` on `dataset` (the `training` queue)."""
    resolved = resolve_params(dict(params or {}))
    if promote:
        actor.require_org_admin("promote a model on creation")
    run = training_run_create(
        actor=actor,
        model_name=model_name,
        kind=MODEL_KIND,
        # the run's data reference; `training_data.credit_training_data` materialises it
        data={
            "dataset_id": dataset.pk,
            "organization_id": actor.organization.pk,
            "policy": policy_snapshot(policy_get(org=actor.organization)).as_dict(),
        },
        params=resolved,
        promote=promote,
    )
    audit_record(
        actor=actor,
        action="finance.training.start",
        obj=run,
        details={"dataset": dataset.pk, "model": model_name, "promote": promote},
    )
    return run


def model_promote(*, actor: Actor, name: str, version_number: int, reason: str = "") -> ModelVersion:
    """Point `production` of credit model `name` at a version (org admins; audited by the registry)."""
    actor.require_org_admin("promote models")
    registered_model_get(org=actor.organization, name=name, domain=DOMAIN)
    alias = model_alias_set(actor=actor, name=name, alias="production", version_number=version_number, reason=reason)
    return alias.version


# --- Policy ----------------------------------------------------------------------------------------


@transaction.atomic
def policy_update(*, actor: Actor, **fields: Any) -> CreditPolicy:
    """Change the organization's scaling and cut-offs (org admins). Audited with before/after."""
    actor.require_org_admin("change the credit policy")
    policy = CreditPolicy.objects.select_for_update().filter(organization=actor.organization).first()
    if policy is None:
        policy = CreditPolicy(organization=actor.organization)
    before = policy_snapshot(policy).as_dict()
    allowed = set(before)
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationFailed("Unknown policy fields.", fields={k: ["Unknown field."] for k in sorted(unknown)})
    merged = {**before, **fields}
    errors: dict[str, list[str]] = {}
    if merged["pdo"] <= 0:
        errors["pdo"] = ["Must be positive."]
    if merged["base_odds"] <= 0:
        errors["base_odds"] = ["Must be positive."]
    if merged["decline_below_score"] > merged["approve_min_score"]:
        errors["decline_below_score"] = ["Must not exceed approve_min_score."]
    if errors:
        raise ValidationFailed("Invalid credit policy.", fields=errors)
    for key, value in fields.items():
        setattr(policy, key, value)
    policy.updated_by = actor.user
    policy.save()
    audit_record(actor=actor, action="finance.policy.update", obj=policy, details={"before": before, "after": merged})
    return policy


# --- Scoring, the decision log, replay -----------------------------------------------------------------


def score_create(
    *,
    actor: Actor,
    application_id: str,
    features: Mapping[str, Any],
    model_name: str | None = None,
    version_number: int | None = None,
    explain: bool = False,
    source: str = DecisionSource.API,
) -> CreditDecision:
    """Score one application and log the decision (one INSERT for it, one for the audit event).

    Raises:
        ValidationFailed: features invalid for the model's schema (per-field errors).
        NotFound: no such model/version, or no production credit model.
    """
    version = credit_version_get(org=actor.organization, name=model_name, number=version_number)
    matrix = credit_encoder(version).encode_record(features)
    policy = policy_snapshot(policy_get(org=actor.organization))
    scored = score_matrix(version, matrix, policy, explain_all=explain, inputs=[features])
    with transaction.atomic():
        decision = CreditDecision.objects.create(
            organization=actor.organization,
            application_id=application_id,
            **served_by(version),
            artifact_sha256=version.artifact_sha256,
            inputs=dict(features),
            log_odds_default=float(scored.log_odds[0]),
            probability_of_default=float(scored.probability_of_default[0]),
            score=int(scored.scores[0]),
            decision=str(scored.decisions[0]),
            reason_codes=scored.reasons[0] or [],
            policy=policy.as_dict(),
            source=source,
            actor_label=actor.label,
            actor_user=actor.user,
            request_id=request_id_var.get() or "",
        )
        audit_record(
            actor=actor,
            action="finance.decision.create",
            obj=decision,
            details={"application_id": application_id, "decision": decision.decision, "score": decision.score},
        )
    return decision


def decision_read(*, actor: Actor, decision_id: Any) -> CreditDecision:
    """A decision of the actor's organization; every read is audited (credit records)."""
    decision = decision_get(org=actor.organization, decision_id=decision_id)
    audit_record(actor=actor, action="finance.decision.read", obj=decision)
    return decision


def decisions_read_audit(*, actor: Actor, decision_ids: list[str]) -> None:
    """One audit event for a page of decisions read in a list (with their ids)."""
    if decision_ids:
        audit_record(
            actor=actor,
            action="finance.decision.read",
            object_type="finance.creditdecision",
            object_id="list",
            details={"ids": [str(i) for i in decision_ids]},
        )


def decision_replay(*, actor: Actor, decision: CreditDecision) -> dict[str, Any]:
    """Re-score a logged decision with its own version, inputs and policy; report any difference."""
    version = decision.model_version
    encoder = credit_encoder(version)
    if decision.source == DecisionSource.BATCH:
        # Batch inputs were text cells: replay through the same frame encoder the batch used.
        frame = pd.DataFrame([decision.inputs], dtype=object)
        matrix, row_errors = encoder.encode_frame(frame)
        if row_errors[0]:
            raise ValidationFailed(f"Logged inputs no longer validate: {row_errors[0]}", code="replay_failed")
    else:
        matrix = encoder.encode_record(decision.inputs)
    policy = PolicySnapshot.from_dict(decision.policy)
    scored = score_matrix(version, matrix, policy, explain_all=bool(decision.reason_codes), inputs=[decision.inputs])
    replayed = {
        "probability_of_default": float(scored.probability_of_default[0]),
        "log_odds_default": float(scored.log_odds[0]),
        "score": int(scored.scores[0]),
        "decision": str(scored.decisions[0]),
        "reason_codes": scored.reasons[0] or [],
    }
    original = {
        "probability_of_default": decision.probability_of_default,
        "log_odds_default": decision.log_odds_default,
        "score": decision.score,
        "decision": decision.decision,
        "reason_codes": decision.reason_codes,
    }
    differences = sorted(k for k in original if original[k] != replayed[k])
    reproduced = not differences and version.artifact_sha256 == decision.artifact_sha256
    audit_record(
        actor=actor,
        action="finance.decision.replay",
        obj=decision,
        details={"reproduced": reproduced, "differences": differences},
    )
    return {
        "decision_id": str(decision.pk),
        "reproduced": reproduced,
        "differences": differences,
        "artifact_sha256": version.artifact_sha256,
        "original": original,
        "replayed": replayed,
    }
