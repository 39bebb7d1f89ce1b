"""What the model-registry pages plot: headline metrics per version (drawn by `core.portal.charts`)."""

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
