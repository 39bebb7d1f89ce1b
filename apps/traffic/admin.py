"""Back office for traffic rows; staff see only their organizations' rows (core's mixin).

Cameras are edited here through the traffic services (`camera_create`, `camera_update`,
`camera_delete`), so every change is audited as in the portal and the API. Their counting lines
and zones, and class maps, are shown but edited only in the portal and the API, where the
services validate them (a line drawn along its in-direction, unknown categories). Detection
runs, video analyses and line crossings are results written by the traffic services: read-only.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.traffic.models import Camera, ClassMap, CountingLine, DetectionRun, LineCrossing, VideoAnalysis, Zone
from apps.traffic.services import CAMERA_FIELDS, camera_create, camera_delete, camera_update
from core.adminkit import OrganizationScopedAdminMixin, ReadOnlyAdminMixin, admin_actor, copy_saved_row


class CountingLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CountingLine
    fields = readonly_fields = ("name", "x1", "y1", "x2", "y2", "in_direction")
    extra = 0


class ZoneInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Zone
    fields = readonly_fields = ("name", "polygon")
    extra = 0


@admin.register(Camera)
class CameraAdmin(OrganizationScopedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "organization", "location", "model_name", "updated_at"]
    search_fields = ["name", "location"]
    fields = [
        "organization",
        *CAMERA_FIELDS,
        "last_frame",
        "last_frame_width",
        "last_frame_height",
        "created_by",
        "created_at",
    ]
    inlines = [CountingLineInline, ZoneInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Camera | None = None) -> list[str]:
        stored = ["last_frame", "last_frame_width", "last_frame_height", "created_by", "created_at"]
        # A camera, its lines and its results belong to one organization for good.
        return ["organization", *stored] if obj is not None else stored

    def save_model(self, request: HttpRequest, obj: Camera, form: Any, change: bool) -> None:
        actor = admin_actor(request, obj.organization)
        values = {key: form.cleaned_data[key] for key in CAMERA_FIELDS if key in form.cleaned_data}
        saved = camera_update(actor=actor, camera=obj, data=values) if change else camera_create(actor=actor, **values)
        copy_saved_row(obj, saved)

    def delete_model(self, request: HttpRequest, obj: Camera) -> None:
        camera_delete(actor=admin_actor(request, obj.organization), camera=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Camera]) -> None:
        for camera in queryset.select_related("organization"):
            camera_delete(actor=admin_actor(request, camera.organization), camera=camera)


@admin.register(ClassMap)
class ClassMapAdmin(OrganizationScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["registered_model", "organization", "updated_at"]


@admin.register(DetectionRun)
class DetectionRunAdmin(OrganizationScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "organization", "camera", "model_name", "model_version_number", "captured_at", "counts"]
    list_filter = ["captured_at"]


@admin.register(VideoAnalysis)
class VideoAnalysisAdmin(OrganizationScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "organization", "camera", "frames", "duration_s", "counts", "created_at"]


@admin.register(LineCrossing)
class LineCrossingAdmin(OrganizationScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["occurred_at", "organization", "camera", "line_name", "category", "direction", "track_id"]
    list_filter = ["direction", "category"]
