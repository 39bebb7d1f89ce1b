"""apps/traffic/line_counting.py: crossing rules on synthetic track sequences, exactly."""

from __future__ import annotations

from apps.traffic.line_counting import (
    LineCounter,
    LineSpec,
    TrackedBox,
    ZoneOccupancy,
    ZoneSpec,
    direction_is_ambiguous,
    point_in_polygon,
)

W = H = 100
HORIZONTAL_DOWN_IN = LineSpec("stop", (0.1, 0.5), (0.9, 0.5), "down")


def box_at(x: float, bottom: float, width: float = 10, height: float = 10) -> tuple[float, float, float, float]:
    """A pixel box whose bottom-centre anchor is (x, bottom) in percent of a 100x100 frame."""
    return (x - width / 2, bottom - height, x + width / 2, bottom)


def run(counter: LineCounter, path: list[tuple[int, float, float]], class_name: str = "car", start: int = 0) -> None:
    for offset, (track_id, x, bottom) in enumerate(path):
        counter.update(start + offset, [TrackedBox(track_id, box_at(x, bottom), class_name)], W, H)


def test_a_track_crossing_down_counts_one_in_dated_at_its_first_frame_past_the_line() -> None:
    counter = LineCounter([HORIZONTAL_DOWN_IN], anti_flicker_frames=3)
    run(counter, [(1, 50, y) for y in (30, 40, 45, 55, 60, 70, 80)])
    assert [(c.line, c.track_id, c.direction, c.frame) for c in counter.crossings] == [("stop", 1, "in", 3)]


def test_crossing_up_counts_out_and_anchor_is_bottom_centre() -> None:
    counter = LineCounter([HORIZONTAL_DOWN_IN], anti_flicker_frames=2)
    # the box top is above the line all along; only the bottom edge crossing matters
    run(counter, [(7, 50, y) for y in (70, 60, 52, 48, 40, 30)])
    assert [(c.direction, c.frame) for c in counter.crossings] == [("out", 3)]


def test_jitter_around_the_line_is_not_counted() -> None:
    counter = LineCounter([HORIZONTAL_DOWN_IN], anti_flicker_frames=3)
    run(counter, [(1, 50, y) for y in (48, 52, 49, 51, 51, 49, 48, 52, 49)])
    assert counter.crossings == []


def test_anti_flicker_frames_one_counts_every_side_change() -> None:
    counter = LineCounter([HORIZONTAL_DOWN_IN], anti_flicker_frames=1)
    run(counter, [(1, 50, y) for y in (48, 52, 49)])
    assert [c.direction for c in counter.crossings] == ["in", "out"]


def test_back_and_forth_counts_each_confirmed_crossing() -> None:
    counter = LineCounter([HORIZONTAL_DOWN_IN], anti_flicker_frames=2)
    run(counter, [(1, 50, y) for y in (30, 60, 65, 40, 35, 70, 75)])
    assert [(c.direction, c.frame) for c in counter.crossings] == [("in", 1), ("out", 3), ("in", 5)]


def test_passing_beside_the_segment_is_not_a_crossing() -> None:
    counter = LineCounter([HORIZONTAL_DOWN_IN], anti_flicker_frames=1)
    run(counter, [(1, 95, y) for y in (30, 60, 70)])  # x = 0.95 is beyond the segment's end (0.9)
    assert counter.crossings == []


def test_first_sighting_past_the_line_is_not_a_crossing_and_tracks_are_independent() -> None:
    counter = LineCounter([HORIZONTAL_DOWN_IN], anti_flicker_frames=2)
    for frame, ys in enumerate([(30, 70), (45, 75), (55, 80), (60, 85)]):
        counter.update(frame, [TrackedBox(1, box_at(40, ys[0]), "car"), TrackedBox(2, box_at(60, ys[1]), "bus")], W, H)
    assert [(c.track_id, c.class_name, c.direction) for c in counter.crossings] == [(1, "car", "in")]


def test_crossing_takes_the_majority_class_of_the_track() -> None:
    counter = LineCounter([HORIZONTAL_DOWN_IN], anti_flicker_frames=1)
    for frame, (y, name) in enumerate([(30, "car"), (35, "car"), (40, "truck"), (55, "car")]):
        counter.update(frame, [TrackedBox(3, box_at(50, y), name)], W, H)
    assert [c.class_name for c in counter.crossings] == ["car"]


def test_vertical_line_with_right_as_in_and_two_lines_at_once() -> None:
    vertical = LineSpec("gate", (0.5, 0.0), (0.5, 1.0), "right")
    counter = LineCounter([vertical, HORIZONTAL_DOWN_IN], anti_flicker_frames=1)
    # moving diagonally down-right: crosses the gate (in) and the stop line (in)
    run(counter, [(4, x, y) for x, y in ((30, 30), (45, 45), (55, 55), (70, 70))])
    assert sorted((c.line, c.direction, c.frame) for c in counter.crossings) == [("gate", "in", 2), ("stop", "in", 2)]
    assert counter.totals() == {("gate", "car"): {"in": 1, "out": 0}, ("stop", "car"): {"in": 1, "out": 0}}


def test_in_side_does_not_depend_on_point_order() -> None:
    reversed_line = LineSpec("stop", (0.9, 0.5), (0.1, 0.5), "down")
    counter = LineCounter([reversed_line], anti_flicker_frames=1)
    run(counter, [(1, 50, y) for y in (30, 70)])
    assert [c.direction for c in counter.crossings] == ["in"]


def test_direction_parallel_to_line_is_ambiguous() -> None:
    assert direction_is_ambiguous((0.1, 0.5), (0.9, 0.5), "left")
    assert not direction_is_ambiguous((0.1, 0.5), (0.9, 0.5), "down")
    assert direction_is_ambiguous((0.2, 0.2), (0.2, 0.2), "down")


def test_zone_peaks() -> None:
    zone = ZoneSpec("box", [(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)])
    occupancy = ZoneOccupancy([zone])
    occupancy.update(0, [(box_at(20, 30), "car"), (box_at(70, 30), "car")], W, H)
    occupancy.update(1, [(box_at(20, 30), "car"), (box_at(30, 40), "car"), (box_at(10, 10), "person")], W, H)
    occupancy.update(2, [(box_at(20, 30), "car")], W, H)
    peaks = {(p.zone, p.category): (p.peak, p.frame) for p in occupancy.peaks.values()}
    assert peaks == {("box", "car"): (2, 1), ("box", "person"): (1, 1)}
    assert point_in_polygon((0.25, 0.25), zone.polygon) and not point_in_polygon((0.75, 0.25), zone.polygon)
