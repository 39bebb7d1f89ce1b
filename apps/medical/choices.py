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
    AI = "ai", "Written by a Tessera analysis (AI result or report)"


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
    ANALYSIS = "analysis", "AI analysis result"
    REPORT = "report", "Clinician's report"


class ExportDestination(models.TextChoices):
    ZIP = "zip", "Zip download"
    ORGANIZATION = "organization", "Another organization's archive"


class AnalysisTrigger(models.TextChoices):
    """Why an analysis ran."""

    API = "api", "Requested through the API"
    PORTAL = "portal", "Requested in the portal"
    ROUTING = "routing", "A routing rule, on receipt"


class FindingLevel(models.TextChoices):
    INSTANCE = "instance", "Instance"
    SERIES = "series", "Series"


class ReportStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SIGNED = "signed", "Signed (verified)"


class AiDecision(models.TextChoices):
    """What the clinician decided about the AI's suggestion."""

    ACCEPTED = "accepted", "Accepted the AI suggestion"
    REJECTED = "rejected", "Rejected the AI suggestion"
    CHANGED = "changed", "Changed the AI suggestion"
    NO_AI = "", "No AI suggestion"


class WorklistState(models.TextChoices):
    """A study's place in the clinician's worklist (derived, not stored)."""

    NEW = "new", "New"
    AI_SUGGESTED = "ai_suggested", "AI suggested"
    LABELLED = "labelled", "Labelled (training data)"
    REPORTED = "reported", "Reported"
