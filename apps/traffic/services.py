"""Writes of the traffic app's cameras (with their counting lines and zones) and class maps.

Every function runs in one transaction with its audit event. Image detection is in
`apps.traffic.detection`, video counting in `apps.traffic.video_analysis`, training in
`apps.traffic.training`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import transaction

from apps.traffic.choices import MODEL_KIND, Category, InDirection
from apps.traffic.line_counting import direction_is_ambiguous
from apps.traffic.models import Camera, ClassMap, CountingLine, Zone
from apps.traffic.selectors import class_map_effective
from core.audit.services import audit_record
from core.errors import Conflict, ValidationFailed
from core.tenancy.actors import Actor
from ml.models import RegisteredModel

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


__all__ = [
    "MODEL_KIND",
    "InDirection",
    "camera_create",
    "camera_delete",
    "camera_update",
    "class_map_update",
]
