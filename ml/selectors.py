"""Reads on the model registry, always inside one organization (another org's model is 'not found')."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Prefetch, QuerySet

from core.errors import NotFound
from core.tenancy.models import Organization
from ml.choices import PRODUCTION_ALIAS
from ml.models import ModelAlias, ModelAliasEvent, ModelVersion, RegisteredModel, TrainingRun


def registered_model_list(*, org: Organization, kind: str | None = None) -> QuerySet[RegisteredModel]:
    models = RegisteredModel.objects.filter(organization=org).prefetch_related(
        Prefetch("versions", queryset=ModelVersion.objects.order_by("-number")),
        Prefetch("aliases", queryset=ModelAlias.objects.select_related("version")),
    )
    if kind:
        models = models.filter(kind=kind)
    return models


def registered_model_get(*, org: Organization, name: str) -> RegisteredModel:
    try:
        return registered_model_list(org=org).get(name=name)
    except RegisteredModel.DoesNotExist as exc:
        raise NotFound(f"Model {name!r} not found.") from exc


def model_version_get(*, org: Organization, name: str, number: int) -> ModelVersion:
    try:
        return ModelVersion.objects.select_related("registered_model").get(
            registered_model__organization=org, registered_model__name=name, number=number
        )
    except (ModelVersion.DoesNotExist, ValueError) as exc:
        raise NotFound(f"Model {name!r} has no version {number}.") from exc


def model_version_get_by_id(*, org: Organization, version_id: int) -> ModelVersion:
    try:
        return ModelVersion.objects.select_related("registered_model").get(
            registered_model__organization=org, pk=version_id
        )
    except (ModelVersion.DoesNotExist, ValueError) as exc:
        raise NotFound("Model version not found.") from exc


def model_version_get_by_alias(*, org: Organization, name: str, alias: str = PRODUCTION_ALIAS) -> ModelVersion:
    """The version `alias` points at, e.g. the production version serving uses by default."""
    alias_row = (
        ModelAlias.objects.select_related("version__registered_model")
        .filter(registered_model__organization=org, registered_model__name=name, name=alias)
        .first()
    )
    if alias_row is None:
        registered_model_get(org=org, name=name)  # 404 for the model itself first
        raise NotFound(f"Model {name!r} has no {alias!r} version.", code="no_alias")
    return alias_row.version


def model_alias_history(*, org: Organization, name: str, alias: str | None = None) -> QuerySet[ModelAliasEvent]:
    model = registered_model_get(org=org, name=name)
    events = ModelAliasEvent.objects.filter(registered_model=model).select_related("from_version", "to_version")
    if alias:
        events = events.filter(alias=alias)
    return events


def model_version_live_at(
    *, org: Organization, name: str, at: datetime, alias: str = PRODUCTION_ALIAS
) -> ModelVersion | None:
    """Which version `alias` pointed at on `at` (None if the alias did not exist yet)."""
    event = (
        model_alias_history(org=org, name=name, alias=alias)
        .filter(created_at__lte=at)
        .order_by("-created_at", "-id")
        .first()
    )
    return event.to_version if event else None


def training_run_get(*, org: Organization, run_id: int) -> TrainingRun:
    try:
        return TrainingRun.objects.select_related("registered_model", "job").get(organization=org, pk=run_id)
    except (TrainingRun.DoesNotExist, ValueError) as exc:
        raise NotFound("Training run not found.") from exc
