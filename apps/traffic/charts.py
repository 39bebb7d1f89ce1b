"""Server-side SVG charts for the operator portal (no JavaScript charting library)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from apps.traffic.choices import Category

SERIES_COLOURS = {
    "car": "#e03131",
    "truck": "#f08c00",
    "bus": "#fab005",
    "motorcycle": "#ae3ec9",
    "bicycle": "#1c7ed6",
    "person": "#2f9e44",
}


def counts_chart_svg(buckets: Sequence[dict[str, Any]], *, width: int = 720, height: int = 260) -> str:
    """Stacked bars of counts per category per time bucket, with axes and a legend."""
    left, right, top, bottom = 44, 12, 12, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    categories = [c for c in Category.values if any(b["counts"].get(c) for b in buckets)]
    peak = max((sum(b["counts"].values()) for b in buckets), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Counts over time" class="chart">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#868e96"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#868e96"/>',
    ]
    for tick in range(5):
        value = peak * tick / 4
        y = top + plot_h - plot_h * tick / 4
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{value:.0f}</text>')
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e9ecef"/>')
    slot = plot_w / max(len(buckets), 1)
    label_every = max(1, len(buckets) // 8)
    for index, bucket in enumerate(buckets):
        x = left + index * slot + slot * 0.1
        y = top + plot_h
        for category in categories:
            count = bucket["counts"].get(category, 0)
            if not count:
                continue
            bar_h = plot_h * count / peak
            y -= bar_h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" height="{bar_h:.1f}" '
                f'fill="{SERIES_COLOURS[category]}"><title>{escape(category)}: {count}</title></rect>'
            )
        if index % label_every == 0:
            start = bucket["start"]
            label = start.strftime("%m-%d %H:%M") if hasattr(start, "strftime") else str(start)[:16]
            parts.append(
                f'<text x="{left + index * slot + slot / 2:.1f}" y="{top + plot_h + 14}" font-size="9" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    for index, category in enumerate(categories):
        x = left + index * 100
        parts.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{SERIES_COLOURS[category]}"/>')
        parts.append(f'<text x="{x + 14}" y="{height - 5}" font-size="11">{escape(category)}</text>')
    if not categories:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" font-size="12" '
            'fill="#868e96">No counts in this period</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def camera_overlay_svg(camera: Any, *, width: int, height: int) -> str:
    """Counting lines (with their "in" arrow) and zones, in the frame's pixel space."""
    from apps.traffic.line_counting import DIRECTION_VECTORS

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="overlay" '
        'preserveAspectRatio="none" data-testid="camera-overlay">'
    ]
    for zone in camera.zones.all():
        points = " ".join(f"{x * width:.1f},{y * height:.1f}" for x, y in zone.polygon)
        parts.append(f'<polygon points="{points}" fill="rgba(28,126,214,0.18)" stroke="#1c7ed6" stroke-width="2"/>')
    stroke = max(2, round(min(width, height) / 150))
    for line in camera.lines.all():
        x1, y1, x2, y2 = line.x1 * width, line.y1 * height, line.x2 * width, line.y2 * height
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        dx, dy = DIRECTION_VECTORS[line.in_direction]
        arrow = min(width, height) * 0.08
        parts.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#fab005" stroke-width="{stroke}"/>'
        )
        parts.append(
            f'<line x1="{mx:.1f}" y1="{my:.1f}" x2="{mx + dx * arrow:.1f}" y2="{my + dy * arrow:.1f}" '
            f'stroke="#2f9e44" stroke-width="{stroke}"/>'
        )
        parts.append(
            f'<text x="{x1 + 4:.1f}" y="{y1 - 6:.1f}" fill="#fab005" font-size="{max(10, height // 25)}">'
            f"{escape(line.name)} (in: {escape(line.in_direction)})</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
