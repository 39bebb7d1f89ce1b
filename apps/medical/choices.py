"""Choices of the medical app."""

from django.db import models

DOMAIN = "medical"


class DuplicatePolicy(models.TextChoices):
    """What the archive does with a second instance that has an already stored SOP Instance UID.
    The same bytes twice are always a no-op."""

    KEEP = "keep", "Keep the stored instance, answer a warning"
    OVERWRITE = "overwrite", "Replace the stored instance"
    REJECT = "reject", "Refuse the new instance"


class ReceivedVia(models.TextChoices):
    STOW = "stow", "DICOMweb STOW-RS"
    CSTORE = "cstore", "DICOM C-STORE"
    UPLOAD = "upload", "Portal upload"
    EXPORT = "export", "De-identified export from another archive"
    DEMO = "demo", "Demo data"


class AccessKind(models.TextChoices):
    """What a PHI access read."""

    SEARCH = "search", "Search (QIDO-RS)"
    RETRIEVE = "retrieve", "Retrieve (WADO-RS)"
    METADATA = "metadata", "Metadata"
    FRAMES = "frames", "Frames"
    RENDERED = "rendered", "Rendered image"
    THUMBNAIL = "thumbnail", "Thumbnail"
    BULKDATA = "bulkdata", "Bulk data"
    PORTAL = "portal", "Portal page"
    EXPORT = "export", "De-identified export"
    DOWNLOAD = "download", "Download"


class ExportDestination(models.TextChoices):
    ZIP = "zip", "Zip download"
    ORGANIZATION = "organization", "Another organization's archive"
