"""What the operator portal plots: counts per category over time, and the camera overlay.

The counts chart is drawn by `core.portal.charts`; the overlay (lines and zones in the frame's
own pixel space, over the camera image) is a drawing rather than a chart, but goes through the
kit's `Svg` too, so its names are escaped the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils.safestring import SafeString

from apps.traffic.choices import Category
from core.portal.charts import PALETTE, BarSeries, Svg, column_chart

# Each category keeps its colour on every chart (palette names of `core.portal.charts.PALETTE`).
SERIES_COLOURS = {
    "car": "red",
    "truck": "amber",
    "bus": "yellow",
    "motorcycle": "purple",
    "bicycle": "sky",
    "person": "green",
}


def counts_chart_svg(buckets: Sequence[dict[str, Any]], *, width: int = 720, height: int = 260) -> SafeString:
    """Stacked bars of counts per category per time bucket, with axes and a legend."""
    categories = [c for c in Category.values if any(b["counts"].get(c) for b in buckets)]
    return column_chart(
        title="Counts over time",
        categories=[_bucket_label(bucket["start"]) for bucket in buckets],
        series=[
            BarSeries(label=c, values=[b["counts"].get(c, 0) for b in buckets], colour_name=SERIES_COLOURS[c])
            for c in categories
        ],
        width=width,
        height=height,
        empty_message="No counts in this period",
        integer_values=True,
    )


def _bucket_label(start: Any) -> str:
    return start.strftime("%m-%d %H:%M") if hasattr(start, "strftime") else str(start)[:16]


def camera_overlay_svg(camera: Any, *, width: int, height: int) -> SafeString:
    """Counting lines (with their "in" arrow) and zones, in the frame's pixel space."""
    from apps.traffic.line_counting import DIRECTION_VECTORS

    svg = Svg(width=width, height=height, css_class="overlay", preserveAspectRatio="none", data_testid="camera-overlay")
    for zone in camera.zones.all():
        points = " ".join(f"{x * width:.1f},{y * height:.1f}" for x, y in zone.polygon)
        svg.add("polygon", points=points, fill="rgba(28,126,214,0.18)", stroke=PALETTE["sky"], stroke_width=2)
    stroke = max(2, round(min(width, height) / 150))
    for line in camera.lines.all():
        x1, y1, x2, y2 = line.x1 * width, line.y1 * height, line.x2 * width, line.y2 * height
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        dx, dy = DIRECTION_VECTORS[line.in_direction]
        arrow = min(width, height) * 0.08
        svg.add("line", x1=x1, y1=y1, x2=x2, y2=y2, stroke=PALETTE["yellow"], stroke_width=stroke)
        svg.add(
            "line", x1=mx, y1=my, x2=mx + dx * arrow, y2=my + dy * arrow, stroke=PALETTE["green"], stroke_width=stroke
        )
        svg.text(
            x1 + 4, y1 - 6, f"{line.name} (in: {line.in_direction})", size=max(10, height // 25), fill=PALETTE["yellow"]
        )
    return svg.render()
