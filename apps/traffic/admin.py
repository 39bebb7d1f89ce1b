"""Back office for traffic rows; staff see only their organizations' rows (core's mixin).

Cameras and class maps are configuration and editable here; detection runs, video analyses and
line crossings are results written by the traffic services, so they are read-only.
"""

from __future__ import annotations

from django.contrib import admin

from apps.traffic.models import Camera, ClassMap, CountingLine, DetectionRun, LineCrossing, VideoAnalysis, Zone
from core.adminkit import OrganizationScopedAdminMixin, ReadOnlyAdminMixin


class CountingLineInline(admin.TabularInline):
    model = CountingLine
    fields = ["name", "x1", "y1", "x2", "y2", "in_direction"]
    extra = 0


class ZoneInline(admin.TabularInline):
    model = Zone
    fields = ["name", "polygon"]
    extra = 0


@admin.register(Camera)
class CameraAdmin(OrganizationScopedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "organization", "location", "model_name", "updated_at"]
    search_fields = ["name", "location"]
    readonly_fields = ["last_frame", "last_frame_width", "last_frame_height", "created_by", "created_at"]
    inlines = [CountingLineInline, ZoneInline]


@admin.register(ClassMap)
class ClassMapAdmin(OrganizationScopedAdminMixin, admin.ModelAdmin):
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
