"""Reads on the model registry, always inside one organization (another org's model is 'not found')."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Prefetch, QuerySet

from core.errors import NotFound
from core.tenancy.models import Organization
from ml.choices import PRODUCTION_ALIAS
from ml.models import ModelAlias, ModelAliasEvent, ModelVersion, RegisteredModel, TrainingRun
from ml.telemetry import PINNED, alias_note


def _of_kind(models: QuerySet[RegisteredModel], *, kind: str | None, domain: str | None) -> QuerySet[RegisteredModel]:
    if kind:
        models = models.filter(kind=kind)
    if domain:
        models = models.filter(kind__startswith=f"{domain}.")
    return models


def registered_model_list(
    *, org: Organization, kind: str | None = None, domain: str | None = None
) -> QuerySet[RegisteredModel]:
    """The organization's models with versions and aliases prefetched; only `kind`'s or `domain`'s when given."""
    models = RegisteredModel.objects.filter(organization=org).prefetch_related(
        Prefetch("versions", queryset=ModelVersion.objects.order_by("-number")),
        Prefetch("aliases", queryset=ModelAlias.objects.select_related("version")),
    )
    return _of_kind(models, kind=kind, domain=domain)


def registered_model_get(
    *, org: Organization, name: str, kind: str | None = None, domain: str | None = None
) -> RegisteredModel:
    """Model `name` of the organization.

    With `kind` (exact) or `domain` (any kind of that domain), a model of another kind is
    "not found" too: the one answer every domain gives, so a finance endpoint neither serves
    nor discloses a traffic model.
    """
    try:
        return registered_model_list(org=org, kind=kind, domain=domain).get(name=name)
    except RegisteredModel.DoesNotExist as exc:
        raise NotFound(_not_found_message(name, kind=kind, domain=domain)) from exc


def _not_found_message(name: str, *, kind: str | None, domain: str | None) -> str:
    if kind:
        return f"No {kind} model {name!r}."
    if domain:
        return f"No {domain} model {name!r}."
    return f"Model {name!r} not found."


# JSON columns serving never reads: the loaded model (cached per process) carries what predict
# needs, and `manifest` is fetched lazily on the rare cache miss that loads the artifact.
NOT_NEEDED_TO_SERVE = ("metrics", "model_card", "manifest")


def _last_moved(versions: QuerySet[ModelVersion], *, alias: str) -> ModelVersion | None:
    return versions.filter(aliases__name=alias).order_by("-aliases__updated_at", "-pk").first()


# "Which version serves" per process, for ML_SERVING_CACHE_SECONDS: after the request itself the
# lookup is the largest cost of a single prediction (about 1 ms on SQLite). An alias move clears
# this process's answers at once (`serving_cache_clear`, on commit); other processes follow within
# the TTL. Every row a prediction writes records the version that produced it, so the record stays
# exact either way. Only found versions are kept, never a not-found answer.
_serving_cache: dict[tuple[Any, ...], tuple[float, ModelVersion]] = {}
_serving_lock = threading.Lock()


def serving_cache_clear() -> None:
    """Forget this process's serving answers (an alias moved, or a test starts)."""
    with _serving_lock:
        _serving_cache.clear()


def serving_version_get(
    *,
    org: Organization,
    name: str | None = None,
    number: int | None = None,
    alias: str = PRODUCTION_ALIAS,
    kind: str | None = None,
    domain: str | None = None,
    default_name: str = "",
    defer: tuple[str, ...] = NOT_NEEDED_TO_SERVE,
) -> ModelVersion:
    """The version a prediction uses: version `number` of model `name`, else what `alias` points at.

    Answers are reused by this process for `ML_SERVING_CACHE_SECONDS` (see `_serving_cache`).

    Without a name: `default_name` when it has the alias, else the organization's model of this
    kind/domain whose alias moved last. On the hot path this is one small query (no ORDER BY from
    the models' default orderings, which would join the organization), whether or not a name is
    given; the precise not-found answer (no model, wrong kind, no such version, no alias) is
    worked out only on a miss. A model of another kind or domain is not found.
    """
    ttl = float(getattr(settings, "ML_SERVING_CACHE_SECONDS", 0) or 0)
    key = (org.pk, name or "", number, alias, kind or "", domain or "", default_name, defer)
    if ttl > 0:
        with _serving_lock:
            cached = _serving_cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < ttl:
            alias_note(cached[1].pk, alias if number is None else PINNED, organization_id=org.pk, slug=org.slug)
            return cached[1]
    version = _serving_version_lookup(
        org=org, name=name, number=number, alias=alias, kind=kind, domain=domain, default_name=default_name, defer=defer
    )
    if ttl > 0:
        with _serving_lock:
            _serving_cache[key] = (time.monotonic(), version)
    # for the serving telemetry: the runtime records which alias this version was served through
    alias_note(version.pk, alias if number is None else PINNED, organization_id=org.pk, slug=org.slug)
    return version


def _serving_version_lookup(
    *,
    org: Organization,
    name: str | None,
    number: int | None,
    alias: str,
    kind: str | None,
    domain: str | None,
    default_name: str,
    defer: tuple[str, ...],
) -> ModelVersion:
    versions = (
        ModelVersion.objects.select_related("registered_model").defer(*defer).filter(registered_model__organization=org)
    )
    if kind:
        versions = versions.filter(registered_model__kind=kind)
    if domain:
        versions = versions.filter(registered_model__kind__startswith=f"{domain}.")
    if name:
        versions = versions.filter(registered_model__name=name)
        if number is not None:
            version = versions.filter(number=number).order_by().first()
        else:
            version = versions.filter(aliases__name=alias).order_by().first()
    else:
        # the default model when it serves (a plain lookup, the cheapest), else the model whose
        # alias moved last; a number then picks that version of the serving model
        version = None
        if default_name:
            version = versions.filter(registered_model__name=default_name, aliases__name=alias).order_by().first()
        if version is None:
            version = _last_moved(versions, alias=alias)
        if version is None:
            what = kind or (f"{domain} " if domain else "") + "model"
            raise NotFound(f"This organization has no {alias} {what} yet: train or import one first.", code="no_model")
        if number is not None:
            name = version.registered_model.name
            version = versions.filter(registered_model__name=name, number=number).order_by().first()
    if version is not None:
        return version
    assert name  # narrowed: every nameless miss has raised or taken the default's name above
    registered_model_get(org=org, name=name, kind=kind, domain=domain)  # not found, or another kind
    if number is not None:
        return model_version_get(org=org, name=name, number=number)
    return model_version_get_by_alias(org=org, name=name, alias=alias)


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


def training_run_get(*, org: Organization, run_id: int | str, domain: str | None = None) -> TrainingRun:
    """A training run of the organization; with `domain`, a run of another domain's kind is not found too."""
    runs = TrainingRun.objects.select_related("registered_model", "job").filter(organization=org)
    if domain:
        runs = runs.filter(kind__startswith=f"{domain}.")
    try:
        return runs.get(pk=run_id)
    except (TrainingRun.DoesNotExist, ValueError, TypeError) as exc:
        raise NotFound("Training run not found.") from exc
