"""What the analyst portal plots: ROC, calibration, feature bars, PSI history.

The drawing (frame, axes, ticks, legend, colours, escaping) is `core.portal.charts`; this module
only maps credit-model metrics onto it.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.safestring import SafeString

from core.portal.charts import XYChart, hbar_chart
from ml.charts import reliability_chart
from ml.charts import roc_chart as roc_chart  # the analyst pages' ROC chart is the shared one

# PSI bands: below 0.10 stable, 0.10-0.25 worth a look, above 0.25 a significant shift.
PSI_BANDS = ((0.10, "amber"), (0.25, "red"))


def calibration_chart(series: Sequence[tuple[str, Sequence[dict[str, float]]]]) -> SafeString:
    """Observed default rate vs mean predicted PD per decile, against the diagonal."""
    top = max([0.05] + [max(r["mean_pd"], r["observed_rate"]) for _, rows in series for r in rows])
    return reliability_chart(
        [(label, [(r["mean_pd"], r["observed_rate"]) for r in rows]) for label, rows in series],
        title="Calibration by decile",
        x_label="Mean predicted PD",
        y_label="Observed default rate",
        top=min(1.0, top * 1.1),
    )


def bar_chart(items: Sequence[tuple[str, float]], *, title: str, value_format: str = "{:.1%}") -> SafeString:
    """Horizontal bars (feature importance, CSI per feature), the first 15 items."""
    return hbar_chart(items, title=title, value_format=value_format, max_items=15)


def psi_history_chart(points: Sequence[tuple[str, float]]) -> SafeString:
    """Score PSI per snapshot (oldest first) with the 0.10 and 0.25 band lines; each point names its snapshot."""
    top = max([0.3] + [v for _, v in points]) * 1.1
    chart = XYChart(title="Score PSI over time", x_label="Snapshot", y_label="PSI", y_range=(0, top), x_ticks=False)
    for level, colour_name in PSI_BANDS:
        chart.reference(level, colour_name=colour_name, text=f"{level:.2f}")
    chart.line(
        [(i, value) for i, (_, value) in enumerate(points)],
        markers=True,
        point_titles=[f"{label}: {value:.3f}" for label, value in points],
    )
    return chart.render()
