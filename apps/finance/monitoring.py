"""Drift monitoring of credit models: PSI of the score and CSI of every feature.

Read: `monitoring_report` (a selector: recent decisions of a version against the baseline the
version recorded when it was trained). Writes: `monitoring_snapshot_create` stores a report (the
`finance.monitoring` job, keyed by job) and `monitoring_enqueue` starts that job.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.db import transaction
from django.utils import timezone

from apps.finance.choices import DOMAIN, MONITORING_JOB_KIND
from apps.finance.models import CreditDecision, MonitoringSnapshot
from apps.finance.scoring import credit_encoder
from apps.finance.selectors import credit_version_get
from apps.finance.stability import MIN_DECISIONS, band, column_index
from core.audit.services import audit_record
from core.jobs.models import Job
from core.jobs.runner import job_enqueue
from core.tenancy.actors import Actor
from core.tenancy.models import Organization
from ml.selectors import registered_model_get

MONITORING_MAX_DECISIONS = 50_000


# --- Read ---------------------------------------------------------------------------------------------


def monitoring_report(
    *, org: Organization, name: str, window_days: int = 30, version_number: int | None = None
) -> dict[str, Any]:
    """PSI of the score and CSI of every feature: recent decisions of the version vs its training baseline.

    Args:
        org: the organization; another organization's model is not found.
        name: the finance model; `version_number` a version of it (default: production).
        window_days: how far back the decisions compared are.
    """
    version = credit_version_get(org=org, name=name, number=version_number, defer=())
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
    encoder = credit_encoder(version)
    frame = pd.DataFrame([r[1] for r in rows], columns=encoder.names, dtype=object)
    matrix, _ = encoder.encode_frame(frame, strict=False)
    features = []
    for i, spec in enumerate(schema["features"]):
        if "baseline" not in spec:
            continue
        value = column_index(spec["baseline"], matrix[:, i].astype(np.float64))
        features.append({"feature": spec["name"], "csi": round(value, 6), "band": band(value)})
    features.sort(key=lambda f: -f["csi"])
    report.update(score_psi=round(score_psi, 6), band=band(score_psi), features=features)
    return report


# --- Writes -------------------------------------------------------------------------------------------


def monitoring_snapshot_create(
    *, actor: Actor, name: str, window_days: int = 30, job_id: int | None = None
) -> MonitoringSnapshot:
    """Compute and store a monitoring report (the `finance.monitoring` job; keyed by job)."""
    if job_id is not None:
        existing = MonitoringSnapshot.objects.filter(job_id=job_id).first()
        if existing is not None:
            return existing
    report = monitoring_report(org=actor.organization, name=name, window_days=window_days)
    version = credit_version_get(org=actor.organization, name=name, number=report["version"])
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
def monitoring_enqueue(*, actor: Actor, name: str, window_days: int = 30) -> Job:
    """Enqueue a monitoring snapshot job for credit model `name`."""
    registered_model_get(org=actor.organization, name=name, domain=DOMAIN)
    job = job_enqueue(actor=actor, kind=MONITORING_JOB_KIND, params={"model": name, "window_days": window_days})
    audit_record(actor=actor, action="finance.monitoring.enqueue", obj=job, details={"model": name})
    return job
