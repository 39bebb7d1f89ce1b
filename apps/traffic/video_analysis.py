"""Video counting: store a camera's video, then track and count it in the `traffic.video_count` job.

`video_analysis_create` validates and stores the upload and enqueues the job (on the
`inference` queue); `video_analysis_process` is the job's body: frames are decoded ahead
(`apps.traffic.video_frames`), tracked through `ml.runtime.stream` with the version's cached
model, and fed to the line counter and zone occupancy; results are written at the end.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.traffic.choices import DOMAIN, VIDEO_JOB_KIND
from apps.traffic.detection import detector_default_imgsz, detector_names, detector_serving_version
from apps.traffic.line_counting import (
    DEFAULT_ANTI_FLICKER_FRAMES,
    LineCounter,
    LineSpec,
    TrackedBox,
    ZoneOccupancy,
    ZoneSpec,
)
from apps.traffic.media_validation import video_check_type, video_probe
from apps.traffic.ml import TrackedFrame
from apps.traffic.models import Camera, CountingLine, LineCrossing, VideoAnalysis
from apps.traffic.selectors import class_map_effective
from apps.traffic.video_frames import local_video, video_frames
from core.audit.services import audit_record
from core.errors import Conflict
from core.jobs.runner import job_enqueue, job_params_set
from core.storage import media_name, scratch_file, stored_files
from core.tenancy.actors import Actor
from ml import runtime
from ml.models import served_by

ReportFn = Callable[..., None]


def video_analysis_create(
    *,
    actor: Actor,
    upload: UploadedFile,
    camera: Camera,
    model_name: str | None = None,
    version_number: int | None = None,
    conf: float = 0.1,
    imgsz: int | None = None,
    anti_flicker_frames: int = DEFAULT_ANTI_FLICKER_FRAMES,
    frame_stride: int = 1,
    recorded_at: datetime | None = None,
) -> VideoAnalysis:
    """Store a camera video and enqueue its tracking and counting on the `inference` queue."""
    suffix = video_check_type(upload)
    org = actor.organization
    version = detector_serving_version(org=org, name=model_name or camera.model_name, number=version_number)
    upload.seek(0)
    with stored_files() as files:
        with scratch_file(upload.chunks(), suffix=suffix) as local:  # OpenCV reads paths, not streams
            probe = video_probe(local, suffix=suffix)
            with local.open("rb") as handle:
                video_name = files.save(
                    media_name(org_id=org.pk, domain=DOMAIN, folder="videos", suffix=suffix), handle
                )
        frame_name = ""
        if probe.first_frame_jpeg:
            frame_name = files.save(
                media_name(org_id=org.pk, domain=DOMAIN, folder="frames", suffix=".jpg"), probe.first_frame_jpeg
            )
        with transaction.atomic():
            job = job_enqueue(actor=actor, kind=VIDEO_JOB_KIND)
            video = VideoAnalysis.objects.create(
                organization=org,
                camera=camera,
                job=job,
                video=video_name,
                original_filename=(upload.name or "")[:255],
                **served_by(version),
                recorded_at=recorded_at or timezone.now(),
                imgsz=int(imgsz or detector_default_imgsz(version)),
                conf=conf,
                anti_flicker_frames=anti_flicker_frames,
                frame_stride=frame_stride,
                fps=probe.fps,
                width=probe.width,
                height=probe.height,
                frames=probe.frame_count or None,
                created_by=actor.user,
            )
            # The job needs the video's id and the video row needs its job: the one place the
            # params are filled in after the row exists.
            job_params_set(job=job, params={"video_id": video.pk})
            if frame_name:
                Camera.objects.filter(pk=camera.pk).update(
                    last_frame=frame_name,
                    last_frame_width=probe.width,
                    last_frame_height=probe.height,
                    updated_at=timezone.now(),
                )
            audit_record(
                actor=actor,
                action="traffic.video.create",
                obj=video,
                details={"camera": camera.name, "model": video.model_name, "version": video.model_version_number},
            )
    return video


def video_analysis_process(*, video_id: int, report: ReportFn) -> dict[str, Any]:
    """Track and count a stored video (the body of the `traffic.video_count` job).

    Frames are read as a stream, detected and tracked with the version's cached model
    (`ml.runtime.stream`), and fed to the line counter and zone occupancy. Results are written
    at the end in one transaction that first removes any rows of an earlier attempt, so a
    re-run leaves exactly one set.
    """
    video = VideoAnalysis.objects.select_related("camera", "model_version__registered_model", "organization").get(
        pk=video_id
    )
    camera = video.camera
    lines = list(camera.lines.all())
    line_specs = [LineSpec(line.name, (line.x1, line.y1), (line.x2, line.y2), line.in_direction) for line in lines]
    zone_specs = [ZoneSpec(zone.name, [tuple(p) for p in zone.polygon]) for zone in camera.zones.all()]
    counter = LineCounter(line_specs, anti_flicker_frames=video.anti_flicker_frames)
    occupancy = ZoneOccupancy(zone_specs)
    version = video.model_version
    names = detector_names(version)
    mapping = class_map_effective(org=video.organization, registered_model=version.registered_model, names=names)
    total = video.frames or 0
    width = video.width or 1
    height = video.height or 1
    fps = video.fps or 25.0
    frames_read = 0
    started = time.perf_counter()
    last_report = 0.0
    report(progress=0.0, message="Tracking started")
    with local_video(video.video) as path:
        # The stream yields one output per frame, in order: the indices of the frames handed to
        # it are queued here and taken back with each output.
        indices: deque[int] = deque()

        def pixels() -> Iterator[Any]:
            for index, frame in video_frames(path, max(1, video.frame_stride)):
                indices.append(index)
                yield frame

        tracked: TrackedFrame
        for tracked in runtime.stream(version, pixels(), imgsz=video.imgsz, conf=video.conf, fps=fps):
            index = indices.popleft()
            frames_read = index + 1
            boxes = [
                TrackedBox(track_id, (box[0], box[1], box[2], box[3]), names.get(class_id, str(class_id)))
                for box, track_id, class_id in zip(tracked.boxes, tracked.track_ids, tracked.class_ids, strict=True)
                if mapping.get(names.get(class_id, ""))
            ]
            counter.update(index, boxes, width, height)
            occupancy.update(index, [(b.box, mapping[b.class_name]) for b in boxes], width, height)
            now = time.perf_counter()
            if now - last_report >= 0.5:
                last_report = now
                progress = min(frames_read / total, 0.99) if total else None
                report(progress=progress, message=f"Frame {frames_read}" + (f" of {total}" if total else ""))
    elapsed = time.perf_counter() - started
    return _video_results_write(
        video=video,
        lines={line.name: line for line in lines},
        counter=counter,
        occupancy=occupancy,
        mapping=mapping,
        frames=frames_read,
        fps=fps,
        elapsed=elapsed,
    )


def _video_results_write(
    *,
    video: VideoAnalysis,
    lines: Mapping[str, CountingLine],
    counter: LineCounter,
    occupancy: ZoneOccupancy,
    mapping: Mapping[str, str],
    frames: int,
    fps: float,
    elapsed: float,
) -> dict[str, Any]:
    totals: dict[tuple[str, str], dict[str, int]] = {}
    counts: Counter[str] = Counter()
    rows = []
    for crossing in counter.crossings:
        category = mapping.get(crossing.class_name, "")
        if not category:
            continue
        counts[category] += 1
        entry = totals.setdefault((crossing.line, category), {"in": 0, "out": 0})
        entry[crossing.direction] += 1
        rows.append(
            LineCrossing(
                organization=video.organization,
                camera=video.camera,
                video=video,
                line=lines.get(crossing.line),
                line_name=crossing.line,
                track_id=crossing.track_id,
                class_name=crossing.class_name,
                category=category,
                direction=crossing.direction,
                frame=crossing.frame,
                occurred_at=video.recorded_at + timedelta(seconds=crossing.frame / fps),
            )
        )
    line_totals = [{"line": line, "category": category, **value} for (line, category), value in sorted(totals.items())]
    zone_peaks = [
        {
            "zone": peak.zone,
            "category": peak.category,
            "peak": peak.peak,
            "frame": peak.frame,
            "at": (video.recorded_at + timedelta(seconds=peak.frame / fps)).isoformat(),
        }
        for peak in sorted(occupancy.peaks.values(), key=lambda p: (p.zone, p.category))
    ]
    with transaction.atomic():
        LineCrossing.objects.filter(video=video).delete()
        try:
            LineCrossing.objects.bulk_create(rows)
        except IntegrityError as exc:  # pragma: no cover - the delete above makes this impossible
            raise Conflict("Crossing events were written twice.") from exc
        video.frames = frames
        video.duration_s = round(frames / fps, 3) if fps else None
        video.counts = dict(sorted(counts.items()))
        video.line_totals = line_totals
        video.zone_peaks = zone_peaks
        video.processing_fps = round(frames / elapsed, 2) if elapsed > 0 else None
        video.save(
            update_fields=[
                "frames",
                "duration_s",
                "counts",
                "line_totals",
                "zone_peaks",
                "processing_fps",
                "updated_at",
            ]
        )
        audit_record(
            actor=Actor.system(video.organization, user=video.created_by),
            action="traffic.video.process",
            obj=video,
            details={"frames": frames, "crossings": len(rows)},
        )
    return {
        "video_id": video.pk,
        "frames": frames,
        "duration_s": video.duration_s,
        "counts": video.counts,
        "line_crossings": line_totals,
        "zone_peaks": zone_peaks,
    }
