"""Writes of the finance app: datasets, training, policy, scores, replay, batches, monitoring.

Every service validates its input (raising `core.errors` domain errors), writes in one
transaction together with its audit event, and enqueues work on commit.
"""

from __future__ import annotations

import csv
import hashlib
import re
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from apps.finance.choices import (
    BATCH_JOB_KIND,
    DEFAULT_MODEL_NAME,
    MODEL_KIND,
    MONITORING_JOB_KIND,
    ColumnRole,
    ColumnType,
    Decision,
    DecisionSource,
)
from apps.finance.csv_ingest import MAX_CATEGORIES, profile_csv, read_row_chunks, sniff_format
from apps.finance.ml import CreditModel, resolve_params
from apps.finance.models import CreditDataset, CreditDecision, CreditPolicy, MonitoringSnapshot, ScoringBatch
from apps.finance.scorecard import PolicySnapshot
from apps.finance.scoring import score_matrix
from apps.finance.selectors import credit_model_get, decision_get, policy_get, policy_snapshot, serving_version
from apps.finance.stability import MIN_DECISIONS, band, column_index
from core.audit.context import request_id_var
from core.audit.services import audit_record
from core.errors import Conflict, PayloadTooLarge, PermissionDenied, ValidationFailed
from core.jobs.runner import job_enqueue
from core.tenancy.actors import Actor
from core.tenancy.choices import Scope
from ml.models import ModelVersion, TrainingRun
from ml.runtime import load_version
from ml.services import model_alias_set
from ml.training import training_run_create

BATCH_CHUNK_ROWS = 5_000
MONITORING_MAX_DECISIONS = 50_000
APPLICATION_ID_COLUMNS = ("application_id", "app_id", "id")
_REASON_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,50}$")


def _require_admin(actor: Actor, what: str) -> None:
    """Org admins in the portal; API keys need the `ml` scope (the platform's admin scope)."""
    if actor.api_key is not None:
        if not actor.has_scope(Scope.ML):
            raise PermissionDenied(f"{what} needs an API key with the 'ml' scope.")
    elif not actor.is_org_admin:
        raise PermissionDenied(f"Only organization admins may {what.lower()}.")


def _check_size(upload: UploadedFile) -> None:
    limit = settings.API_MAX_UPLOAD_BYTES
    if upload.size is not None and upload.size > limit:
        raise PayloadTooLarge(f"The file is larger than the {limit // (1024 * 1024)} MB limit.")


def _file_sha256(upload: UploadedFile) -> str:
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


# --- Datasets --------------------------------------------------------------------------------------


def dataset_create(
    *, actor: Actor, upload: UploadedFile, name: str, target: str, positive_label: str = ""
) -> CreditDataset:
    """Profile an uploaded CSV (streaming), then store it with its inferred schema.

    Nothing is stored when the file is rejected: profiling runs on the upload's own temporary
    file before the copy into storage.
    """
    _check_size(upload)
    upload.seek(0)
    profile = profile_csv(upload.file, target=target, positive_label=positive_label)  # type: ignore[arg-type]
    sha256 = _file_sha256(upload)
    path = default_storage.save(f"finance/org-{actor.organization.pk}/datasets/{uuid.uuid4().hex}.csv", upload)
    try:
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
    except Exception:
        default_storage.delete(path)
        raise
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
        _require_admin(actor, "Promoting on creation")
    run = training_run_create(
        actor=actor,
        model_name=model_name,
        kind=MODEL_KIND,
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
    _require_admin(actor, "Promoting a model")
    credit_model_get(org=actor.organization, name=name)
    alias = model_alias_set(actor=actor, name=name, alias="production", version_number=version_number, reason=reason)
    return alias.version


# --- Policy ----------------------------------------------------------------------------------------


@transaction.atomic
def policy_update(*, actor: Actor, **fields: Any) -> CreditPolicy:
    """Change the organization's scaling and cut-offs (org admins). Audited with before/after."""
    _require_admin(actor, "Changing the credit policy")
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


def _loaded(version: ModelVersion) -> CreditModel:
    model: CreditModel = load_version(version).model
    return model


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
    version = serving_version(org=actor.organization, name=model_name, number=version_number)
    model = _loaded(version)
    matrix = model.encoder.encode_record(features)
    policy = policy_snapshot(policy_get(org=actor.organization))
    scored = score_matrix(model, matrix, policy, explain_all=explain, inputs=[features])
    with transaction.atomic():
        decision = CreditDecision.objects.create(
            organization=actor.organization,
            application_id=application_id,
            model_version=version,
            model_name=version.registered_model.name,
            model_version_number=version.number,
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


def batch_results_read(*, actor: Actor, batch: ScoringBatch) -> ScoringBatch:
    """Allow a download of a finished batch's results (credit decisions: the read is audited)."""
    if not batch.results_path:
        raise Conflict("The batch has no results yet; poll its job until it has succeeded.", code="not_ready")
    audit_record(actor=actor, action="finance.batch.results_read", obj=batch, details={"rows": batch.rows})
    return batch


def decision_replay(*, actor: Actor, decision: CreditDecision) -> dict[str, Any]:
    """Re-score a logged decision with its own version, inputs and policy; report any difference."""
    version = decision.model_version
    model = _loaded(version)
    if decision.source == DecisionSource.BATCH:
        # Batch inputs were text cells: replay through the same frame encoder the batch used.
        frame = pd.DataFrame([decision.inputs], dtype=object)
        matrix, row_errors = model.encoder.encode_frame(frame)
        if row_errors[0]:
            raise ValidationFailed(f"Logged inputs no longer validate: {row_errors[0]}", code="replay_failed")
    else:
        matrix = model.encoder.encode_record(decision.inputs)
    policy = PolicySnapshot.from_dict(decision.policy)
    scored = score_matrix(model, matrix, policy, explain_all=bool(decision.reason_codes), inputs=[decision.inputs])
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


# --- Batches ---------------------------------------------------------------------------------------


def batch_create(*, actor: Actor, upload: UploadedFile, model_name: str | None = None, name: str = "") -> ScoringBatch:
    """Check a batch CSV's header against the model and enqueue it on the `inference` queue.

    The version and policy are fixed now, so every row of the batch is scored alike.
    """
    _check_size(upload)
    version = serving_version(org=actor.organization, name=model_name)
    model = _loaded(version)
    upload.seek(0)
    fmt = sniff_format(upload.file)  # type: ignore[arg-type]
    header = set(fmt.header)
    missing = [s.name for s in model.features if s.name not in header and not s.missing_allowed]
    if missing:
        message = f"The file lacks required feature columns: {', '.join(missing)}."
        raise ValidationFailed(message, code="missing_columns", fields={"file": [message]})
    if not header & set(model.encoder.names):
        message = "The file has none of the model's feature columns."
        raise ValidationFailed(message, code="missing_columns", fields={"file": [message]})
    rows = max(sum(chunk.count(b"\n") for chunk in upload.chunks()) - 1, 0)
    upload.seek(0)
    path = default_storage.save(f"finance/org-{actor.organization.pk}/batches/{uuid.uuid4().hex}.csv", upload)
    try:
        with transaction.atomic():
            job = job_enqueue(actor=actor, kind=BATCH_JOB_KIND, params={})
            batch = ScoringBatch.objects.create(
                organization=actor.organization,
                job=job,
                model_version=version,
                name=(name or upload.name or "batch")[:200],
                input_path=path,
                rows=rows,
                policy=policy_snapshot(policy_get(org=actor.organization)).as_dict(),
                created_by=actor.user,
            )
            job.params = {"batch_id": batch.pk}
            job.save(update_fields=["params", "updated_at"])
            audit_record(
                actor=actor,
                action="finance.batch.create",
                obj=batch,
                details={"model": version.registered_model.name, "version": version.number, "rows": rows},
            )
    except Exception:
        default_storage.delete(path)
        raise
    return batch


def batch_execute(*, batch_id: int, report: Callable[..., None]) -> dict[str, Any]:
    """Score every row of a batch in chunks; a bad row gets an error, never fails the batch.

    Idempotent: decisions are keyed by (batch, row), so a re-run after a crash inserts only
    the rows missing, and the results file is rewritten whole.
    """
    batch = ScoringBatch.objects.select_related("model_version__registered_model", "job", "organization").get(
        pk=batch_id
    )
    version = batch.model_version
    model = _loaded(version)
    policy = PolicySnapshot.from_dict(batch.policy)
    actor = Actor.system(batch.organization, user=batch.created_by)
    started = time.perf_counter()
    counts: Counter[str] = Counter()
    error_examples: list[dict[str, Any]] = []
    scored_rows = 0
    row_number = 0
    with (
        default_storage.open(batch.input_path, "rb") as handle,
        tempfile.NamedTemporaryFile("w", newline="", suffix=".csv", delete=False) as out,
    ):
        fmt = sniff_format(handle)
        id_column = next((c for c in APPLICATION_ID_COLUMNS if c in fmt.header), None)
        used = [c for c in fmt.header if c in model.encoder.index]
        ignored = [c for c in fmt.header if c not in model.encoder.index and c != id_column]
        writer = csv.writer(out)
        writer.writerow(
            [
                "row",
                "application_id",
                "probability_of_default",
                "score",
                "decision",
                "reason_codes",
                "decision_id",
                "error",
            ]
        )
        usecols = used + ([id_column] if id_column and id_column not in used else [])
        for parsed in read_row_chunks(handle, fmt, usecols=usecols, chunk_rows=BATCH_CHUNK_ROWS):
            chunk = parsed.frame
            first_row = row_number + 1
            row_number += len(chunk)
            app_ids = (
                chunk[id_column].fillna("").astype(str).tolist()
                if id_column
                else [f"{batch.pk}-{n}" for n in range(first_row, row_number + 1)]
            )
            matrix, errors = model.encoder.encode_frame(chunk[used])
            # A malformed row's own parse error replaces whatever its (untrusted) cells gave.
            errors = [parse_error or error for parse_error, error in zip(parsed.errors, errors, strict=True)]
            ok = np.array([not e for e in errors], dtype=bool)
            records = chunk[used].astype(object).where(chunk[used].notna(), None).to_dict("records")
            ok_rows = np.flatnonzero(ok)
            scored = score_matrix(model, matrix[ok_rows], policy, inputs=[records[i] for i in ok_rows])
            decisions = []
            results: list[list[Any]] = [[] for _ in range(len(chunk))]
            for j, i in enumerate(ok_rows):
                decision = CreditDecision(
                    # Deterministic per (batch, row): a re-run after a crash names the same decisions.
                    id=uuid.uuid5(uuid.NAMESPACE_URL, f"tessera:finance:batch:{batch.pk}:row:{first_row + i}"),
                    organization_id=batch.organization_id,
                    application_id=app_ids[i][:200] or f"{batch.pk}-{first_row + i}",
                    model_version=version,
                    model_name=version.registered_model.name,
                    model_version_number=version.number,
                    artifact_sha256=version.artifact_sha256,
                    inputs=records[i],
                    log_odds_default=float(scored.log_odds[j]),
                    probability_of_default=float(scored.probability_of_default[j]),
                    score=int(scored.scores[j]),
                    decision=str(scored.decisions[j]),
                    reason_codes=scored.reasons[j] or [],
                    policy=batch.policy,
                    source=DecisionSource.BATCH,
                    batch=batch,
                    batch_row=first_row + int(i),
                    actor_label=actor.label,
                    actor_user=batch.created_by,
                )
                decisions.append(decision)
                counts[decision.decision] += 1
                results[i] = [
                    first_row + i,
                    decision.application_id,
                    f"{decision.probability_of_default:.6f}",
                    decision.score,
                    decision.decision,
                    ";".join(r["code"] for r in decision.reason_codes),
                    str(decision.pk),
                    "",
                ]
            for i in np.flatnonzero(~ok):
                counts["error"] += 1
                if len(error_examples) < 20:
                    error_examples.append({"row": first_row + int(i), "error": errors[i]})
                app_id = app_ids[i][:200] or f"{batch.pk}-{first_row + i}"
                results[i] = [first_row + i, app_id, "", "", "", "", "", errors[i]]
            # ignore_conflicts: rows a previous (crashed) execution already logged stay as they were.
            CreditDecision.objects.bulk_create(decisions, batch_size=1000, ignore_conflicts=True)
            writer.writerows(results)
            scored_rows += len(decisions)
            report(
                progress=min(row_number / max(batch.rows, 1), 0.99),
                message=f"{row_number} of ~{batch.rows} rows scored",
            )
        temp_name = out.name
    seconds = time.perf_counter() - started
    results_path = f"finance/org-{batch.organization_id}/batches/{batch.pk}-results.csv"
    if default_storage.exists(results_path):
        default_storage.delete(results_path)
    with open(temp_name, "rb") as results_file:
        results_path = default_storage.save(results_path, File(results_file))
    Path(temp_name).unlink(missing_ok=True)
    summary = {
        "rows": row_number,
        "scored": scored_rows,
        "errors": counts.get("error", 0),
        "decisions": {d: counts.get(d, 0) for d in Decision.values},
        "error_examples": error_examples,
        "ignored_columns": ignored,
        "application_id_column": id_column,
        "model": {"name": version.registered_model.name, "version": version.number},
        "seconds": round(seconds, 3),
        "rows_per_second": round(row_number / seconds, 1) if seconds else None,
    }
    with transaction.atomic():
        batch.rows = row_number
        batch.summary = summary
        batch.results_path = results_path
        batch.save(update_fields=["rows", "summary", "results_path", "updated_at"])
        audit_record(
            actor=actor,
            action="finance.batch.scored",
            obj=batch,
            details={k: summary[k] for k in ("rows", "scored", "errors", "decisions")},
        )
    return summary


# --- Monitoring ------------------------------------------------------------------------------------


def monitoring_report(
    *, actor: Actor, name: str, window_days: int = 30, version_number: int | None = None
) -> dict[str, Any]:
    """PSI of the score and CSI of every feature: recent decisions of the version vs its training baseline."""
    org = actor.organization
    version = serving_version(org=org, name=name, number=version_number)
    schema = version.input_schema
    end = timezone.now()
    start = end - timedelta(days=window_days)
    rows = list(
        CreditDecision.objects.filter(
            organization=org, model_version=version, created_at__gte=start, created_at__lt=end
        )
        .order_by("-created_at")
        .values_list("log_odds_default", "inputs")[:MONITORING_MAX_DECISIONS]
    )
    report: dict[str, Any] = {
        "model": name,
        "version": version.number,
        "window_days": window_days,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "decisions": len(rows),
        "score_psi": None,
        "band": band(None),
        "features": [],
        "bands": {"stable": "< 0.10", "watch": "0.10 - 0.25", "act": "> 0.25"},
    }
    if len(rows) < MIN_DECISIONS or "score_baseline" not in schema:
        report["message"] = f"At least {MIN_DECISIONS} decisions in the window are needed."
        return report
    log_odds = np.array([r[0] for r in rows], dtype=np.float64)
    score_psi = column_index(schema["score_baseline"], log_odds)
    model = _loaded(version)
    frame = pd.DataFrame([r[1] for r in rows], columns=model.encoder.names, dtype=object)
    matrix, _ = model.encoder.encode_frame(frame, strict=False)
    features = []
    for i, spec in enumerate(schema["features"]):
        if "baseline" not in spec:
            continue
        value = column_index(spec["baseline"], matrix[:, i].astype(np.float64))
        features.append({"feature": spec["name"], "csi": round(value, 6), "band": band(value)})
    features.sort(key=lambda f: -f["csi"])
    report.update(score_psi=round(score_psi, 6), band=band(score_psi), features=features)
    return report


def monitoring_snapshot_create(
    *, actor: Actor, name: str, window_days: int = 30, job_id: int | None = None
) -> MonitoringSnapshot:
    """Compute and store a monitoring report (the `finance.monitoring` job; keyed by job)."""
    if job_id is not None:
        existing = MonitoringSnapshot.objects.filter(job_id=job_id).first()
        if existing is not None:
            return existing
    report = monitoring_report(actor=actor, name=name, window_days=window_days)
    version = serving_version(org=actor.organization, name=name, number=report["version"])
    with transaction.atomic():
        snapshot = MonitoringSnapshot.objects.create(
            organization=actor.organization,
            model_version=version,
            model_name=name,
            window_days=window_days,
            window_start=report["window_start"],
            window_end=report["window_end"],
            decisions=report["decisions"],
            score_psi=report["score_psi"],
            band=report["band"],
            report=report,
            job_id=job_id,
        )
        audit_record(
            actor=actor,
            action="finance.monitoring.snapshot",
            obj=snapshot,
            details={"psi": snapshot.score_psi, "band": snapshot.band},
        )
    return snapshot


@transaction.atomic
def monitoring_enqueue(*, actor: Actor, name: str, window_days: int = 30) -> Any:
    """Enqueue a monitoring snapshot job for credit model `name`."""
    credit_model_get(org=actor.organization, name=name)
    job = job_enqueue(actor=actor, kind=MONITORING_JOB_KIND, params={"model": name, "window_days": window_days})
    audit_record(actor=actor, action="finance.monitoring.enqueue", obj=job, details={"model": name})
    return job
