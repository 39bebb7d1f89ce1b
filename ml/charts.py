"""What model pages plot, for every kind: headline metrics per version, ROC curves, reliability
(calibration) diagrams. Drawn by `core.portal.charts`; a domain maps its metrics onto these."""

from __future__ import annotations

import math
from collections.abc import Sequence

from django.utils.safestring import SafeString

from core.portal.charts import XYChart
from ml.models import ModelVersion
from ml.presenters import headline_metrics


def metrics_per_version_chart(versions: Sequence[ModelVersion], *, limit: int = 4) -> SafeString | None:
    """One line per headline metric of the newest version, across versions; None below two points.

    Metrics are plotted as stored (no rescaling), so the chart compares versions, not metrics.
    """
    newest = max(versions, key=lambda v: v.number, default=None)
    if newest is None:
        return None
    names = [name for name, _ in headline_metrics(newest.metrics, limit=limit)]
    chart = XYChart(title="Metrics per version", x_label="Version", y_label="Value", width=480, max_width=560)
    plotted = False
    for name in names:
        points = [
            (v.number, float(v.metrics[name]))
            for v in sorted(versions, key=lambda v: v.number)
            if isinstance(v.metrics.get(name), (int, float)) and math.isfinite(v.metrics[name])
        ]
        if len(points) >= 2:
            chart.line(points, label=name, markers=True, point_titles=[f"v{n} {name}: {y:.4g}" for n, y in points])
            plotted = True
    return chart.render() if plotted else None


def roc_chart(curves: Sequence[tuple[str, Sequence[Sequence[float]]]]) -> SafeString:
    """ROC curves [(label, [[fpr, tpr], ...]), ...] with the chance diagonal."""
    chart = XYChart(
        title="ROC curve", x_label="False positive rate", y_label="True positive rate", x_range=(0, 1), y_range=(0, 1)
    )
    chart.line([(0, 0), (1, 1)], colour_name="silver", dashed=True)
    for label, points in curves:
        chart.line(points, label=label)
    return chart.render()


def reliability_chart(
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    top: float = 1.0,
) -> SafeString:
    """Observed rate (y) against predicted probability (x) per bin, one line per series, against
    the diagonal of a perfectly calibrated model; both axes run from 0 to `top`."""
    chart = XYChart(title=title, x_label=x_label, y_label=y_label, x_range=(0, top), y_range=(0, top))
    chart.line([(0, 0), (top, top)], colour_name="silver", dashed=True)
    for label, points in series:
        chart.line(points, label=label, markers=True)
    return chart.render()
