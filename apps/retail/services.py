"""Retail writes: settings, the A/B traffic split, training runs and the precomputed top-N export.

Ingest lives in `apps.retail.ingest`, serving in `apps.retail.serving`, the online A/B report in
`apps.retail.reports`.
"""

from __future__ import annotations

import csv
import io
import itertools
import tempfile
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from django.core.files.base import File
from django.db import transaction

from apps.retail import selectors
from apps.retail.choices import (
    DEFAULT_EVENT_WEIGHTS,
    DEFAULT_MODEL_NAME,
    DOMAIN,
    KIND_OF_ALGORITHM,
    PRECOMPUTE_JOB_KIND,
    Algorithm,
)
from apps.retail.ingest import EVENT_TYPE
from apps.retail.models import Customer, RecommendationExport, RetailSettings, TrafficSplit
from apps.retail.serving import Filters, customers_recommend_batch
from core.audit.services import audit_record
from core.errors import ValidationFailed
from core.jobs.runner import job_enqueue, job_params_set
from core.storage import media_name, stored_files
from core.tenancy.actors import Actor
from ml.kinds import get_kind
from ml.models import ModelAlias, TrainingRun
from ml.selectors import registered_model_get
from ml.training import training_run_create

MAX_EVENT_TYPES = 50
PRECOMPUTE_BATCH = 1000
PRECOMPUTE_SPOOL_BYTES = 8 * 1024 * 1024  # the export's CSV in memory up to this, then on disk


@transaction.atomic
def settings_update(
    *, actor: Actor, event_weights: Mapping[str, float] | None = None, fallback_days: int | None = None
) -> RetailSettings:
    """Change the confidence per event type (applies to the next training run and to serving at once)."""
    actor.require_org_admin("change the retail settings", key_scope=DOMAIN)
    current, _ = RetailSettings.objects.get_or_create(organization=actor.organization)
    if event_weights is not None:
        errors = [
            f"{name}: a lower-case type name and a weight in [0, 1000]"
            for name, weight in event_weights.items()
            if not EVENT_TYPE.match(str(name))
            or isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not 0 <= weight <= 1000
        ]
        if errors or len(event_weights) > MAX_EVENT_TYPES:
            raise ValidationFailed("Invalid event weights.", fields={"event_weights": errors or ["Too many types."]})
        current.event_weights = {str(name): float(weight) for name, weight in event_weights.items()}
    if fallback_days is not None:
        current.fallback_days = fallback_days
    current.updated_by = actor.user
    current.save()
    audit_record(
        actor=actor,
        action="retail.settings.update",
        obj=current,
        details={
            "event_weights": {**DEFAULT_EVENT_WEIGHTS, **current.event_weights},
            "fallback_days": current.fallback_days,
        },
    )
    selectors.popular_cache_clear()
    _serving_settings_changed()
    return current


@transaction.atomic
def traffic_split_set(*, actor: Actor, model_name: str, weights: Mapping[str, int]) -> TrafficSplit | None:
    """Share `model_name`'s traffic between aliases (percentages summing to 100); `{}` removes the split.

    Every alias named must exist on the model, so no customer is ever sent to nothing.
    """
    actor.require_org_admin("split recommendation traffic", key_scope=DOMAIN)
    model = registered_model_get(org=actor.organization, name=model_name, domain=DOMAIN)
    if not weights:
        TrafficSplit.objects.filter(organization=actor.organization, model_name=model.name).delete()
        audit_record(actor=actor, action="retail.traffic_split.clear", obj=model, details={})
        _serving_settings_changed()
        return None
    bad = [
        f"{alias}: a whole percentage in [0, 100]"
        for alias, share in weights.items()
        if isinstance(share, bool) or not isinstance(share, int) or not 0 <= share <= 100
    ]
    if bad:
        raise ValidationFailed("Invalid traffic split.", fields={"weights": bad})
    if sum(weights.values()) != 100:
        raise ValidationFailed(
            f"The shares must add up to 100 (they add up to {sum(weights.values())}).",
            fields={"weights": ["Must add up to 100."]},
        )
    existing = set(ModelAlias.objects.filter(registered_model=model).values_list("name", flat=True))
    missing = sorted(set(weights) - existing)
    if missing:
        raise ValidationFailed(
            f"Model {model.name!r} has no alias {', '.join(missing)}; set it first.",
            code="unknown_alias",
            fields={"weights": [f"No such alias: {alias}." for alias in missing]},
        )
    split, _ = TrafficSplit.objects.update_or_create(
        organization=actor.organization,
        model_name=model.name,
        defaults={
            "weights": {alias: int(share) for alias, share in weights.items() if share},
            "updated_by": actor.user,
        },
    )
    audit_record(actor=actor, action="retail.traffic_split.set", obj=model, details={"weights": split.weights})
    _serving_settings_changed()
    return split


def _serving_settings_changed() -> None:
    """This process answers with the change at once (others within ML_SERVING_CACHE_SECONDS)."""
    selectors.serving_settings_clear()
    transaction.on_commit(selectors.serving_settings_clear)


def training_start(
    *,
    actor: Actor,
    model_name: str = DEFAULT_MODEL_NAME,
    algorithm: str = Algorithm.AUTO,
    params: Mapping[str, Any] | None = None,
    since: datetime | None = None,
    promote: bool = True,
) -> TrainingRun:
    """Enqueue a training run on the organization's events (the `training` queue).

    The parameters are validated now (a bad grid is a 400, not a failed job); `promote` (the
    default, like finance) makes the new version `production`, which only an org admin may do.
    """
    if algorithm not in Algorithm.values:
        raise ValidationFailed(
            f"Unknown algorithm {algorithm!r}.", fields={"algorithm": [f"One of {Algorithm.values}."]}
        )
    kind_name = KIND_OF_ALGORITHM[Algorithm(algorithm)]
    resolved = dict(params or {})
    kind = get_kind(kind_name)
    kind.candidates(resolved)  # type: ignore[attr-defined]  # every retail kind is a RecommenderKind
    if promote:
        actor.require_org_admin("promote a model on creation", key_scope=DOMAIN)
    with transaction.atomic():
        run = training_run_create(
            actor=actor,
            model_name=model_name,
            kind=kind_name,
            data={"since": since.isoformat() if since else None},
            params=resolved,
            promote=promote,
        )
        audit_record(
            actor=actor,
            action="retail.training.start",
            obj=run,
            details={"model": model_name, "algorithm": algorithm, "promote": promote},
        )
    return run


# --- Precomputed top-N for every customer (e-mail campaigns) --------------------------------------


@transaction.atomic
def precompute_start(*, actor: Actor, model_name: str = "", alias: str = "", n: int = 10) -> RecommendationExport:
    job = job_enqueue(actor=actor, kind=PRECOMPUTE_JOB_KIND)
    export = RecommendationExport.objects.create(
        organization=actor.organization, job=job, model_name=model_name, n=n, created_by=actor.user
    )
    job_params_set(job=job, params={"export_id": export.pk, "alias": alias})
    audit_record(actor=actor, action="retail.precompute.start", obj=export, details={"model": model_name, "n": n})
    return export


def precompute_execute(*, export_id: int, actor: Actor, alias: str, report: Callable[..., None]) -> dict[str, Any]:
    """Write `customer,rank,item,score,source,recomm_id` rows for every customer, in batches.

    The CSV goes to a temporary file (in memory only up to `PRECOMPUTE_SPOOL_BYTES`) and is then
    stored as it is: a shop of millions of customers is never held whole in memory.
    """
    export = RecommendationExport.objects.get(pk=export_id)
    everyone = Customer.objects.filter(organization=export.organization).order_by("external_id")
    total = everyone.count()
    version_number = None
    done = 0
    with tempfile.SpooledTemporaryFile(max_size=PRECOMPUTE_SPOOL_BYTES, mode="w+b") as spool:
        text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(["customer", "rank", "item", "title", "score", "source", "recomm_id"])
        for batch in _batched(everyone.values_list("external_id", flat=True).iterator(chunk_size=PRECOMPUTE_BATCH)):
            answers = customers_recommend_batch(
                actor=actor, customers=batch, filters=Filters(n=export.n), model=export.model_name, alias=alias
            )
            for customer, answer in answers:
                if answer.version is not None:
                    version_number = answer.version.number
                writer.writerows(
                    [
                        customer,
                        rank,
                        shown.id,
                        shown.title,
                        "" if shown.score is None else shown.score,
                        shown.source,
                        answer.recomm_id,
                    ]
                    for rank, shown in enumerate(answer.items, start=1)
                )
            done += len(batch)
            report(progress=min(done / max(total, 1), 0.99), message=f"{done:,} customers")
        text.flush()
        text.detach()  # the spool stays open for storing
        spool.seek(0)
        with stored_files() as files, transaction.atomic():
            name = files.save(
                media_name(org_id=export.organization_id, domain=DOMAIN, folder="exports", suffix=".csv"), File(spool)
            )
            RecommendationExport.objects.filter(pk=export.pk).update(
                file_path=name, customers=done, model_version_number=version_number
            )
    return {"export_id": export.pk, "customers": done, "model_version": version_number}


def _batched(ids: Iterator[str]) -> Iterator[list[str]]:
    while batch := list(itertools.islice(ids, PRECOMPUTE_BATCH)):
        yield batch
