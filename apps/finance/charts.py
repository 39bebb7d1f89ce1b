"""Server-side SVG charts for the analyst portal (no JavaScript, no CDN).

Each function returns a small, self-contained SVG string; labels are escaped, numbers are
formatted by us, so the output is safe to mark safe in templates.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from django.utils.safestring import SafeString, mark_safe

COLORS = ("#1f6feb", "#d9480f", "#2f9e44", "#7048e8")
W, H, PAD = 360, 300, 40


def _frame(title: str, x_label: str, y_label: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}"'
        ' class="chart" width="100%" style="max-width:420px">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{PAD}" y="10" width="{W - PAD - 10}" height="{H - PAD - 10}" fill="#fff" stroke="#ccd"/>',
        f'<text x="{(W + PAD) / 2}" y="{H - 8}" text-anchor="middle" font-size="11">{escape(x_label)}</text>',
        f'<text x="12" y="{H / 2}" text-anchor="middle" font-size="11" transform="rotate(-90 12 {H / 2})">'
        f"{escape(y_label)}</text>",
    ]


def _xy(x: float, y: float, x_max: float = 1.0, y_max: float = 1.0) -> tuple[float, float]:
    width, height = W - PAD - 10, H - PAD - 10
    return PAD + width * (x / x_max if x_max else 0), 10 + height * (1 - (y / y_max if y_max else 0))


def _ticks(x_max: float = 1.0, y_max: float = 1.0) -> list[str]:
    parts = []
    for i in range(6):
        fx, fy = i / 5 * x_max, i / 5 * y_max
        px, _ = _xy(fx, 0, x_max, y_max)
        parts.append(f'<text x="{px:.1f}" y="{H - PAD + 14}" text-anchor="middle" font-size="9">{fx:.2g}</text>')
        qx, qy = _xy(0, fy, x_max, y_max)
        parts.append(f'<text x="{qx - 4:.1f}" y="{qy + 3:.1f}" text-anchor="end" font-size="9">{fy:.2g}</text>')
    return parts


def _legend(labels: Sequence[str]) -> list[str]:
    return [
        f'<text x="{PAD + 8}" y="{26 + 14 * i}" font-size="11" fill="{COLORS[i % len(COLORS)]}">'
        f"■ {escape(label)}</text>"
        for i, label in enumerate(labels)
    ]


def roc_chart(curves: Sequence[tuple[str, Sequence[Sequence[float]]]]) -> SafeString:
    """ROC curves [(label, [[fpr, tpr], ...]), ...] with the chance diagonal."""
    parts = _frame("ROC curve", "False positive rate", "True positive rate") + _ticks()
    x0, y0 = _xy(0, 0)
    x1, y1 = _xy(1, 1)
    parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#aaa" stroke-dasharray="4 4"/>')
    for i, (_, points) in enumerate(curves):
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (_xy(a, b) for a, b in points))
        parts.append(f'<polyline points="{path}" fill="none" stroke="{COLORS[i % len(COLORS)]}" stroke-width="2"/>')
    parts += [*_legend([label for label, _ in curves]), "</svg>"]
    return mark_safe("".join(parts))  # noqa: S308 - built from numbers and escaped labels only


def calibration_chart(series: Sequence[tuple[str, Sequence[dict[str, float]]]]) -> SafeString:
    """Observed default rate vs mean predicted PD per decile, against the diagonal."""
    top = max([0.05] + [max(r["mean_pd"], r["observed_rate"]) for _, rows in series for r in rows])
    top = min(1.0, top * 1.1)
    parts = _frame("Calibration by decile", "Mean predicted PD", "Observed default rate") + _ticks(top, top)
    x0, y0 = _xy(0, 0, top, top)
    x1, y1 = _xy(top, top, top, top)
    parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#aaa" stroke-dasharray="4 4"/>')
    for i, (_, rows) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        coords = [_xy(r["mean_pd"], r["observed_rate"], top, top) for r in rows]
        parts.append(
            f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in coords)}" fill="none" stroke="{color}"/>'
        )
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>' for x, y in coords]
    parts += [*_legend([label for label, _ in series]), "</svg>"]
    return mark_safe("".join(parts))  # noqa: S308


def bar_chart(items: Sequence[tuple[str, float]], *, title: str, value_format: str = "{:.1%}") -> SafeString:
    """Horizontal bars (feature importance, CSI per feature)."""
    items = list(items)[:15]
    top = max([v for _, v in items] + [1e-9])
    labels = [label if len(label) <= 40 else label[:39] + "…" for label, _ in items]
    # ~6.5 px per character at font-size 11, so the longest feature name is never cut off
    row, width = 18, 380
    label_w = max(80, round(12 + 6.5 * max((len(label) for label in labels), default=0)))
    height = row * len(items) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width + label_w} {height}" role="img"'
        f' aria-label="{escape(title)}" class="chart" width="100%" style="max-width:{width + label_w + 20}px">'
        f"<title>{escape(title)}</title>"
    ]
    for i, (label, (_, value)) in enumerate(zip(labels, items, strict=True)):
        y = 5 + i * row
        bar = max(1.0, (width - 60) * value / top)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end" font-size="11">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{bar:.1f}" height="{row - 5}" fill="{COLORS[0]}"/>'
            f'<text x="{label_w + bar + 4:.1f}" y="{y + 12}" font-size="10">{escape(value_format.format(value))}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308


def psi_history_chart(points: Sequence[tuple[str, float]]) -> SafeString:
    """Score PSI per snapshot (oldest first) with the 0.10 and 0.25 band lines."""
    top = max([0.3] + [v for _, v in points]) * 1.1
    n = max(len(points) - 1, 1)
    parts = _frame("Score PSI over time", "Snapshot", "PSI")
    for level, color in ((0.10, "#f08c00"), (0.25, "#e03131")):
        xa, ya = _xy(0, level, 1, top)
        xb, _ = _xy(1, level, 1, top)
        parts.append(f'<line x1="{xa}" y1="{ya:.1f}" x2="{xb}" y2="{ya:.1f}" stroke="{color}" stroke-dasharray="3 3"/>')
        parts.append(f'<text x="{xb - 2}" y="{ya - 3:.1f}" text-anchor="end" font-size="9">{level:.2f}</text>')
    coords = [_xy(i / n, v, 1, top) for i, (_, v) in enumerate(points)]
    if coords:
        parts.append(
            f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in coords)}" fill="none" stroke="{COLORS[0]}"/>'
        )
        for (x, y), (label, value) in zip(coords, points, strict=True):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{COLORS[0]}"><title>{escape(label)}: '
                f"{value:.3f}</title></circle>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308
