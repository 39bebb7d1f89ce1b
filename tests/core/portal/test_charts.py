"""The portal's SVG chart kit: safe output, ticks, and the awkward inputs (empty, one point, negatives)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from django.utils.safestring import SafeString

from core.portal.charts import PALETTE, BarSeries, Svg, XYChart, colour, column_chart, hbar_chart, nice_ticks

HOSTILE = '<script>alert("x")</script>&"\' onload="evil()'
SVG_NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    """The SVG as XML: it must be well-formed for this to succeed."""
    return ET.fromstring(svg)  # noqa: S314 - our own output, not untrusted input


def texts(root: ET.Element) -> list[str]:
    return ["".join(element.itertext()) for element in root.iter(f"{SVG_NS}text")]


def assert_safe(svg: str) -> None:
    root = parse(svg)
    tags = {element.tag.removeprefix(SVG_NS) for element in root.iter()}
    assert not tags & {"script", "foreignObject", "a", "image", "use"}
    assert not any(name.lower().startswith("on") for element in root.iter() for name in element.attrib)
    assert "<script" not in svg


def test_hostile_labels_are_escaped_everywhere():
    # given labels and a title that try to break out of text and attributes
    line_chart = XYChart(title=HOSTILE, x_label=HOSTILE, y_label=HOSTILE)
    line_chart.line([(0, 1), (1, 2)], label=HOSTILE, markers=True, point_titles=[HOSTILE, HOSTILE])
    charts = [
        line_chart.render(),
        column_chart(title=HOSTILE, categories=[HOSTILE], series=[BarSeries(label=HOSTILE, values=[3])]),
        hbar_chart([(HOSTILE, 0.5)], title=HOSTILE),
    ]
    for svg in charts:
        # then: SafeString, well-formed, no script, and the label reads back as the plain text it was
        assert isinstance(svg, SafeString)
        assert_safe(svg)
        root = parse(svg)
        assert root.attrib["aria-label"] == HOSTILE
        assert HOSTILE in texts(root) or HOSTILE in [t.text for t in root.iter(f"{SVG_NS}title")]


def test_svg_refuses_script_handlers_and_links():
    svg = Svg(width=10, height=10)
    with pytest.raises(ValueError):
        svg.add("script", text="alert(1)")
    with pytest.raises(ValueError):
        svg.add("rect", onclick="alert(1)")
    with pytest.raises(ValueError):
        svg.add("rect", href="javascript:alert(1)")
    with pytest.raises(ValueError):
        svg.add("rect", x=float("nan"))
    with pytest.raises(ValueError):
        colour("javascript")


def test_numbers_are_formatted_not_printed_raw():
    chart = XYChart(title="t").line([(0.123456789, 1 / 3), (1, 2)], label="a")
    svg = chart.render()
    geometry = {"x", "y", "cx", "cy", "x1", "y1", "x2", "y2", "width", "height", "r"}
    numbers = [value for element in parse(svg) for name, value in element.attrib.items() if name in geometry]
    assert numbers and all(re.fullmatch(r"-?\d+\.\d", n) for n in numbers)
    assert "0.123456789" not in svg and "0.3333333" not in svg


def test_empty_series_still_draw_a_frame_and_say_so():
    assert_safe(XYChart(title="Nothing").render())
    assert_safe(XYChart(title="Nothing").line([], label="no points").render())
    empty_columns = column_chart(title="Counts", categories=[], series=[], empty_message="No counts in this period")
    assert "No counts in this period" in texts(parse(empty_columns))
    zero_columns = column_chart(title="Counts", categories=["a", "b"], series=[BarSeries("car", [0, 0])])
    assert "No counts in this period" not in zero_columns and "No data" in texts(parse(zero_columns))
    assert not parse(zero_columns).findall(f".//{SVG_NS}rect/{SVG_NS}title")
    assert "No data" in texts(parse(hbar_chart([], title="Bars")))


def test_a_single_point_gets_a_marker_and_an_axis_around_it():
    root = parse(XYChart(title="One").line([(5, 5)], label="only").render())
    assert len(root.findall(f".//{SVG_NS}circle")) == 1
    tick_labels = [t for t in texts(root) if re.fullmatch(r"-?[\d.]+", t)]
    assert len(set(tick_labels)) >= 3  # a widened span, not a single repeated tick


def test_negative_values_go_below_zero():
    # stacked columns: a negative value is drawn under the zero line, a positive one above
    root = parse(column_chart(title="Net", categories=["a"], series=[BarSeries("in", [4]), BarSeries("out", [-2])]))
    bars = {title.text: r for r in root.iter(f"{SVG_NS}rect") if (title := r.find(f"{SVG_NS}title")) is not None}
    up, down = bars["in: 4"], bars["out: -2"]
    assert float(up.attrib["y"]) + float(up.attrib["height"]) == pytest.approx(float(down.attrib["y"]), abs=0.11)
    assert float(up.attrib["height"]) == pytest.approx(2 * float(down.attrib["height"]), abs=0.2)
    assert "-2" in texts(root) or any(t.startswith("-") for t in texts(root))  # a negative tick
    # horizontal bars: the negative one starts left of the zero line, the positive one at it
    root = parse(hbar_chart([("gain", 0.5), ("loss", -0.25)], title="Delta", value_format="{:+.2f}"))
    gain, loss = list(root.iter(f"{SVG_NS}rect"))
    assert float(loss.attrib["x"]) + float(loss.attrib["width"]) == pytest.approx(float(gain.attrib["x"]), abs=0.11)
    assert {"+0.50", "-0.25"} <= set(texts(root))
    # lines: a y axis that reaches below zero
    root = parse(XYChart(title="t").line([(0, -3), (1, 2)], label="a").render())
    assert "-4" in texts(root) or "-3" in texts(root)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0, 97, [0, 20, 40, 60, 80, 100]),
        (-3, 2, [-3, -2, -1, 0, 1, 2]),
        (0, 0.33, [0, 0.1, 0.2, 0.3, 0.4]),
        (0, 12.5, [0, 2.5, 5, 7.5, 10, 12.5]),
    ],
)
def test_nice_ticks_cover_the_range_on_round_steps(low, high, expected):
    assert nice_ticks(low, high) == pytest.approx(expected)


def test_integer_ticks_never_split_a_count():
    assert nice_ticks(0, 3, integer=True) == [0, 1, 2, 3]
    assert nice_ticks(0, 12, integer=True) == [0, 2, 4, 6, 8, 10, 12]
    assert all(float(t).is_integer() for t in nice_ticks(0, 13, integer=True))


def test_nice_ticks_survive_degenerate_ranges():
    assert nice_ticks(0, 0) == pytest.approx([-1, -0.5, 0, 0.5, 1])
    ticks = nice_ticks(7, 7)
    assert ticks[0] < 7 < ticks[-1]
    assert nice_ticks(float("nan"), 1) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert nice_ticks(5, 1) == nice_ticks(1, 5)


def test_series_take_palette_colours_and_are_in_the_legend():
    chart = XYChart(title="t").line([(0, 0), (1, 1)], label="first").line([(0, 1), (1, 0)], label="second")
    root = parse(chart.render())
    strokes = [p.attrib["stroke"] for p in root.iter(f"{SVG_NS}polyline")]
    assert strokes == [PALETTE["blue"], PALETTE["orange"]]
    assert {"first", "second"} <= set(texts(root))
    named = column_chart(title="c", categories=["x"], series=[BarSeries("car", [1], colour_name="red")])
    assert PALETTE["red"] in named
