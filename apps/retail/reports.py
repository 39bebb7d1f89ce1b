"""The online A/B report: attributed clicks, carts and purchases per alias and version, over time.

Definitions (per alias and version, per time bucket and in total):
- impressions: recommendation answers served (one per `recomm_id`, whatever its length);
- clicks / carts / purchases: answers with at least one event of that type carrying their
  `recomm_id` (an answer that led to two purchases converts once);
- CTR = clicks / impressions; conversion = purchases / impressions, each with a Wilson score
  95% interval (it behaves at rates near 0 and for small counts, where the normal one does not).
Events count whenever they arrive; the bucket is the one of the answer that led to them.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.functions import TruncDay, TruncHour, TruncWeek

from apps.retail.models import Event, Recommendation
from core.tenancy.models import Organization

BUCKETS = {"hour": TruncHour, "day": TruncDay, "week": TruncWeek}
Z95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (0, 0 for no trials)."""
    if trials <= 0:
        return 0.0, 0.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _rates(row: Any) -> dict[str, Any]:
    impressions = int(row["impressions"])
    out: dict[str, Any] = {name: int(row[name]) for name in ("impressions", "clicks", "carts", "purchases")}
    for name, numerator in (("ctr", "clicks"), ("conversion", "purchases")):
        low, high = wilson_interval(int(row[numerator]), impressions)
        out[name] = round(int(row[numerator]) / impressions, 6) if impressions else 0.0
        out[f"{name}_ci95"] = [round(low, 6), round(high, 6)]
    return out


def online_report(
    *, org: Organization, model_name: str, start: datetime | None, end: datetime | None, bucket: str = "day"
) -> dict[str, Any]:
    answers = Recommendation.objects.filter(organization=org, model_name=model_name)
    if start is not None:
        answers = answers.filter(created_at__gte=start)
    if end is not None:
        answers = answers.filter(created_at__lt=end)

    def attributed(event_type: str) -> Exists:
        return Exists(Event.objects.filter(organization=org, recomm_id=OuterRef("pk"), type=event_type))

    annotated = answers.annotate(
        clicked=attributed("click"), carted=attributed("cart"), purchased=attributed("purchase")
    ).order_by()
    counts = {
        "impressions": Count("recomm_id"),
        "clicks": Count("recomm_id", filter=Q(clicked=True)),
        "carts": Count("recomm_id", filter=Q(carted=True)),
        "purchases": Count("recomm_id", filter=Q(purchased=True)),
    }
    totals = annotated.values("alias", "model_version_number").annotate(**counts)
    series = (
        annotated.annotate(period=BUCKETS[bucket]("created_at"))
        .values("alias", "model_version_number", "period")
        .annotate(**counts)
        .order_by("period", "alias", "model_version_number")
    )
    arms: dict[tuple[str, int | None], dict[str, Any]] = {}
    for row in totals.order_by("alias", "model_version_number"):
        key = (row["alias"], row["model_version_number"])
        arms[key] = {"alias": row["alias"], "version": row["model_version_number"], **_rates(row), "series": []}
    for row in series:
        key = (row["alias"], row["model_version_number"])
        if key in arms:
            arms[key]["series"].append({"start": row["period"].isoformat(), **_rates(row)})
    return {
        "model": model_name,
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
        "bucket": bucket,
        "definitions": {
            "impressions": "recommendation answers served",
            "clicks": "answers with at least one attributed click",
            "purchases": "answers with at least one attributed purchase",
            "ctr": "clicks / impressions (Wilson 95% interval)",
            "conversion": "purchases / impressions (Wilson 95% interval)",
        },
        "arms": list(arms.values()),
    }
