"""Serializers of the DICOM nodes API (`/api/v1/medical/dicom-nodes/`)."""

from __future__ import annotations

from rest_framework import serializers

from apps.medical.models import DicomNode
from apps.medical.services import AE_TITLE_MAX_LENGTH


class DicomNodeInputSerializer(serializers.Serializer):
    # Not trimmed here: the service strips the non-significant spaces and refuses tabs and other
    # control characters (DRF's trimming would silently drop them).
    ae_title = serializers.CharField(
        max_length=AE_TITLE_MAX_LENGTH,
        trim_whitespace=False,
        help_text=(
            "The modality's calling AE title: 1-16 printable ASCII characters, no backslash, not only "
            "spaces; leading/trailing spaces are not significant and are removed; case-sensitive. "
            "Unique across every organization."
        ),
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    host = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        help_text="The peer address the node must call from (IP address or host name); empty accepts any.",
    )
    active = serializers.BooleanField(required=False, help_text="An inactive node is refused at association.")


class DicomNodeOutputSerializer(serializers.ModelSerializer[DicomNode]):
    class Meta:
        model = DicomNode
        fields = ["id", "ae_title", "description", "host", "active", "created_at", "updated_at"]
        read_only_fields = fields
