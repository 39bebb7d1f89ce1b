"""Counting tracked objects across lines and inside zones, frame by frame.

Pure Python, no ML imports: the video job feeds it the tracker's output of every frame and
it answers which tracks crossed which line in which direction, and how many objects stood in
each zone at once. The rules (also in docs/traffic.md):

- **Anchor point.** A track's position is the bottom-centre of its box, `((x1 + x2) / 2, y2)`,
  normalised by the frame size: where a vehicle or a person touches the ground, so a line
  drawn on the road is crossed when the object is on it, whatever its height.
- **Side.** The side of a line `p1 → p2` is the sign of the cross product
  `cross(p2 - p1, anchor - p1)`; an anchor exactly on the line keeps its previous side.
- **Direction.** A line's `in_direction` (`up`, `down`, `left`, `right`, in image terms) names
  the way of travel counted as "in"; the opposite is "out". A line parallel to its own
  in-direction is refused when the camera is saved.
- **Anti-flicker.** A track must be seen on the new side for `anti_flicker_frames` consecutive
  observations before the crossing counts (the first observation on the new side included);
  boxes jittering around the line never count. The crossing is dated at the first frame on
  the new side.
- **Segment, not infinite line.** The step of the anchor that changed side must cross the
  drawn segment itself; going around its end changes the side without a count.
- **Once per crossing.** Each confirmed side change is one crossing. A track crossing in and
  back out counts one "in" and one "out"; the first sighting of a track never counts.
- **Category.** The crossing takes the track's majority class so far (ties: the latest), so a
  single misclassified frame does not change what is counted.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

DIRECTION_VECTORS: dict[str, tuple[float, float]] = {
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
}
# A line must make at least this angle (sine) with its in-direction, or "in" is ambiguous.
MIN_DIRECTION_SINE = 0.17  # about 10 degrees
DEFAULT_ANTI_FLICKER_FRAMES = 3

Point = tuple[float, float]


@dataclass(frozen=True)
class LineSpec:
    """A counting line in normalised image coordinates (0..1, y down)."""

    name: str
    p1: Point
    p2: Point
    in_direction: str


@dataclass(frozen=True)
class ZoneSpec:
    """A polygon zone in normalised image coordinates."""

    name: str
    polygon: Sequence[Point]


@dataclass(frozen=True)
class TrackedBox:
    """One tracked object in one frame: pixel box, track id and model class name."""

    track_id: int
    box: tuple[float, float, float, float]
    class_name: str


@dataclass(frozen=True)
class Crossing:
    """A confirmed crossing of `line` by `track_id`, dated at `frame` (first frame on the new side)."""

    line: str
    track_id: int
    class_name: str
    direction: str  # "in" or "out"
    frame: int


def anchor_point(box: tuple[float, float, float, float], width: int, height: int) -> Point:
    """Bottom-centre of a pixel box, normalised by the frame size."""
    x1, _, x2, y2 = box
    return ((x1 + x2) / 2 / width, y2 / height)


def _cross(p1: Point, p2: Point, point: Point) -> float:
    return (p2[0] - p1[0]) * (point[1] - p1[1]) - (p2[1] - p1[1]) * (point[0] - p1[0])


def side_of(line: LineSpec, point: Point) -> int:
    """+1 or -1 for the two sides of the line, 0 exactly on it."""
    value = _cross(line.p1, line.p2, point)
    return (value > 0) - (value < 0)


def in_side(line: LineSpec) -> int:
    """The side an object reaches when travelling in the line's in-direction."""
    dx, dy = DIRECTION_VECTORS[line.in_direction]
    # Moving by (dx, dy) from a point on the line lands on the side of sign(cross(p2 - p1, d)).
    value = (line.p2[0] - line.p1[0]) * dy - (line.p2[1] - line.p1[1]) * dx
    return 1 if value > 0 else -1


def direction_is_ambiguous(p1: Point, p2: Point, in_direction: str) -> bool:
    """True when the line is (nearly) parallel to its in-direction, or has no length."""
    lx, ly = p2[0] - p1[0], p2[1] - p1[1]
    length = (lx * lx + ly * ly) ** 0.5
    if length < 1e-6:
        return True
    dx, dy = DIRECTION_VECTORS[in_direction]
    return abs(lx * dy - ly * dx) / length < MIN_DIRECTION_SINE


def segment_crossed(line: LineSpec, start: Point, end: Point) -> bool:
    """Whether the anchor's step `start → end` crosses the drawn segment (ends included)."""
    d1, d2 = _cross(line.p1, line.p2, start), _cross(line.p1, line.p2, end)
    if d1 == d2:
        return False
    t = d1 / (d1 - d2)  # where along start → end the infinite line is met
    hit = (start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1]))
    lx, ly = line.p2[0] - line.p1[0], line.p2[1] - line.p1[1]
    s = ((hit[0] - line.p1[0]) * lx + (hit[1] - line.p1[1]) * ly) / (lx * lx + ly * ly)
    return -1e-9 <= s <= 1 + 1e-9


@dataclass
class _TrackLineState:
    side: int = 0  # confirmed side (0: not yet known)
    pending_side: int = 0
    pending_frames: int = 0
    pending_frame: int = -1
    pending_valid: bool = False


@dataclass
class _TrackState:
    last_anchor: Point | None = None
    classes: Counter[str] = field(default_factory=Counter)
    last_class: str = ""
    lines: dict[str, _TrackLineState] = field(default_factory=dict)

    def category_class(self) -> str:
        if not self.classes:
            return self.last_class
        best = max(self.classes.values())
        if self.classes[self.last_class] == best:
            return self.last_class
        return next(name for name, count in self.classes.most_common() if count == best)


class LineCounter:
    """Counts line crossings of tracked objects with the rules of this module's docstring."""

    def __init__(self, lines: Iterable[LineSpec], *, anti_flicker_frames: int = DEFAULT_ANTI_FLICKER_FRAMES) -> None:
        if anti_flicker_frames < 1:
            raise ValueError("anti_flicker_frames must be at least 1.")
        self.lines = list(lines)
        self.anti_flicker_frames = anti_flicker_frames
        self._in_sides = {line.name: in_side(line) for line in self.lines}
        self._tracks: dict[int, _TrackState] = {}
        self.crossings: list[Crossing] = []

    def update(self, frame: int, boxes: Iterable[TrackedBox], width: int, height: int) -> list[Crossing]:
        """Feed one frame's tracked boxes; returns the crossings confirmed in this frame."""
        confirmed: list[Crossing] = []
        for tracked in boxes:
            state = self._tracks.setdefault(tracked.track_id, _TrackState())
            state.classes[tracked.class_name] += 1
            state.last_class = tracked.class_name
            anchor = anchor_point(tracked.box, width, height)
            for line in self.lines:
                crossing = self._update_line(line, state, tracked.track_id, anchor, frame)
                if crossing is not None:
                    confirmed.append(crossing)
            state.last_anchor = anchor
        self.crossings.extend(confirmed)
        return confirmed

    def _update_line(
        self, line: LineSpec, state: _TrackState, track_id: int, anchor: Point, frame: int
    ) -> Crossing | None:
        line_state = state.lines.setdefault(line.name, _TrackLineState())
        side = side_of(line, anchor)
        if side == 0:
            return None  # on the line: no information, keep everything as it is
        if line_state.side == 0:
            line_state.side = side  # first sighting: where it starts is not a crossing
            return None
        if side == line_state.side:
            line_state.pending_side = line_state.pending_frames = 0  # back where it was: flicker
            return None
        if line_state.pending_side != side:
            line_state.pending_side = side
            line_state.pending_frames = 0
            line_state.pending_frame = frame
            previous = state.last_anchor if state.last_anchor is not None else anchor
            line_state.pending_valid = segment_crossed(line, previous, anchor)
        line_state.pending_frames += 1
        if line_state.pending_frames < self.anti_flicker_frames:
            return None
        line_state.side = side
        line_state.pending_side = line_state.pending_frames = 0
        if not line_state.pending_valid:
            return None  # went around the end of the segment
        direction = "in" if side == self._in_sides[line.name] else "out"
        return Crossing(
            line=line.name,
            track_id=track_id,
            class_name=state.category_class(),
            direction=direction,
            frame=line_state.pending_frame,
        )

    def totals(self) -> dict[tuple[str, str], dict[str, int]]:
        """{(line, class_name): {"in": n, "out": m}} over every confirmed crossing."""
        totals: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"in": 0, "out": 0})
        for crossing in self.crossings:
            totals[(crossing.line, crossing.class_name)][crossing.direction] += 1
        return dict(totals)


def point_in_polygon(point: Point, polygon: Sequence[Point]) -> bool:
    """Even-odd rule (ray casting); points on an edge may fall either way."""
    x, y = point
    inside = False
    count = len(polygon)
    for index in range(count):
        x1, y1 = polygon[index]
        x2, y2 = polygon[(index + 1) % count]
        if (y1 > y) != (y2 > y):
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < x_cross:
                inside = not inside
    return inside


@dataclass
class ZonePeak:
    """The most objects of one category seen at once in a zone, and when."""

    zone: str
    category: str
    peak: int
    frame: int


class ZoneOccupancy:
    """Tracks, per zone and category, the peak number of anchors inside the polygon at once."""

    def __init__(self, zones: Iterable[ZoneSpec]) -> None:
        self.zones = list(zones)
        self.peaks: dict[tuple[str, str], ZonePeak] = {}

    def update(
        self, frame: int, boxes: Iterable[tuple[tuple[float, float, float, float], str]], width: int, height: int
    ) -> None:
        """Feed one frame's (box, category) pairs (already mapped; ignored classes left out)."""
        boxes = list(boxes)
        for zone in self.zones:
            counts: Counter[str] = Counter(
                category for box, category in boxes if point_in_polygon(anchor_point(box, width, height), zone.polygon)
            )
            for category, count in counts.items():
                current = self.peaks.get((zone.name, category))
                if current is None or count > current.peak:
                    self.peaks[(zone.name, category)] = ZonePeak(
                        zone=zone.name, category=category, peak=count, frame=frame
                    )
