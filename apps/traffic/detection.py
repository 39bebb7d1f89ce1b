"""Image detection: one uploaded image through the production (or given) detector version.

`detection_run_create` is the hot path of the detection API, so it does only what the answer
needs: validate and decode the image, one lean query for the serving version, the class map,
`ml.runtime.predict`, then the image file and the rows. The annotated copy (boxes drawn over
the image) is not made here: `detection_annotated_image` draws it the first time someone asks
for it and keeps it in storage for the next time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import cv2
import numpy as np
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from apps.traffic.annotation import annotate_detections
from apps.traffic.choices import DEFAULT_MODEL_NAME, DOMAIN
from apps.traffic.media_validation import image_validate
from apps.traffic.models import Camera, Detection, DetectionRun
from apps.traffic.selectors import class_map_effective
from core.audit.services import audit_record
from core.errors import NotFound, ValidationFailed
from core.storage import media_name, storage_delete, stored_files
from core.tenancy.actors import Actor
from core.tenancy.models import Organization
from ml import runtime
from ml.models import ModelVersion, served_by
from ml.selectors import serving_version_get


def detector_names(version: ModelVersion) -> dict[int, str]:
    """The version's class names by class id, as recorded in its input schema."""
    return {int(k): str(v) for k, v in (version.input_schema.get("names") or {}).items()}


def detector_default_imgsz(version: ModelVersion) -> int:
    """The inference size a version was trained (or imported) at; 640 when it recorded none."""
    return int(version.input_schema.get("imgsz") or version.params.get("imgsz") or 640)


def detector_serving_version(*, org: Organization, name: str | None, number: int | None = None) -> ModelVersion:
    """The detector version a request uses: `number` of model `name`, else its production version.

    Without a name, the `traffic-detector` model (named explicitly: one query on the hot path,
    and no other model answers in its place). A model of another domain is "not found" (404),
    like a missing one.
    """
    return serving_version_get(
        org=org, name=name or DEFAULT_MODEL_NAME, number=number, domain=DOMAIN, default_name=DEFAULT_MODEL_NAME
    )


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
) -> DetectionRun:
    """Detect objects in one uploaded image with the production (or given) detector version.

    The image is fully validated first (nothing is stored for a bad one); the image and every
    box are stored; counts are per category through the class map. The returned run carries
    its boxes (no further query is needed to serialise it).
    """
    image = image_validate(upload)
    org = actor.organization
    version = detector_serving_version(
        org=org, name=model_name or (camera.model_name if camera else ""), number=version_number
    )
    names = detector_names(version)
    mapping = class_map_effective(org=org, registered_model=version.registered_model, names=names)
    class_ids = _class_ids_for(names, mapping, classes) if classes else None
    size = int(imgsz or detector_default_imgsz(version))
    prediction = runtime.predict(version, [image.pixels], imgsz=size, conf=conf, classes=class_ids)
    output = prediction.outputs[0]
    now = timezone.now()
    found = [
        (box, class_id, confidence, names.get(class_id, str(class_id)), mapping.get(names.get(class_id, ""), ""))
        for box, class_id, confidence in zip(output.boxes, output.class_ids, output.confidences, strict=True)
    ]
    counts = Counter(category for *_, category in found if category)
    with stored_files() as files:
        image_name = files.save(
            media_name(org_id=org.pk, domain=DOMAIN, folder="images", suffix=image.suffix), image.data
        )
        with transaction.atomic():
            run = DetectionRun.objects.create(
                organization=org,
                camera=camera,
                **served_by(version),
                image=image_name,
                annotated_image="",
                original_filename=(upload.name or "")[:255],
                width=image.width,
                height=image.height,
                imgsz=size,
                conf=conf,
                classes=list(classes),
                counts=dict(sorted(counts.items())),
                inference_ms=round(prediction.predict_ms, 3),
                captured_at=captured_at or now,
                created_by=actor.user,
            )
            boxes = [
                Detection(
                    organization=org,
                    run=run,
                    class_id=class_id,
                    class_name=class_name,
                    category=category,
                    confidence=confidence,
                    x1=box[0],
                    y1=box[1],
                    x2=box[2],
                    y2=box[3],
                )
                for box, class_id, confidence, class_name, category in found
            ]
            Detection.objects.bulk_create(boxes)
            if camera is not None:
                Camera.objects.filter(pk=camera.pk).update(
                    last_frame=image_name, last_frame_width=image.width, last_frame_height=image.height, updated_at=now
                )
            audit_record(
                actor=actor,
                action="traffic.detection.create",
                obj=run,
                details={"model": run.model_name, "version": run.model_version_number, "boxes": len(boxes)},
            )
    # The boxes just written, in the order the run's `detections` are read (highest confidence
    # first), so the API serialises the answer without reading them back.
    ordered = sorted(boxes, key=lambda box: -box.confidence)  # stable: ties keep insertion (id) order
    # Django's own prefetch cache (what `prefetch_related` fills); django-stubs does not declare it.
    run._prefetched_objects_cache = {"detections": ordered}  # type: ignore[attr-defined]  # Django's prefetch cache, filled so the serializer reads the boxes just created
    return run


def detection_annotated_image(*, org: Organization, run: DetectionRun) -> str:
    """The storage name of the run's annotated copy, drawn and stored the first time it is asked for.

    The boxes are the run's stored detections drawn over its stored image (coloured by the
    category recorded with each box). Two first requests at once may both draw; the first to
    record its copy wins and the other's file is deleted. Not audited: a derived, cached view
    of data that is already recorded.
    """
    if run.organization_id != org.pk:
        raise NotFound("Detection not found.")
    if run.annotated_image and default_storage.exists(run.annotated_image):
        return run.annotated_image
    if not run.image or not default_storage.exists(run.image):
        raise NotFound("File not found.")
    with default_storage.open(run.image, "rb") as handle:
        pixels = cv2.imdecode(np.frombuffer(handle.read(), dtype=np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:  # pragma: no cover - the image was validated before it was stored
        raise NotFound("The stored image cannot be decoded.")
    detections: list[dict[str, Any]] = [
        {
            "box": [d.x1, d.y1, d.x2, d.y2],
            "class_name": d.class_name,
            "category": d.category,
            "confidence": d.confidence,
        }
        for d in run.detections.all()
    ]
    jpeg = annotate_detections(pixels, detections)
    previous = run.annotated_image
    with stored_files() as files:
        name = files.save(media_name(org_id=org.pk, domain=DOMAIN, folder="annotated", suffix=".jpg"), jpeg)
        with transaction.atomic():
            recorded = DetectionRun.objects.filter(pk=run.pk, annotated_image=previous).update(annotated_image=name)
    if not recorded:  # another request recorded its copy first: serve that one
        storage_delete([name])
        run.refresh_from_db(fields=["annotated_image"])
        return run.annotated_image
    run.annotated_image = name
    return name
