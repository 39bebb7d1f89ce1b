"""What the operations page shows per model: requests per minute by serving version, p50/p99
latency and error rate over time, read from the per-minute `PredictionRollup` rows of one
organization, and drawn with `core.portal.charts`.

Windows longer than two hours are drawn in coarser steps (5, 15 or 60 minutes) so a chart keeps
a few hundred points at most; rates stay "per minute" (a step's count divided by its minutes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.safestring import SafeString

from core.portal.charts import XYChart
from core.telemetry.rollups import latency_quantile_ms, merged_buckets
from core.tenancy.models import Organization
from ml.models import PredictionRollup, RegisteredModel

WINDOW_HOURS = (1, 6, 24, 72)
DEFAULT_WINDOW_HOURS = 6


def window_hours(raw: str | None) -> int:
    """The `?hours=` of the page: one of WINDOW_HOURS, else the default."""
    try:
        hours = int(raw or DEFAULT_WINDOW_HOURS)
    except ValueError:
        return DEFAULT_WINDOW_HOURS
    return hours if hours in WINDOW_HOURS else DEFAULT_WINDOW_HOURS


def step_minutes(hours: int) -> int:
    return 1 if hours <= 2 else 5 if hours <= 6 else 15 if hours <= 24 else 60


@dataclass
class _Step:
    count: int = 0
    errors: int = 0
    latency_max: float = 0.0
    buckets: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class VersionServed:
    """One version (through one alias) that served the model in the window."""

    number: int
    alias: str
    calls: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None

    @property
    def label(self) -> str:
        return f"v{self.number}" + (f" ({self.alias})" if self.alias else " (pinned)")


@dataclass(frozen=True)
class ModelOperations:
    """The operations of one model in the window, with its charts."""

    model: RegisteredModel
    calls: int
    errors: int
    versions: list[VersionServed]
    requests_svg: SafeString
    latency_svg: SafeString
    errors_svg: SafeString

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


def model_operations(*, org: Organization, hours: int, now: datetime | None = None) -> list[ModelOperations]:
    """Per model of `org` that served in the last `hours`: its series and charts (org-scoped)."""
    now = now or timezone.now()
    since = now - timedelta(hours=hours)
    step = step_minutes(hours)
    rows = (
        PredictionRollup.objects.filter(organization=org, minute__gte=since)
        .select_related("registered_model", "version")
        .order_by("minute")
    )
    by_model: dict[int, list[PredictionRollup]] = {}
    for row in rows:
        by_model.setdefault(row.registered_model_id, []).append(row)
    result = []
    for model_rows in by_model.values():
        result.append(_one_model(model_rows, now=now, step=step, hours=hours))
    return sorted(result, key=lambda ops: ops.model.name)


def _x(minute: datetime, now: datetime, step: int) -> float:
    """Minutes before now at the start of the row's step (negative: the x axis ends at 0, now)."""
    minutes_ago = (now - minute).total_seconds() / 60
    return -float(int(minutes_ago // step) * step)


def _one_model(rows: Sequence[PredictionRollup], *, now: datetime, step: int, hours: int) -> ModelOperations:
    model = rows[0].registered_model
    per_version: dict[tuple[int, str], dict[float, _Step]] = {}
    overall: dict[float, _Step] = {}
    totals: dict[tuple[int, str], _Step] = {}
    for row in rows:
        x = _x(row.minute, now, step)
        key = (row.version.number, row.alias)
        for target in (per_version.setdefault(key, {}).setdefault(x, _Step()), overall.setdefault(x, _Step())):
            _add(target, row)
        _add(totals.setdefault(key, _Step()), row)
    x_range = (-float(hours * 60), 0.0)
    x_label = f"Minutes before now (steps of {step} min)" if step > 1 else "Minutes before now"

    requests = XYChart(title="Requests per minute", x_label=x_label, y_label="Calls / min", width=480, max_width=560)
    requests.x_range = x_range
    versions = []
    for (number, alias), steps in sorted(per_version.items()):
        served = _served(number, alias, totals[(number, alias)])
        versions.append(served)
        points = [(x, s.count / step) for x, s in sorted(steps.items())]
        requests.line(points, label=served.label, markers=len(points) < 40)

    latency = XYChart(title="Latency p50 / p99", x_label=x_label, y_label="ms", width=480, max_width=560)
    latency.x_range = x_range
    errors = XYChart(title="Error rate", x_label=x_label, y_label="% of calls", width=480, max_width=560)
    errors.x_range = x_range
    errors.y_range = (0.0, 100.0)
    ordered = sorted(overall.items())
    p50 = [(x, latency_quantile_ms(s.buckets, 0.5, maximum=s.latency_max)) for x, s in ordered]
    p99 = [(x, latency_quantile_ms(s.buckets, 0.99, maximum=s.latency_max)) for x, s in ordered]
    few = len(ordered) < 40
    latency.line([(x, y) for x, y in p50 if y is not None], label="p50", colour_name="blue", markers=few)
    latency.line([(x, y) for x, y in p99 if y is not None], label="p99", colour_name="orange", markers=few)
    errors.area([(x, 100.0 * s.errors / s.count if s.count else 0.0) for x, s in ordered], label="errors")
    calls = sum(s.count for s in totals.values())
    failed = sum(s.errors for s in totals.values())
    return ModelOperations(
        model=model,
        calls=calls,
        errors=failed,
        versions=versions,
        requests_svg=requests.render(),
        latency_svg=latency.render(),
        errors_svg=errors.render(),
    )


def _add(target: _Step, row: PredictionRollup) -> None:
    target.count += row.count
    target.errors += row.errors
    target.latency_max = max(target.latency_max, row.latency_ms_max)
    target.buckets = merged_buckets(target.buckets, row.latency_buckets)


def _served(number: int, alias: str, total: _Step) -> VersionServed:
    return VersionServed(
        number=number,
        alias=alias,
        calls=total.count,
        errors=total.errors,
        p50_ms=latency_quantile_ms(total.buckets, 0.5, maximum=total.latency_max),
        p99_ms=latency_quantile_ms(total.buckets, 0.99, maximum=total.latency_max),
    )
