"""Reads of the traffic app. Every selector takes the organization first; another
organization's row is "not found"."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from apps.traffic.choices import CountBucket
from apps.traffic.class_maps import class_map_resolve
from apps.traffic.models import Camera, ClassMap, CountingLine, Detection, DetectionRun, LineCrossing, VideoAnalysis
from core.errors import NotFound, ValidationFailed
from core.tenancy.models import Organization
from ml.models import ModelVersion, RegisteredModel

MAX_BUCKETS = 5000


def camera_list(*, org: Organization) -> QuerySet[Camera]:
    return Camera.objects.filter(organization=org).prefetch_related(
        Prefetch("lines", queryset=CountingLine.objects.order_by("name")), "zones"
    )


def camera_get(*, org: Organization, camera_id: int | str) -> Camera:
    try:
        return camera_list(org=org).get(pk=int(camera_id))
    except (Camera.DoesNotExist, ValueError, TypeError) as exc:
        raise NotFound("Camera not found.") from exc


def class_map_effective(
    *, org: Organization, registered_model: RegisteredModel, names: Mapping[int, str] | None = None
) -> dict[str, str]:
    """The detector's class map: stored edits over the defaults, for the classes of `names`
    (default: every class name any version of the model knows)."""
    if registered_model.organization_id != org.pk:
        raise NotFound("Model not found.")
    if names is None:
        collected: dict[int, str] = {}
        index = 0
        for version in ModelVersion.objects.filter(registered_model=registered_model).order_by("number"):
            for name in (version.input_schema.get("names") or {}).values():
                if name not in collected.values():
                    collected[index] = str(name)
                    index += 1
        names = collected
    stored = ClassMap.objects.filter(registered_model=registered_model).values_list("mapping", flat=True).first()
    return class_map_resolve(names, stored)


def detection_run_list(
    *,
    org: Organization,
    camera_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    class_name: str | None = None,
) -> QuerySet[DetectionRun]:
    runs = (
        DetectionRun.objects.filter(organization=org)
        .select_related("camera")
        .prefetch_related(Prefetch("detections", queryset=Detection.objects.order_by("-confidence", "id")))
    )
    if camera_id is not None:
        runs = runs.filter(camera_id=camera_id)
    if start is not None:
        runs = runs.filter(captured_at__gte=start)
    if end is not None:
        runs = runs.filter(captured_at__lt=end)
    if class_name:
        matching = Detection.objects.filter(organization=org).filter(Q(category=class_name) | Q(class_name=class_name))
        runs = runs.filter(pk__in=matching.values("run_id"))
    return runs


def detection_run_get(*, org: Organization, run_id: int | str) -> DetectionRun:
    try:
        return detection_run_list(org=org).get(pk=int(run_id))
    except (DetectionRun.DoesNotExist, ValueError, TypeError) as exc:
        raise NotFound("Detection not found.") from exc


def video_list(*, org: Organization, camera_id: int | None = None) -> QuerySet[VideoAnalysis]:
    videos = VideoAnalysis.objects.filter(organization=org).select_related("camera", "job")
    if camera_id is not None:
        videos = videos.filter(camera_id=camera_id)
    return videos


def video_get(*, org: Organization, video_id: int | str) -> VideoAnalysis:
    try:
        return video_list(org=org).get(pk=int(video_id))
    except (VideoAnalysis.DoesNotExist, ValueError, TypeError) as exc:
        raise NotFound("Video not found.") from exc


def crossing_list(*, org: Organization, video: VideoAnalysis) -> QuerySet[LineCrossing]:
    return LineCrossing.objects.filter(organization=org, video=video).order_by("occurred_at", "id")


def _bucket_start(moment: datetime, bucket: str) -> datetime:
    if bucket == CountBucket.DAY:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if bucket == CountBucket.HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


BUCKET_SIZE = {
    CountBucket.QUARTER_HOUR: timedelta(minutes=15),
    CountBucket.HOUR: timedelta(hours=1),
    CountBucket.DAY: timedelta(days=1),
}


# Without a period, counts cover the last day (15m, hour buckets) or the last 30 days (day
# buckets), ending at the next full hour so every bucket is whole.
DEFAULT_COUNTS_PERIOD = {CountBucket.DAY: timedelta(days=30)}


def counts_period(
    *, bucket: str, start: datetime | None = None, end: datetime | None = None
) -> tuple[datetime, datetime]:
    """`(start, end)` of a counts query, with the defaults above for what is not given."""
    if end is None:
        end = (datetime.now(UTC) + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    if start is None:
        start = end - DEFAULT_COUNTS_PERIOD.get(CountBucket(bucket), timedelta(days=1))
    return start, end


def camera_counts(
    *,
    org: Organization,
    camera: Camera,
    start: datetime,
    end: datetime,
    bucket: str,
    line: str | None = None,
) -> dict[str, Any]:
    """Counts per category in time buckets `[start, end)` (UTC bucket boundaries).

    Each bucket has `in`/`out` crossings per category (optionally of one line), `detected`:
    objects seen in still images of the camera per category, `images`: how many images, and
    `counts`: crossings (in + out) plus detected objects per category. Empty buckets are
    included so charts have a continuous time axis.
    """
    if camera.organization_id != org.pk:
        raise NotFound("Camera not found.")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise ValidationFailed("`end` must be after `start`.", fields={"end": ["Must be after start."]})
    size = BUCKET_SIZE[CountBucket(bucket)]
    first = _bucket_start(start, bucket)
    if (end - first) / size > MAX_BUCKETS:
        raise ValidationFailed(
            f"That range has more than {MAX_BUCKETS} buckets; use a larger bucket or a shorter range.",
            fields={"bucket": ["Too many buckets."]},
        )
    if (
        line
        and not camera.lines.filter(name=line).exists()
        and not LineCrossing.objects.filter(organization=org, camera=camera, line_name=line).exists()
    ):
        raise NotFound(f"Camera has no counting line {line!r}.")
    buckets: dict[datetime, dict[str, Any]] = {}
    moment = first
    while moment < end:
        buckets[moment] = {"in": defaultdict(int), "out": defaultdict(int), "detected": defaultdict(int), "images": 0}
        moment += size
    crossings = LineCrossing.objects.filter(
        organization=org, camera=camera, occurred_at__gte=start, occurred_at__lt=end
    ).exclude(category="")
    if line:
        crossings = crossings.filter(line_name=line)
    for occurred_at, category, direction in crossings.values_list("occurred_at", "category", "direction").iterator():
        buckets[_bucket_start(occurred_at, bucket)][direction][category] += 1
    if not line:
        runs = DetectionRun.objects.filter(organization=org, camera=camera, captured_at__gte=start, captured_at__lt=end)
        for captured_at, image_counts in runs.values_list("captured_at", "counts").iterator():
            entry = buckets[_bucket_start(captured_at, bucket)]
            entry["images"] += 1
            for category, count in (image_counts or {}).items():
                entry["detected"][category] += int(count)
    series = []
    totals: dict[str, int] = defaultdict(int)
    for moment, entry in buckets.items():
        counts: dict[str, int] = defaultdict(int)
        for part in ("in", "out", "detected"):
            for category, count in entry[part].items():
                counts[category] += count
                totals[category] += count
        series.append(
            {
                "start": moment,
                "end": moment + size,
                "counts": dict(sorted(counts.items())),
                "in": dict(sorted(entry["in"].items())),
                "out": dict(sorted(entry["out"].items())),
                "detected": dict(sorted(entry["detected"].items())),
                "images": entry["images"],
            }
        )
    return {
        "camera": camera.pk,
        "line": line or None,
        "bucket": str(bucket),
        "start": start,
        "end": end,
        "totals": dict(sorted(totals.items())),
        "buckets": series,
    }
