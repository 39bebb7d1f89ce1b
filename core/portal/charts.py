"""The portal's one SVG chart kit: server-side charts, no JavaScript, no CDN.

Apps keep only their domain mapping (what to plot); how it is drawn lives here:

- `Svg`: the frame. Every text is escaped, every number formatted by us, only drawing
  elements are allowed (no `<script>`, no `on*` handlers, no links), so `render()` returns a
  `SafeString` a template can print as-is.
- `PALETTE` / `colour()`: one set of named colours; `SERIES_COLOURS` is the order series take.
- `nice_ticks()`: axis ticks on 1, 2, 2.5 or 5 times a power of ten.
- `XYChart`: numeric x and y axes with ticks, legend, and line / area series, reference lines.
- `column_chart()`: vertical bars per category (stacked or grouped), `hbar_chart()`: labelled
  horizontal bars.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from django.utils.safestring import SafeString, mark_safe

PALETTE: dict[str, str] = {
    "blue": "#1f6feb",
    "orange": "#d9480f",
    "green": "#2f9e44",
    "violet": "#7048e8",
    "red": "#e03131",
    "amber": "#f08c00",
    "yellow": "#fab005",
    "purple": "#ae3ec9",
    "sky": "#1c7ed6",
    "grey": "#868e96",
    "silver": "#aaaaaa",
    "grid": "#e9ecef",
    "frame": "#ccccdd",
    "ink": "#212529",
    "white": "#ffffff",
}
SERIES_COLOURS = ("blue", "orange", "green", "violet", "red", "sky", "purple", "amber")

# What an Svg may contain: drawing elements only. Anything that can run code or load a
# resource (script, foreignObject, image, a/use with href, on* handlers) is refused.
ALLOWED_TAGS = frozenset({"g", "rect", "line", "polyline", "polygon", "path", "circle", "text"})
_ATTRIBUTE_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]*$")  # SVG has camelCase ones: viewBox, preserveAspectRatio
CHAR_WIDTH = 6.5  # px per character at font-size 11, to size label columns and legends


def colour(name: str) -> str:
    """The hex value of a palette colour; an unknown name is a programming error."""
    try:
        return PALETTE[name]
    except KeyError:
        raise ValueError(f"unknown chart colour {name!r}; use one of {sorted(PALETTE)}") from None


def series_colour(index: int) -> str:
    return PALETTE[SERIES_COLOURS[index % len(SERIES_COLOURS)]]


def format_number(value: float, decimals: int | None = None) -> str:
    """A number as a chart prints it: integers without decimals, others to 4 significant digits."""
    if not math.isfinite(value):
        return "n/a"
    if decimals is not None:
        text = f"{value:.{decimals}f}"
    elif float(value).is_integer():
        text = str(int(value))
    else:
        text = f"{value:.4g}"
    return "0" if text in {"-0", "-0.0"} or re.fullmatch(r"-0\.0+", text) else text


def _coordinate(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError("a chart coordinate must be a finite number")
    text = f"{value:.1f}"  # one decimal, always: a tenth of a pixel is finer than any screen
    return "0.0" if text == "-0.0" else text


def _finite(points: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y, *_ in points if math.isfinite(x) and math.isfinite(y)]


def nice_ticks(low: float, high: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """About `count` intervals from at most `low` to at least `high`, on round numbers.

    An empty span (one value) is widened around it, so a single point still gets an axis;
    `integer` keeps the step at 1 or more (counts have no half vehicles).
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = 0.0, 1.0
    low, high = min(low, high), max(low, high)
    if high == low:
        spread = abs(low) / 2 or 1.0
        low, high = low - spread, high + spread
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    if integer:
        step = max(1.0, 2.0 * magnitude if step == 2.5 * magnitude else step)
    start, end = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(i * step, 12) + 0.0 for i in range(start, end + 1)]


def tick_decimals(ticks: Sequence[float]) -> int:
    """The fewest decimals that tell the ticks apart (0.25 needs 2, 20 needs 0)."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    return next((d for d in range(0, 10) if abs(round(step, d) - step) < step * 1e-6), 10)


class Svg:
    """One SVG document. Texts are escaped and numbers formatted on the way in."""

    def __init__(
        self,
        *,
        width: float,
        height: float,
        label: str = "",
        css_class: str = "chart",
        max_width: float | None = None,
        **attrs: Any,
    ) -> None:
        self.width, self.height = width, height
        root = {"xmlns": "http://www.w3.org/2000/svg", "viewBox": f"0 0 {_coordinate(width)} {_coordinate(height)}"}
        if label:
            root |= {"role": "img", "aria-label": label}
        root["class"] = css_class
        if max_width is not None:
            root |= {"width": "100%", "style": f"max-width:{_coordinate(max_width)}px"}
        self._parts = [f"<svg{_attributes(root)}{_attributes(_names(attrs))}>"]
        if label:
            self._parts.append(f"<title>{escape(label)}</title>")

    def add(self, tag: str, *, text: str | None = None, tooltip: str | None = None, **attrs: Any) -> None:
        """Append `<tag attrs>text<title>tooltip</title></tag>`; attribute names use `_` for `-`."""
        if tag not in ALLOWED_TAGS:
            raise ValueError(f"<{tag}> is not allowed in a chart")
        inner = (escape(text) if text is not None else "") + (f"<title>{escape(tooltip)}</title>" if tooltip else "")
        self._parts.append(f"<{tag}{_attributes(_names(attrs))}" + (f">{inner}</{tag}>" if inner else "/>"))

    def text(self, x: float, y: float, text: str, *, size: float = 11, anchor: str = "start", **attrs: Any) -> None:
        """A text element at (x, y), escaped."""
        self.add("text", text=text, x=x, y=y, font_size=size, text_anchor=anchor, **attrs)

    def render(self) -> SafeString:
        return mark_safe("".join([*self._parts, "</svg>"]))  # noqa: S308 - escaped texts, formatted numbers, allowed tags only


def _names(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {name.rstrip("_").replace("_", "-"): value for name, value in attrs.items()}


def _attributes(attrs: Mapping[str, Any]) -> str:
    parts = []
    for name, value in attrs.items():
        if (name != "viewBox" and not _ATTRIBUTE_NAME.match(name)) or name.startswith("on") or "href" in name:
            raise ValueError(f"attribute {name!r} is not allowed in a chart")
        if isinstance(value, bool):
            raise TypeError(f"attribute {name!r} must be a number or a string")
        shown = _coordinate(value) if isinstance(value, (int, float)) else value
        parts.append(f' {name}="{escape(shown, quote=True)}"')
    return "".join(parts)


@dataclass(frozen=True)
class LegendEntry:
    label: str
    colour: str


def draw_legend(svg: Svg, entries: Sequence[LegendEntry], *, x: float, y: float, width: float) -> None:
    """Swatch + label per entry, left to right, wrapping at `width`; `y` is the first row's top."""
    cursor_x, cursor_y = x, y
    for entry in entries:
        entry_width = 14 + CHAR_WIDTH * len(entry.label) + 14
        if cursor_x > x and cursor_x + entry_width > x + width:
            cursor_x, cursor_y = x, cursor_y + 16
        svg.add("rect", x=cursor_x, y=cursor_y, width=10, height=10, fill=entry.colour)
        svg.text(cursor_x + 14, cursor_y + 9, entry.label)
        cursor_x += entry_width


def legend_rows(entries: Sequence[LegendEntry], width: float) -> int:
    rows, used = (1 if entries else 0), 0.0
    for entry in entries:
        entry_width = 14 + CHAR_WIDTH * len(entry.label) + 14
        if used and used + entry_width > width:
            rows, used = rows + 1, 0.0
        used += entry_width
    return rows


@dataclass
class _Line:
    points: list[tuple[float, float]]
    colour: str
    label: str | None
    markers: bool
    dashed: bool
    area: bool
    point_titles: Sequence[str] | None


@dataclass
class _Reference:
    y: float
    colour: str
    text: str


@dataclass
class XYChart:
    """A plot with numeric x and y axes: lines, areas, reference lines, ticks and a legend.

    Ranges default to the data (areas include 0) and are widened to nice ticks.
    """

    title: str
    x_label: str = ""
    y_label: str = ""
    width: float = 360
    height: float = 300
    x_range: tuple[float, float] | None = None
    y_range: tuple[float, float] | None = None
    x_ticks: bool = True
    max_width: float | None = 420
    _lines: list[_Line] = field(default_factory=list)
    _references: list[_Reference] = field(default_factory=list)

    def line(
        self,
        points: Sequence[Sequence[float]],
        *,
        label: str | None = None,
        colour_name: str | None = None,
        markers: bool = False,
        dashed: bool = False,
        point_titles: Sequence[str] | None = None,
    ) -> XYChart:
        """A polyline through `points` ((x, y) pairs; non-finite ones are dropped)."""
        return self._add(points, label, colour_name, markers, dashed, False, point_titles)

    def area(
        self, points: Sequence[Sequence[float]], *, label: str | None = None, colour_name: str | None = None
    ) -> XYChart:
        """A line filled down to y = 0."""
        return self._add(points, label, colour_name, False, False, True, None)

    def reference(self, y: float, *, colour_name: str = "grey", text: str = "") -> XYChart:
        """A dashed horizontal line across the plot (a threshold), with its value at the right end."""
        self._references.append(_Reference(y=y, colour=colour(colour_name), text=text))
        return self

    def _add(
        self,
        points: Sequence[Sequence[float]],
        label: str | None,
        colour_name: str | None,
        markers: bool,
        dashed: bool,
        area: bool,
        point_titles: Sequence[str] | None,
    ) -> XYChart:
        index = sum(1 for line in self._lines if line.label is not None)
        hex_colour = colour(colour_name) if colour_name else series_colour(index)
        finite = _finite(points)
        titles = point_titles if point_titles is not None and len(point_titles) == len(finite) else None
        self._lines.append(_Line(finite, hex_colour, label, markers, dashed, area, titles))
        return self

    def render(self) -> SafeString:
        entries = [LegendEntry(line.label, line.colour) for line in self._lines if line.label]
        left, right, top = 48.0, 12.0, 10.0
        bottom = 36.0 + 16 * legend_rows(entries, self.width - left - right)
        plot_w, plot_h = self.width - left - right, self.height - top - bottom
        xs = [x for line in self._lines for x, _ in line.points]
        ys = [y for line in self._lines for _, y in line.points] + [ref.y for ref in self._references]
        if any(line.area for line in self._lines):
            ys.append(0.0)
        x_ticks = nice_ticks(*(self.x_range or (min(xs, default=0.0), max(xs, default=1.0))))
        y_ticks = nice_ticks(*(self.y_range or (min(ys, default=0.0), max(ys, default=1.0))))
        x_low, x_high, y_low, y_high = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

        def px(x: float) -> float:
            return left + plot_w * (x - x_low) / (x_high - x_low)

        def py(y: float) -> float:
            return top + plot_h * (1 - (y - y_low) / (y_high - y_low))

        svg = Svg(width=self.width, height=self.height, label=self.title, max_width=self.max_width)
        svg.add("rect", x=left, y=top, width=plot_w, height=plot_h, fill=PALETTE["white"], stroke=PALETTE["frame"])
        x_decimals, y_decimals = tick_decimals(x_ticks), tick_decimals(y_ticks)
        for tick in y_ticks:
            svg.add("line", x1=left, y1=py(tick), x2=left + plot_w, y2=py(tick), stroke=PALETTE["grid"])
            svg.text(left - 4, py(tick) + 3, format_number(tick, y_decimals), size=9, anchor="end")
        if self.x_ticks:
            for tick in x_ticks:
                svg.text(px(tick), top + plot_h + 12, format_number(tick, x_decimals), size=9, anchor="middle")
        if self.x_label:
            svg.text(left + plot_w / 2, top + plot_h + 28, self.x_label, anchor="middle")
        if self.y_label:
            centre = top + plot_h / 2
            svg.text(12, centre, self.y_label, anchor="middle", transform=f"rotate(-90 12 {_coordinate(centre)})")
        for ref in self._references:
            y = py(ref.y)
            svg.add("line", x1=left, y1=y, x2=left + plot_w, y2=y, stroke=ref.colour, stroke_dasharray="3 3")
            if ref.text:
                svg.text(left + plot_w - 2, y - 3, ref.text, size=9, anchor="end")
        for line in self._lines:
            coords = " ".join(f"{_coordinate(px(x))},{_coordinate(py(y))}" for x, y in line.points)
            if line.area and line.points:
                base = f"{_coordinate(px(line.points[-1][0]))},{_coordinate(py(0))} "
                base += f"{_coordinate(px(line.points[0][0]))},{_coordinate(py(0))}"
                svg.add("polygon", points=f"{coords} {base}", fill=line.colour, fill_opacity=0.25, stroke="none")
            if len(line.points) > 1:
                extra: dict[str, Any] = {"stroke_dasharray": "4 4"} if line.dashed else {}
                svg.add("polyline", points=coords, fill="none", stroke=line.colour, stroke_width=2, **extra)
            if line.markers or len(line.points) == 1:
                for i, (x, y) in enumerate(line.points):
                    tooltip = line.point_titles[i] if line.point_titles else None
                    svg.add("circle", cx=px(x), cy=py(y), r=3, fill=line.colour, tooltip=tooltip)
        draw_legend(svg, entries, x=left, y=self.height - 16 * legend_rows(entries, plot_w) - 2, width=plot_w)
        return svg.render()


@dataclass(frozen=True)
class BarSeries:
    """One series of a column chart: a value per category (0 draws nothing)."""

    label: str
    values: Sequence[float]
    colour_name: str | None = None


def column_chart(
    *,
    title: str,
    categories: Sequence[str],
    series: Sequence[BarSeries],
    stacked: bool = True,
    y_label: str = "",
    width: float = 720,
    height: float = 260,
    empty_message: str = "No data",
    max_category_labels: int = 8,
    max_width: float | None = None,
    integer_values: bool = False,
) -> SafeString:
    """Vertical bars per category: stacked (negative values stack below 0) or side by side.

    Each bar's tooltip is "<series>: <value>"; category labels are thinned to about
    `max_category_labels` so they do not overlap; `integer_values` keeps ticks on whole numbers.
    """
    colours = [colour(s.colour_name) if s.colour_name else series_colour(i) for i, s in enumerate(series)]
    drawn = [i for i, s in enumerate(series) if any(math.isfinite(v) and v for v in s.values)]
    entries = [LegendEntry(series[i].label, colours[i]) for i in drawn]
    left, right, top = 48.0, 12.0, 12.0
    bottom = 30.0 + 16 * legend_rows(entries, width - left - right)
    plot_w, plot_h = width - left - right, height - top - bottom

    def value(s: BarSeries, index: int) -> float:
        v = s.values[index] if index < len(s.values) else 0.0
        return v if math.isfinite(v) else 0.0

    if stacked:
        highs = [sum(max(0.0, value(s, c)) for s in series) for c in range(len(categories))]
        lows = [sum(min(0.0, value(s, c)) for s in series) for c in range(len(categories))]
    else:
        highs = [max([0.0] + [value(s, c) for s in series]) for c in range(len(categories))]
        lows = [min([0.0] + [value(s, c) for s in series]) for c in range(len(categories))]
    high, low = max(highs, default=0.0), min(lows, default=0.0)
    ticks = nice_ticks(low, high if high > low else low + 1, integer=integer_values)
    y_low, y_high = ticks[0], ticks[-1]

    def py(y: float) -> float:
        return top + plot_h * (1 - (y - y_low) / (y_high - y_low))

    svg = Svg(width=width, height=height, label=title, max_width=max_width)
    decimals = tick_decimals(ticks)
    for tick in ticks:
        svg.add("line", x1=left, y1=py(tick), x2=left + plot_w, y2=py(tick), stroke=PALETTE["grid"])
        svg.text(left - 6, py(tick) + 4, format_number(tick, decimals), size=10, anchor="end")
    svg.add("line", x1=left, y1=py(0), x2=left + plot_w, y2=py(0), stroke=PALETTE["grey"])
    svg.add("line", x1=left, y1=top, x2=left, y2=top + plot_h, stroke=PALETTE["grey"])
    if y_label:
        centre = top + plot_h / 2
        svg.text(12, centre, y_label, anchor="middle", transform=f"rotate(-90 12 {_coordinate(centre)})")
    slot = plot_w / max(len(categories), 1)
    label_every = max(1, math.ceil(len(categories) / max(max_category_labels, 1)))
    for c, category in enumerate(categories):
        x = left + c * slot + slot * 0.1
        bar_w = slot * 0.8 if stacked else slot * 0.8 / max(len(drawn), 1)
        up, down = 0.0, 0.0
        for position, i in enumerate(drawn):
            v = value(series[i], c)
            if not v:
                continue
            if stacked:
                base = up if v > 0 else down
                up, down = (up + v, down) if v > 0 else (up, down + v)
                bar_x = x
            else:
                base, bar_x = 0.0, x + position * bar_w
            y1, y2 = py(base + v), py(base)
            svg.add(
                "rect",
                x=bar_x,
                y=min(y1, y2),
                width=bar_w,
                height=abs(y2 - y1),
                fill=colours[i],
                tooltip=f"{series[i].label}: {format_number(v)}",
            )
        if c % label_every == 0:
            svg.text(left + c * slot + slot / 2, top + plot_h + 14, category, size=9, anchor="middle")
    if not drawn:
        svg.text(left + plot_w / 2, top + plot_h / 2, empty_message, size=12, anchor="middle", fill=PALETTE["grey"])
    draw_legend(svg, entries, x=left, y=height - 16 * legend_rows(entries, plot_w) - 2, width=plot_w)
    return svg.render()


def hbar_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    value_format: Callable[[float], str] | str = format_number,
    colour_name: str = "blue",
    max_items: int = 15,
    max_label_chars: int = 40,
    bar_width: float = 320,
) -> SafeString:
    """Horizontal bars, one labelled row per item (in the given order), the value printed after each.

    The label column is as wide as the longest label (cut at `max_label_chars`); negative
    values extend left of a zero line.
    """
    rows = [(label, v) for label, v in list(items)[:max_items] if math.isfinite(v)]
    labels = [label if len(label) <= max_label_chars else label[: max_label_chars - 1] + "…" for label, _ in rows]
    fmt = value_format.format if isinstance(value_format, str) else value_format
    row, value_w = 18, 60
    label_w = max(80, round(12 + CHAR_WIDTH * max((len(label) for label in labels), default=0)))
    high = max([v for _, v in rows] + [0.0])
    low = min([v for _, v in rows] + [0.0])
    span = (high - low) or 1e-9
    zero = label_w + bar_width * (-low / span)
    width, height = label_w + bar_width + value_w, row * max(len(rows), 1) + 10
    svg = Svg(width=width, height=height, label=title, max_width=width + 20)
    if not rows:
        svg.text(width / 2, height / 2 + 4, "No data", size=12, anchor="middle", fill=PALETTE["grey"])
    for i, (label, (_, v)) in enumerate(zip(labels, rows, strict=True)):
        y = 5 + i * row
        length = max(1.0, bar_width * abs(v) / span)
        x = zero if v >= 0 else zero - length
        svg.text(label_w - 6, y + 12, label, anchor="end")
        svg.add("rect", x=x, y=y + 2, width=length, height=row - 5, fill=colour(colour_name))
        svg.text((x + length + 4) if v >= 0 else zero + 4, y + 12, fmt(v), size=10)
    if low < 0:
        svg.add("line", x1=zero, y1=0, x2=zero, y2=height, stroke=PALETTE["grey"])
    return svg.render()
