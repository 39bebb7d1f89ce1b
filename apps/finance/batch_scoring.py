"""Scoring batches: a CSV of applications checked and enqueued, then scored in chunks by a job.

    batch_create      check the header against the model, store the file, enqueue `finance.batch_score`
    batch_execute     the job: read chunks → encode → score (through `ml.runtime`) → log decisions
                      → write the results CSV → store it with the summary
    batch_results_read  allow (and audit) the download of a finished batch's results

The model version and the policy are fixed when the batch is created, so every row is scored
alike and a job that runs twice after a crash scores the same way; decisions are keyed by
(batch, row), so a re-run inserts only the rows missing and rewrites the results file whole.
"""

from __future__ import annotations

import csv
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from apps.finance.choices import BATCH_JOB_KIND, DOMAIN, Decision, DecisionSource
from apps.finance.csv_ingest import RowChunk, read_row_chunks, sniff_format, upload_size_check
from apps.finance.feature_encoding import FeatureEncoder
from apps.finance.models import CreditDecision, ScoringBatch
from apps.finance.scorecard import PolicySnapshot
from apps.finance.scoring import credit_encoder, score_matrix
from apps.finance.selectors import credit_version_get, policy_get, policy_snapshot
from core.audit.services import audit_record
from core.errors import Conflict, ValidationFailed
from core.jobs.runner import job_enqueue, job_params_set
from core.storage import media_name, scratch_directory, storage_delete, stored_files
from core.tenancy.actors import Actor
from ml.models import ModelVersion, served_by

BATCH_CHUNK_ROWS = 5_000
APPLICATION_ID_COLUMNS = ("application_id", "app_id", "id")
RESULT_COLUMNS = (
    "row",
    "application_id",
    "probability_of_default",
    "score",
    "decision",
    "reason_codes",
    "decision_id",
    "error",
)
MAX_ERROR_EXAMPLES = 20


# --- Creating a batch ----------------------------------------------------------------------------------


def batch_create(*, actor: Actor, upload: UploadedFile, model_name: str | None = None, name: str = "") -> ScoringBatch:
    """Check a batch CSV's header against the model and enqueue it on the `inference` queue.

    The version and policy are fixed now, so every row of the batch is scored alike. Nothing is
    stored when the file is refused, and a failed write deletes the stored copy again.
    """
    upload_size_check(upload)
    version = credit_version_get(org=actor.organization, name=model_name)
    upload.seek(0)
    fmt = sniff_format(upload.file)  # type: ignore[arg-type]  # UploadedFile.file is Optional in the stubs; an upload always has one
    _header_check(set(fmt.header), credit_encoder(version))
    rows = max(sum(chunk.count(b"\n") for chunk in upload.chunks()) - 1, 0)
    upload.seek(0)
    with stored_files() as files:
        path = files.save(
            media_name(org_id=actor.organization.pk, domain=DOMAIN, folder="batches", suffix=".csv"), upload
        )
        with transaction.atomic():
            job = job_enqueue(actor=actor, kind=BATCH_JOB_KIND)
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
            # The batch points at its job (one-to-one), so the job exists first and learns the
            # batch id before the commit sends it.
            job_params_set(job=job, params={"batch_id": batch.pk})
            audit_record(
                actor=actor,
                action="finance.batch.create",
                obj=batch,
                details={"model": version.registered_model.name, "version": version.number, "rows": rows},
            )
    return batch


def _header_check(header: set[str], encoder: FeatureEncoder) -> None:
    missing = [s.name for s in encoder.features if s.name not in header and not s.missing_allowed]
    if missing:
        message = f"The file lacks required feature columns: {', '.join(missing)}."
        raise ValidationFailed(message, code="missing_columns", fields={"file": [message]})
    if not header & set(encoder.names):
        message = "The file has none of the model's feature columns."
        raise ValidationFailed(message, code="missing_columns", fields={"file": [message]})


# --- Executing a batch (the `finance.batch_score` job) ------------------------------------------------------


@dataclass(frozen=True)
class BatchColumns:
    """How a batch file's header maps onto the model: the id column, the features used, the rest."""

    id_column: str | None
    used: list[str]
    ignored: list[str]

    @classmethod
    def of(cls, header: list[str], encoder: FeatureEncoder) -> BatchColumns:
        id_column = next((c for c in APPLICATION_ID_COLUMNS if c in header), None)
        return cls(
            id_column=id_column,
            used=[c for c in header if c in encoder.index],
            ignored=[c for c in header if c not in encoder.index and c != id_column],
        )

    @property
    def to_read(self) -> list[str]:
        return self.used + ([self.id_column] if self.id_column and self.id_column not in self.used else [])


@dataclass
class BatchTally:
    """What the chunks scored so far add up to."""

    rows: int = 0
    scored: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    error_examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class BatchScoring:
    """Everything fixed for the whole batch: the batch, its version, encoder, policy and actor."""

    batch: ScoringBatch
    version: ModelVersion
    encoder: FeatureEncoder
    policy: PolicySnapshot
    actor: Actor


def batch_execute(*, batch_id: int, report: Callable[..., None]) -> dict[str, Any]:
    """Score every row of a batch in chunks; a bad row gets an error, never fails the batch.

    Idempotent: decisions are keyed by (batch, row), so a re-run after a crash inserts only
    the rows missing, and the results file is rewritten whole.
    """
    scoring = _batch_scoring(batch_id)
    batch = scoring.batch
    started = time.perf_counter()
    tally = BatchTally()
    with (
        default_storage.open(batch.input_path, "rb") as handle,
        scratch_directory(prefix=f"batch-{batch.pk}-") as scratch,
    ):
        results_file = scratch / "results.csv"
        with results_file.open("w", newline="") as out:
            fmt = sniff_format(handle)
            columns = BatchColumns.of(fmt.header, scoring.encoder)
            writer = csv.writer(out)
            writer.writerow(RESULT_COLUMNS)
            for parsed in read_row_chunks(handle, fmt, usecols=columns.to_read, chunk_rows=BATCH_CHUNK_ROWS):
                first_row = tally.rows + 1
                tally.rows += len(parsed.frame)
                decisions, results = _chunk_score(scoring, parsed, columns, first_row=first_row, tally=tally)
                # ignore_conflicts: rows a previous (crashed) execution already logged stay as they were.
                CreditDecision.objects.bulk_create(decisions, batch_size=1000, ignore_conflicts=True)
                writer.writerows(results)
                tally.scored += len(decisions)
                report(
                    progress=min(tally.rows / max(batch.rows, 1), 0.99),
                    message=f"{tally.rows} of ~{batch.rows} rows scored",
                )
        summary = _summary(scoring, tally, columns, seconds=time.perf_counter() - started)
        _batch_finish(scoring, summary=summary, results_file=results_file)
    return summary


def _batch_scoring(batch_id: int) -> BatchScoring:
    batch = ScoringBatch.objects.select_related("model_version__registered_model", "job", "organization").get(
        pk=batch_id
    )
    return BatchScoring(
        batch=batch,
        version=batch.model_version,
        encoder=credit_encoder(batch.model_version),
        policy=PolicySnapshot.from_dict(batch.policy),
        actor=Actor.system(batch.organization, user=batch.created_by),
    )


def _chunk_score(
    scoring: BatchScoring, parsed: RowChunk, columns: BatchColumns, *, first_row: int, tally: BatchTally
) -> tuple[list[CreditDecision], list[list[Any]]]:
    """Score one chunk: the decisions to log and one results-CSV line per row (in file order)."""
    batch, chunk = scoring.batch, parsed.frame
    app_ids = _application_ids(batch, chunk[columns.id_column] if columns.id_column else None, first_row, len(chunk))
    features = chunk[columns.used]
    matrix, errors = scoring.encoder.encode_frame(features)
    # A malformed row's own parse error replaces whatever its (untrusted) cells gave.
    errors = [parse_error or error for parse_error, error in zip(parsed.errors, errors, strict=True)]
    ok = np.array([not e for e in errors], dtype=bool)
    records = features.astype(object).where(features.notna(), None).to_dict("records")
    ok_rows = np.flatnonzero(ok)
    scored = score_matrix(scoring.version, matrix[ok_rows], scoring.policy, inputs=[records[i] for i in ok_rows])
    served = served_by(scoring.version)
    decisions = []
    results: list[list[Any]] = [[] for _ in range(len(chunk))]
    for j, i in enumerate(ok_rows):
        decision = CreditDecision(
            # Deterministic per (batch, row): a re-run after a crash names the same decisions.
            id=uuid.uuid5(uuid.NAMESPACE_URL, f"tessera:finance:batch:{batch.pk}:row:{first_row + i}"),
            organization_id=batch.organization_id,
            application_id=app_ids[i],
            **served,
            artifact_sha256=scoring.version.artifact_sha256,
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
            actor_label=scoring.actor.label,
            actor_user=batch.created_by,
        )
        decisions.append(decision)
        tally.counts[decision.decision] += 1
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
        tally.counts["error"] += 1
        if len(tally.error_examples) < MAX_ERROR_EXAMPLES:
            tally.error_examples.append({"row": first_row + int(i), "error": errors[i]})
        results[i] = [first_row + i, app_ids[i], "", "", "", "", "", errors[i]]
    return decisions, results


def _application_ids(batch: ScoringBatch, column: Any, first_row: int, rows: int) -> list[str]:
    """Each row's application id: the file's id column when it has one, else `<batch>-<row>`."""
    given = column.fillna("").astype(str).tolist() if column is not None else [""] * rows
    return [value[:200] or f"{batch.pk}-{first_row + n}" for n, value in enumerate(given)]


def _summary(scoring: BatchScoring, tally: BatchTally, columns: BatchColumns, *, seconds: float) -> dict[str, Any]:
    return {
        "rows": tally.rows,
        "scored": tally.scored,
        "errors": tally.counts.get("error", 0),
        "decisions": {d: tally.counts.get(d, 0) for d in Decision.values},
        "error_examples": tally.error_examples,
        "ignored_columns": columns.ignored,
        "application_id_column": columns.id_column,
        "model": {"name": scoring.version.registered_model.name, "version": scoring.version.number},
        "seconds": round(seconds, 3),
        "rows_per_second": round(tally.rows / seconds, 1) if seconds else None,
    }


def _batch_finish(scoring: BatchScoring, *, summary: dict[str, Any], results_file: Path) -> None:
    """Store the results file and the summary on the batch (audited); replace a crashed run's file."""
    batch, previous = scoring.batch, scoring.batch.results_path
    with stored_files() as files:
        with results_file.open("rb") as results:
            results_path = files.save(
                media_name(org_id=batch.organization_id, domain=DOMAIN, folder="batches", suffix=".csv"), results
            )
        with transaction.atomic():
            batch.rows = summary["rows"]
            batch.summary = summary
            batch.results_path = results_path
            batch.save(update_fields=["rows", "summary", "results_path", "updated_at"])
            audit_record(
                actor=scoring.actor,
                action="finance.batch.scored",
                obj=batch,
                details={k: summary[k] for k in ("rows", "scored", "errors", "decisions")},
            )
    if previous and previous != results_path:
        storage_delete([previous])  # the results of an earlier execution of this batch


# --- Reading results ---------------------------------------------------------------------------------


def batch_results_read(*, actor: Actor, batch: ScoringBatch) -> ScoringBatch:
    """Allow a download of a finished batch's results (credit decisions: the read is audited)."""
    if not batch.results_path:
        raise Conflict("The batch has no results yet; poll its job until it has succeeded.", code="not_ready")
    audit_record(actor=actor, action="finance.batch.results_read", obj=batch, details={"rows": batch.rows})
    return batch
