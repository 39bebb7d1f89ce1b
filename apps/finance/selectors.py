"""Org-scoped reads of the finance app. Another organization's row is "not found", never forbidden.

Models and versions come from the registry's kind-filtered selectors (`ml.selectors`
`registered_model_get/list(domain="finance")`, `serving_version_get`): a model of another
domain is "not found" too, the one answer every domain gives. The monitoring report, a read
that needs the model, lives in `apps.finance.monitoring`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from apps.finance.choices import DEFAULT_MODEL_NAME, DOMAIN
from apps.finance.models import CreditDataset, CreditDecision, CreditPolicy, MonitoringSnapshot, ScoringBatch
from apps.finance.scorecard import PolicySnapshot
from core.errors import NotFound, ValidationFailed
from core.tenancy.models import Organization
from ml.models import ModelVersion, TrainingRun
from ml.selectors import registered_model_get, serving_version_get
from ml.selectors import training_run_get as ml_training_run_get


def dataset_list(*, org: Organization) -> QuerySet[CreditDataset]:
    return CreditDataset.objects.filter(organization=org)


def dataset_get(*, org: Organization, dataset_id: Any) -> CreditDataset:
    try:
        return CreditDataset.objects.get(organization=org, pk=int(dataset_id))
    except (CreditDataset.DoesNotExist, TypeError, ValueError) as exc:
        raise NotFound("Dataset not found.") from exc


def policy_get(*, org: Organization) -> CreditPolicy:
    """The organization's policy; an unsaved default one when it never changed it."""
    policy = CreditPolicy.objects.filter(organization=org).first()
    return policy if policy is not None else CreditPolicy(organization=org)


def policy_snapshot(policy: CreditPolicy) -> PolicySnapshot:
    return PolicySnapshot(
        points_at_base_odds=policy.points_at_base_odds,
        base_odds=policy.base_odds,
        pdo=policy.pdo,
        approve_min_score=policy.approve_min_score,
        decline_below_score=policy.decline_below_score,
    )


# Large JSON columns a score never reads: the loaded model (cached per process) carries the
# schema and encoder, and `manifest` is fetched lazily on the rare cache miss that loads it.
NOT_NEEDED_TO_SCORE = ("params", "metrics", "model_card", "input_schema", "manifest")


def credit_version_get(
    *,
    org: Organization,
    name: str | None = None,
    number: int | None = None,
    defer: tuple[str, ...] = NOT_NEEDED_TO_SCORE,
) -> ModelVersion:
    """The version a score uses: `name`'s production version (or version `number`).

    Without a name: the model called `credit-risk`, else the organization's most recently
    promoted finance model. A model of another domain is not found. On the single-score hot
    path this is one small query (the registry's `serving_version_get`); pass `defer=()` when
    the caller reads the version's metrics or input schema.
    """
    return serving_version_get(
        org=org, name=name, number=number, domain=DOMAIN, default_name=DEFAULT_MODEL_NAME, defer=defer
    )


def training_run_get(*, org: Organization, run_id: Any) -> TrainingRun:
    """A finance training run of the organization; a run of another domain's kind is not found."""
    return ml_training_run_get(org=org, run_id=run_id, domain=DOMAIN)


def decision_list(
    *,
    org: Organization,
    application_id: str | None = None,
    decision: str | None = None,
    model: str | None = None,
    version: int | None = None,
    batch_id: int | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    min_score: int | None = None,
    max_score: int | None = None,
) -> QuerySet[CreditDecision]:
    decisions = CreditDecision.objects.filter(organization=org)
    if application_id:
        decisions = decisions.filter(application_id=application_id)
    if decision:
        decisions = decisions.filter(decision=decision)
    if model:
        decisions = decisions.filter(model_name=model)
    if version is not None:
        decisions = decisions.filter(model_version_number=version)
    if batch_id is not None:
        decisions = decisions.filter(batch_id=batch_id)
    if created_after:
        decisions = decisions.filter(created_at__gte=created_after)
    if created_before:
        decisions = decisions.filter(created_at__lt=created_before)
    if min_score is not None:
        decisions = decisions.filter(score__gte=min_score)
    if max_score is not None:
        decisions = decisions.filter(score__lte=max_score)
    return decisions.order_by("-created_at")


def decision_get(*, org: Organization, decision_id: Any) -> CreditDecision:
    try:
        return CreditDecision.objects.select_related("model_version").get(
            organization=org, pk=uuid.UUID(str(decision_id))
        )
    except (CreditDecision.DoesNotExist, ValueError) as exc:
        raise NotFound("Decision not found.") from exc


def batch_list(*, org: Organization) -> QuerySet[ScoringBatch]:
    return ScoringBatch.objects.filter(organization=org).select_related("job", "model_version__registered_model")


def batch_get(*, org: Organization, batch_id: Any) -> ScoringBatch:
    try:
        return batch_list(org=org).get(pk=int(batch_id))
    except (ScoringBatch.DoesNotExist, TypeError, ValueError) as exc:
        raise NotFound("Batch not found.") from exc


def monitoring_history(*, org: Organization, name: str, limit: int = 50) -> list[MonitoringSnapshot]:
    """The stored snapshots of finance model `name`, newest first (PSI over time)."""
    registered_model_get(org=org, name=name, domain=DOMAIN)
    return list(
        MonitoringSnapshot.objects.filter(organization=org, model_name=name)
        .select_related("model_version")
        .order_by("-created_at")[:limit]
    )


def parse_window_days(raw: Any, default: int = 30) -> int:
    if raw in (None, ""):
        return default
    try:
        days = int(raw)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed("window_days must be an integer.", fields={"window_days": ["Integer."]}) from exc
    if not 1 <= days <= 3650:
        raise ValidationFailed("window_days must be 1..3650.", fields={"window_days": ["1..3650."]})
    return days
