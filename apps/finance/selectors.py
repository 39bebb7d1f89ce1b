"""Org-scoped reads of the finance app. Another organization's row is "not found", never forbidden."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from apps.finance.choices import DEFAULT_MODEL_NAME, MODEL_KIND
from apps.finance.models import CreditDataset, CreditDecision, CreditPolicy, MonitoringSnapshot, ScoringBatch
from apps.finance.scorecard import PolicySnapshot
from core.errors import NotFound, ValidationFailed
from core.tenancy.models import Organization
from ml.choices import PRODUCTION_ALIAS
from ml.models import ModelAlias, ModelVersion, RegisteredModel
from ml.selectors import model_version_get, model_version_get_by_alias, registered_model_get


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


def credit_model_list(*, org: Organization) -> QuerySet[RegisteredModel]:
    return RegisteredModel.objects.filter(organization=org, kind=MODEL_KIND).prefetch_related("versions", "aliases")


def credit_model_get(*, org: Organization, name: str) -> RegisteredModel:
    model = registered_model_get(org=org, name=name)
    if model.kind != MODEL_KIND:
        raise NotFound(f"Model {name!r} is not a credit model.")
    return model


# Large JSON columns a score never reads: the loaded model (cached per process) carries the
# schema and encoder, and `manifest` is fetched lazily on the rare cache miss that loads it.
_NOT_NEEDED_TO_SCORE = ("params", "metrics", "model_card", "input_schema", "manifest")


def serving_version(*, org: Organization, name: str | None = None, number: int | None = None) -> ModelVersion:
    """The version a score uses: `name`'s production version (or version `number`).

    Without a name: the model called `credit-risk`, else the organization's most recently
    promoted credit model. This is on the single-score hot path: one small query when the
    version exists; the detailed not-found answers are worked out only on a miss.
    """
    if not name:
        names = list(
            ModelAlias.objects.filter(
                registered_model__organization=org, registered_model__kind=MODEL_KIND, name=PRODUCTION_ALIAS
            )
            .order_by("-updated_at")
            .values_list("registered_model__name", flat=True)
        )
        if not names:
            raise NotFound("This organization has no production credit model yet: train one first.", code="no_model")
        name = DEFAULT_MODEL_NAME if DEFAULT_MODEL_NAME in names else names[0]
    versions = (
        ModelVersion.objects.select_related("registered_model")
        .defer(*_NOT_NEEDED_TO_SCORE)
        .filter(registered_model__organization=org, registered_model__name=name, registered_model__kind=MODEL_KIND)
    )
    if number is not None:
        version = versions.filter(number=number).first()
    else:
        version = versions.filter(aliases__name=PRODUCTION_ALIAS).first()
    if version is not None:
        return version
    credit_model_get(org=org, name=name)  # not found, or not a credit model
    if number is not None:
        return model_version_get(org=org, name=name, number=number)
    return model_version_get_by_alias(org=org, name=name, alias=PRODUCTION_ALIAS)


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
    credit_model_get(org=org, name=name)
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
