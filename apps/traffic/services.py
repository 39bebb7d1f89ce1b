"""Writes of the traffic app: cameras, class maps, image detections, video counting, training.

Every function runs in one transaction with its audit event; heavy work (video counting,
training) is enqueued as a Job on commit.
"""

from __future__ import annotations

import contextlib
import queue
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.traffic.annotation import annotate_detections
from apps.traffic.choices import MODEL_KIND, Category, InDirection
from apps.traffic.datasets import dataset_validate
from apps.traffic.line_counting import (
    DEFAULT_ANTI_FLICKER_FRAMES,
    LineCounter,
    LineSpec,
    TrackedBox,
    ZoneOccupancy,
    ZoneSpec,
    direction_is_ambiguous,
)
from apps.traffic.media_validation import image_validate, upload_to_tempfile, video_check_type, video_probe
from apps.traffic.models import (
    Camera,
    ClassMap,
    CountingLine,
    Detection,
    DetectionRun,
    LineCrossing,
    VideoAnalysis,
    Zone,
)
from apps.traffic.selectors import class_map_effective, detector_version_get
from core.audit.services import audit_record
from core.errors import Conflict, PermissionDenied, ValidationFailed
from core.jobs.runner import job_enqueue
from core.tenancy.actors import Actor
from core.tenancy.choices import Scope
from ml import runtime
from ml.models import ModelVersion, RegisteredModel, TrainingRun
from ml.selectors import model_version_get
from ml.training import training_run_create

VIDEO_JOB_KIND = "traffic.video_count"

# --- Cameras ---------------------------------------------------------------------------------------


def _validate_lines(lines: Sequence[Mapping[str, Any]]) -> None:
    names = [line["name"] for line in lines]
    if len(set(names)) != len(names):
        raise ValidationFailed("Counting line names must be unique per camera.", fields={"lines": ["Duplicate name."]})
    for index, line in enumerate(lines):
        (x1, y1), (x2, y2) = line["points"]
        if direction_is_ambiguous((x1, y1), (x2, y2), line["in_direction"]):
            message = (
                f"Line {line['name']!r} is (nearly) parallel to its in-direction {line['in_direction']!r}: "
                "draw the line across the traffic, or pick another direction."
            )
            raise ValidationFailed(message, fields={f"lines[{index}].in_direction": [message]})


def _validate_zones(zones: Sequence[Mapping[str, Any]]) -> None:
    names = [zone["name"] for zone in zones]
    if len(set(names)) != len(names):
        raise ValidationFailed("Zone names must be unique per camera.", fields={"zones": ["Duplicate name."]})


def _lines_replace(*, camera: Camera, lines: Sequence[Mapping[str, Any]]) -> None:
    """Make the camera's lines exactly `lines`, keeping rows (and their crossings' links) by name."""
    _validate_lines(lines)
    existing = {line.name: line for line in camera.lines.all()}
    wanted = {line["name"] for line in lines}
    CountingLine.objects.filter(camera=camera).exclude(name__in=wanted).delete()
    for spec in lines:
        (x1, y1), (x2, y2) = spec["points"]
        row = existing.get(spec["name"])
        values = {"x1": x1, "y1": y1, "x2": x2, "y2": y2, "in_direction": spec["in_direction"]}
        if row is None:
            CountingLine.objects.create(organization=camera.organization, camera=camera, name=spec["name"], **values)
        else:
            for key, value in values.items():
                setattr(row, key, value)
            row.save(update_fields=[*values, "updated_at"])


def _zones_replace(*, camera: Camera, zones: Sequence[Mapping[str, Any]]) -> None:
    _validate_zones(zones)
    Zone.objects.filter(camera=camera).delete()
    Zone.objects.bulk_create(
        Zone(
            organization=camera.organization,
            camera=camera,
            name=zone["name"],
            polygon=[list(p) for p in zone["polygon"]],
        )
        for zone in zones
    )


CAMERA_FIELDS = ("name", "location", "latitude", "longitude", "description", "model_name")


@transaction.atomic
def camera_create(
    *,
    actor: Actor,
    name: str,
    location: str = "",
    latitude: float | None = None,
    longitude: float | None = None,
    description: str = "",
    model_name: str = "",
    lines: Sequence[Mapping[str, Any]] = (),
    zones: Sequence[Mapping[str, Any]] = (),
) -> Camera:
    """Register a camera with its counting lines and zones."""
    if Camera.objects.filter(organization=actor.organization, name=name).exists():
        raise Conflict(f"A camera named {name!r} already exists.", fields={"name": ["Already taken."]})
    camera = Camera.objects.create(
        organization=actor.organization,
        name=name,
        location=location,
        latitude=latitude,
        longitude=longitude,
        description=description,
        model_name=model_name,
        created_by=actor.user,
    )
    _lines_replace(camera=camera, lines=lines)
    _zones_replace(camera=camera, zones=zones)
    audit_record(actor=actor, action="traffic.camera.create", obj=camera, details={"name": name, "lines": len(lines)})
    return camera


@transaction.atomic
def camera_update(
    *,
    actor: Actor,
    camera: Camera,
    data: Mapping[str, Any],
) -> Camera:
    """Change a camera's fields; `lines`/`zones`, when given, replace the whole set."""
    camera = Camera.objects.select_for_update().get(pk=camera.pk, organization=actor.organization)
    changed = [key for key in CAMERA_FIELDS if key in data and getattr(camera, key) != data[key]]
    if "name" in changed and Camera.objects.filter(organization=actor.organization, name=data["name"]).exists():
        raise Conflict(f"A camera named {data['name']!r} already exists.", fields={"name": ["Already taken."]})
    for key in changed:
        setattr(camera, key, data[key])
    if changed:
        camera.save(update_fields=[*changed, "updated_at"])
    if "lines" in data:
        _lines_replace(camera=camera, lines=data["lines"])
        changed.append("lines")
    if "zones" in data:
        _zones_replace(camera=camera, zones=data["zones"])
        changed.append("zones")
    audit_record(actor=actor, action="traffic.camera.update", obj=camera, details={"changed": changed})
    return camera


@transaction.atomic
def camera_delete(*, actor: Actor, camera: Camera) -> None:
    audit_record(actor=actor, action="traffic.camera.delete", obj=camera, details={"name": camera.name})
    camera.delete()


# --- Class maps ------------------------------------------------------------------------------------


@transaction.atomic
def class_map_update(*, actor: Actor, registered_model: RegisteredModel, mapping: Mapping[str, str]) -> dict[str, str]:
    """Set categories for some of a detector's classes ("" ignores a class); returns the full map."""
    if registered_model.kind != MODEL_KIND or registered_model.organization_id != actor.organization.pk:
        raise ValidationFailed("Class maps exist only for traffic detectors.", fields={"model": ["Not a detector."]})
    allowed = {"", *Category.values}
    bad = {name: category for name, category in mapping.items() if category not in allowed}
    if bad:
        raise ValidationFailed(
            f"Unknown categories: {', '.join(sorted(set(bad.values())))}.",
            fields={"mapping": [f'Use one of: {", ".join(Category.values)} or "" to ignore.']},
        )
    row, _ = ClassMap.objects.select_for_update().get_or_create(
        registered_model=registered_model, defaults={"organization": actor.organization, "mapping": {}}
    )
    row.mapping = {**row.mapping, **{str(k): str(v) for k, v in mapping.items()}}
    row.save(update_fields=["mapping", "updated_at"])
    audit_record(
        actor=actor, action="traffic.class_map.update", obj=row, details={"model": registered_model.name, **mapping}
    )
    return class_map_effective(org=actor.organization, registered_model=registered_model)


# --- Image detection -------------------------------------------------------------------------------


def _class_ids_for(names: Mapping[int, str], mapping: Mapping[str, str], wanted: Sequence[str]) -> list[int]:
    ids: set[int] = set()
    unknown = []
    for item in wanted:
        matches = {index for index, name in names.items() if item in (name, mapping.get(name))}
        if not matches:
            unknown.append(item)
        ids |= matches
    if unknown:
        raise ValidationFailed(
            f"Unknown classes for this model: {', '.join(unknown)}.",
            fields={"classes": ["Use category names or the model's class names."]},
        )
    return sorted(ids)


def _names_of(version: ModelVersion) -> dict[int, str]:
    return {int(k): str(v) for k, v in (version.input_schema.get("names") or {}).items()}


def _default_imgsz(version: ModelVersion) -> int:
    return int(version.input_schema.get("imgsz") or version.params.get("imgsz") or 640)


def _media_name(org_id: int, folder: str, suffix: str) -> str:
    return f"traffic/org-{org_id}/{folder}/{timezone.now():%Y/%m/%d}/{uuid.uuid4().hex}{suffix}"


def detection_run_create(
    *,
    actor: Actor,
    upload: UploadedFile,
    camera: Camera | None = None,
    model_name: str | None = None,
    version_number: int | None = None,
    conf: float = 0.25,
    imgsz: int | None = None,
    classes: Sequence[str] = (),
    captured_at: datetime | None = None,
    store_annotated: bool = True,
) -> DetectionRun:
    """Detect objects in one uploaded image with the production (or given) detector version.

    The image is fully validated first (nothing is stored for a bad one); the image, its
    annotated copy and every box are stored; counts are per category through the class map.
    """
    image = image_validate(upload)
    version = detector_version_get(
        org=actor.organization, name=model_name or (camera.model_name if camera else ""), number=version_number
    )
    names = _names_of(version)
    mapping = class_map_effective(org=actor.organization, registered_model=version.registered_model, names=names)
    class_ids = _class_ids_for(names, mapping, classes) if classes else None
    size = int(imgsz or _default_imgsz(version))
    prediction = runtime.predict(version, [image.pixels], imgsz=size, conf=conf, classes=class_ids)
    output = prediction.outputs[0]
    detections = [
        {
            "class_id": class_id,
            "class_name": names.get(class_id, str(class_id)),
            "category": mapping.get(names.get(class_id, ""), ""),
            "confidence": confidence,
            "box": box,
        }
        for box, class_id, confidence in zip(output.boxes, output.class_ids, output.confidences, strict=True)
    ]
    counts = Counter(d["category"] for d in detections if d["category"])
    org_id = actor.organization.pk
    image_name = default_storage.save(_media_name(org_id, "images", image.suffix), ContentFile(image.data))
    stored = [image_name]
    try:
        annotated_name = ""
        if store_annotated:
            annotated_name = default_storage.save(
                _media_name(org_id, "annotated", ".jpg"), ContentFile(annotate_detections(image.pixels, detections))
            )
            stored.append(annotated_name)
        with transaction.atomic():
            run = DetectionRun.objects.create(
                organization=actor.organization,
                camera=camera,
                model_version=version,
                model_name=version.registered_model.name,
                model_version_number=version.number,
                image=image_name,
                annotated_image=annotated_name,
                original_filename=(upload.name or "")[:255],
                width=image.width,
                height=image.height,
                imgsz=size,
                conf=conf,
                classes=list(classes),
                counts=dict(sorted(counts.items())),
                inference_ms=round(prediction.predict_ms, 3),
                captured_at=captured_at or timezone.now(),
                created_by=actor.user,
            )
            Detection.objects.bulk_create(
                Detection(
                    organization=actor.organization,
                    run=run,
                    class_id=d["class_id"],
                    class_name=d["class_name"],
                    category=d["category"],
                    confidence=d["confidence"],
                    x1=d["box"][0],
                    y1=d["box"][1],
                    x2=d["box"][2],
                    y2=d["box"][3],
                )
                for d in detections
            )
            if camera is not None:
                Camera.objects.filter(pk=camera.pk).update(
                    last_frame=image_name,
                    last_frame_width=image.width,
                    last_frame_height=image.height,
                    updated_at=timezone.now(),
                )
            audit_record(
                actor=actor,
                action="traffic.detection.create",
                obj=run,
                details={"model": run.model_name, "version": run.model_version_number, "boxes": len(detections)},
            )
    except BaseException:
        for name in stored:
            default_storage.delete(name)
        raise

    return run


# --- Video counting --------------------------------------------------------------------------------


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
    version = detector_version_get(org=actor.organization, name=model_name or camera.model_name, number=version_number)
    scratch = Path(settings.MODEL_CACHE_DIR) / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    local = upload_to_tempfile(upload, scratch, suffix)
    try:
        probe = video_probe(local, suffix=suffix)
        org_id = actor.organization.pk
        with local.open("rb") as handle:
            video_name = default_storage.save(_media_name(org_id, "videos", suffix), handle)
    finally:
        local.unlink(missing_ok=True)
    stored = [video_name]
    try:
        frame_name = ""
        if probe.first_frame_jpeg:
            frame_name = default_storage.save(
                _media_name(org_id, "frames", ".jpg"), ContentFile(probe.first_frame_jpeg)
            )
            stored.append(frame_name)
        with transaction.atomic():
            job = job_enqueue(actor=actor, kind=VIDEO_JOB_KIND, params={})
            video = VideoAnalysis.objects.create(
                organization=actor.organization,
                camera=camera,
                job=job,
                video=video_name,
                original_filename=(upload.name or "")[:255],
                model_version=version,
                model_name=version.registered_model.name,
                model_version_number=version.number,
                recorded_at=recorded_at or timezone.now(),
                imgsz=int(imgsz or _default_imgsz(version)),
                conf=conf,
                anti_flicker_frames=anti_flicker_frames,
                frame_stride=frame_stride,
                fps=probe.fps,
                width=probe.width,
                height=probe.height,
                frames=probe.frame_count or None,
                created_by=actor.user,
            )
            job.params = {"video_id": video.pk}
            job.save(update_fields=["params", "updated_at"])
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
    except BaseException:
        for name in stored:
            default_storage.delete(name)
        raise
    return video


@contextlib.contextmanager
def _local_video(name: str) -> Iterator[Path]:
    """A local path of a stored video (the file itself on filesystem storage, a temp copy otherwise)."""
    try:
        yield Path(default_storage.path(name))
        return
    except NotImplementedError:
        pass
    scratch = Path(settings.MODEL_CACHE_DIR) / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=scratch, suffix=Path(name).suffix) as handle:
        with default_storage.open(name, "rb") as source:
            while chunk := source.read(1 << 20):
                handle.write(chunk)
        handle.flush()
        yield Path(handle.name)


_FRAMES_DONE = object()


def _frames(path: Path, stride: int, *, prefetch: int = 8) -> Generator[tuple[int, Any], None, None]:
    """`(index, BGR frame)` of every `stride`-th frame, decoded ahead on a reader thread.

    OpenCV releases the GIL while it decodes, so the next frames decode while the model runs on
    the current one (ultralytics does the same for video sources on GPUs). Skipped frames are
    only grabbed, not converted. The thread stops and releases the file when the consumer
    stops early (an error, a closed generator).
    """
    import cv2

    queued: queue.Queue[Any] = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()
    errors: list[BaseException] = []

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                queued.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        capture = cv2.VideoCapture(str(path))
        try:
            index = 0
            while not stop.is_set():
                if index % stride:
                    if not capture.grab():
                        break
                else:
                    ok, frame = capture.read()
                    if not ok or not put((index, frame)):
                        break
                index += 1
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
            errors.append(exc)
        finally:
            capture.release()
            put(_FRAMES_DONE)

    reader = threading.Thread(target=read, name="traffic-video-frames", daemon=True)
    reader.start()
    try:
        while (item := queued.get()) is not _FRAMES_DONE:
            yield item
        if errors:
            raise errors[0]
    finally:
        stop.set()
        reader.join()


ReportFn = Callable[..., None]


def video_analysis_process(*, video_id: int, report: ReportFn) -> dict[str, Any]:
    """Track and count a stored video (the body of the `traffic.video_count` job).

    Frames are read as a stream, detected and tracked with the version's cached model, and fed
    to the line counter and zone occupancy. Results are written at the end in one transaction
    that first removes any rows of an earlier attempt, so a re-run leaves exactly one set.
    """
    video = VideoAnalysis.objects.select_related("camera", "model_version__registered_model", "organization").get(
        pk=video_id
    )
    if video.model_version is None:
        raise ValidationFailed("The model version of this video was deleted.")
    camera = video.camera
    lines = list(camera.lines.all())
    line_specs = [LineSpec(line.name, (line.x1, line.y1), (line.x2, line.y2), line.in_direction) for line in lines]
    zone_specs = [ZoneSpec(zone.name, [tuple(p) for p in zone.polygon]) for zone in camera.zones.all()]
    counter = LineCounter(line_specs, anti_flicker_frames=video.anti_flicker_frames)
    occupancy = ZoneOccupancy(zone_specs)
    version = video.model_version
    names = _names_of(version)
    mapping = class_map_effective(org=video.organization, registered_model=version.registered_model, names=names)
    loaded = runtime.load_version(version)
    total = video.frames or 0
    width = video.width or 1
    height = video.height or 1
    fps = video.fps or 25.0
    frames_read = 0
    started = time.perf_counter()
    last_report = 0.0
    report(progress=0.0, message="Tracking started")
    with _local_video(video.video) as path:
        tracked_frames = loaded.kind.track(  # type: ignore[attr-defined]
            loaded.model, _frames(path, max(1, video.frame_stride)), imgsz=video.imgsz, conf=video.conf, fps=fps
        )
        for tracked in tracked_frames:
            frames_read = tracked.index + 1
            boxes = [
                TrackedBox(track_id, tuple(box), names.get(class_id, str(class_id)))  # type: ignore[arg-type]
                for box, track_id, class_id in zip(tracked.boxes, tracked.track_ids, tracked.class_ids, strict=True)
                if mapping.get(names.get(class_id, ""))
            ]
            counter.update(tracked.index, boxes, width, height)
            occupancy.update(tracked.index, [(b.box, mapping[b.class_name]) for b in boxes], width, height)
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


# --- Training --------------------------------------------------------------------------------------


def detector_training_start(
    *,
    actor: Actor,
    upload: UploadedFile,
    model_name: str,
    epochs: int,
    imgsz: int,
    batch: int,
    base_version: int | None = None,
    architecture: str | None = None,
    promote: bool = False,
) -> TrainingRun:
    """Validate a YOLO dataset zip, store it and enqueue training on the `training` queue."""
    if not (actor.is_org_admin or actor.has_scope(Scope.ML)):
        raise PermissionDenied("Only organization admins or keys with the 'ml' scope may train models.")
    parent = None
    if base_version is not None:
        parent = model_version_get(org=actor.organization, name=model_name, number=base_version)
        if parent.kind != MODEL_KIND:
            raise ValidationFailed(
                "The base version is not a traffic detector.", fields={"base_version": ["Wrong kind."]}
            )
    scratch = Path(settings.MODEL_CACHE_DIR) / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    local = upload_to_tempfile(upload, scratch, ".zip")
    try:
        summary = dataset_validate(local)
        with local.open("rb") as handle:
            dataset_name = default_storage.save(_media_name(actor.organization.pk, "datasets", ".zip"), handle)
    finally:
        local.unlink(missing_ok=True)
    params: dict[str, Any] = {"epochs": epochs, "imgsz": imgsz, "batch": batch}
    if parent is not None:
        params["base_version_id"] = parent.pk
        params["base_version"] = parent.number
    else:
        params["architecture"] = architecture or "yolo11n"
    try:
        with transaction.atomic():
            run = training_run_create(
                actor=actor,
                model_name=model_name,
                kind=MODEL_KIND,
                data={"dataset": dataset_name, "sha256": summary.sha256, "summary": summary.as_json()},
                params=params,
                promote=promote,
                parent_version=parent,
            )
            audit_record(
                actor=actor,
                action="traffic.dataset.upload",
                obj=run,
                details={"dataset": dataset_name, "sha256": summary.sha256, "images": summary.train_images},
            )
    except BaseException:
        default_storage.delete(dataset_name)
        raise
    return run


__all__ = [
    "InDirection",
    "camera_create",
    "camera_delete",
    "camera_update",
    "class_map_update",
    "detection_run_create",
    "detector_training_start",
    "video_analysis_create",
    "video_analysis_process",
]
