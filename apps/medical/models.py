"""The imaging archive's rows: the Patient → Study → Series → Instance index, each organization's
archive policy and DICOM nodes, and the append-only PHI access log.

The index carries the QIDO-RS matching attributes as indexed columns, so a search never opens a
file; the stored bytes are content-addressed (`Instance.sha256`) and read back byte for byte by
WADO-RS. The organization is part of every key: the same Study Instance UID in two organizations
is two unrelated studies, and another organization's UIDs are simply "not found".
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.medical.choices import (
    AccessKind,
    AiDecision,
    AnalysisTrigger,
    DuplicatePolicy,
    ExportDestination,
    FindingLevel,
    ReceivedVia,
    ReportStatus,
)
from core.audit.models import AppendOnlyModel, AppendOnlyQuerySet
from core.tenancy.models import TimeStampedModel

UID_LENGTH = 64  # PS3.5 6.2: a UI value is at most 64 characters


class ArchiveSettings(TimeStampedModel):
    """One organization's archive policy: what a second copy of an instance does, and whether
    every received instance is de-identified before it is stored (research archives)."""

    organization = models.OneToOneField("core.Organization", on_delete=models.CASCADE, related_name="medical_settings")
    duplicate_policy = models.CharField(max_length=16, choices=DuplicatePolicy.choices, default=DuplicatePolicy.KEEP)
    deidentify_on_receipt = models.BooleanField(default=False)
    # The PS3.15 Annex E options applied on receipt (see apps.medical.deidentify.DeidOptions).
    deidentify_options = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name_plural = "archive settings"
        ordering = ["organization__slug"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(duplicate_policy__in=DuplicatePolicy.values), name="medical_settings_policy_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization} archive settings"


class DicomNode(TimeStampedModel):
    """A DICOM application entity (a modality, a PACS) allowed to send to the listener.

    The calling AE title names the organization, so a title belongs to one organization only;
    an association from an unknown title is refused.
    """

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="dicom_nodes")
    ae_title = models.CharField(max_length=16, unique=True)
    description = models.CharField(max_length=200, blank=True)
    host = models.CharField(max_length=255, blank=True, help_text="Expected peer address; empty accepts any.")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["ae_title"]
        verbose_name = "DICOM node"

    def __str__(self) -> str:
        return self.ae_title


class Patient(TimeStampedModel):
    """A patient as the sending systems identify them (Patient ID within the organization)."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="medical_patients")
    patient_id = models.CharField(max_length=64, blank=True)
    issuer_of_patient_id = models.CharField(max_length=64, blank=True)
    patient_name = models.CharField(max_length=324, blank=True)  # PN: up to 3 groups of 64 + separators
    birth_date = models.CharField(max_length=8, blank=True)  # DA as stored (YYYYMMDD), may be empty
    sex = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["patient_name", "patient_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "patient_id", "issuer_of_patient_id"], name="medical_patient_unique_id"
            )
        ]
        indexes = [models.Index(fields=["organization", "patient_name"], name="medical_patient_org_name")]

    def __str__(self) -> str:
        return f"{self.patient_name or '(no name)'} [{self.patient_id}]"


class Study(TimeStampedModel):
    """A study: the QIDO-RS study attributes as columns, and its counts kept up to date on every store."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="medical_studies")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    study_instance_uid = models.CharField(max_length=UID_LENGTH)
    study_date = models.CharField(max_length=8, blank=True, db_index=True)
    study_time = models.CharField(max_length=16, blank=True)
    accession_number = models.CharField(max_length=16, blank=True)
    study_id = models.CharField(max_length=16, blank=True)
    study_description = models.CharField(max_length=64, blank=True)
    referring_physician_name = models.CharField(max_length=324, blank=True)
    # Backslash-separated, sorted, as DICOM writes a multi-valued CS ("CT\\SR").
    modalities_in_study = models.CharField(max_length=200, blank=True)
    number_of_series = models.PositiveIntegerField(default=0)
    number_of_instances = models.PositiveIntegerField(default=0)
    # Study-level attributes of the first instance received, as DICOM JSON (for `includefield`).
    attributes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-study_date", "-study_time", "study_instance_uid"]
        verbose_name_plural = "studies"
        constraints = [
            models.UniqueConstraint(fields=["organization", "study_instance_uid"], name="medical_study_unique_uid")
        ]
        indexes = [
            models.Index(fields=["organization", "study_date"], name="medical_study_org_date"),
            models.Index(fields=["organization", "accession_number"], name="medical_study_org_accession"),
        ]

    def __str__(self) -> str:
        return self.study_instance_uid


class Series(TimeStampedModel):
    """A series of one study: the QIDO-RS series attributes as columns."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="medical_series")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    series_instance_uid = models.CharField(max_length=UID_LENGTH)
    modality = models.CharField(max_length=16, blank=True)
    series_number = models.IntegerField(null=True, blank=True)
    series_description = models.CharField(max_length=64, blank=True)
    body_part_examined = models.CharField(max_length=16, blank=True)
    series_date = models.CharField(max_length=8, blank=True)
    series_time = models.CharField(max_length=16, blank=True)
    performed_procedure_step_start_date = models.CharField(max_length=8, blank=True)
    performed_procedure_step_start_time = models.CharField(max_length=16, blank=True)
    number_of_instances = models.PositiveIntegerField(default=0)
    attributes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["series_number", "series_instance_uid"]
        verbose_name_plural = "series"
        constraints = [
            models.UniqueConstraint(fields=["organization", "series_instance_uid"], name="medical_series_unique_uid")
        ]
        indexes = [models.Index(fields=["organization", "modality"], name="medical_series_org_modality")]

    def __str__(self) -> str:
        return self.series_instance_uid


class Instance(TimeStampedModel):
    """One stored SOP instance: its file (content-addressed by sha256, byte-identical to what was
    received) and the instance-level attributes QIDO-RS and WADO-RS need without opening it."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="medical_instances")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    sop_instance_uid = models.CharField(max_length=UID_LENGTH)
    sop_class_uid = models.CharField(max_length=UID_LENGTH)
    transfer_syntax_uid = models.CharField(max_length=UID_LENGTH)
    instance_number = models.IntegerField(null=True, blank=True)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    number_of_frames = models.PositiveIntegerField(null=True, blank=True)
    burned_in_annotation = models.CharField(max_length=3, blank=True)
    file = models.CharField(max_length=300)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    received_via = models.CharField(max_length=16, choices=ReceivedVia.choices)
    # The dataset without bulk data, as DICOM JSON (bulk values are read from the file on demand).
    attributes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["instance_number", "sop_instance_uid"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "sop_instance_uid"], name="medical_instance_unique_uid"),
        ]
        indexes = [models.Index(fields=["organization", "sha256"], name="medical_instance_org_sha")]

    def __str__(self) -> str:
        return self.sop_instance_uid


class UidMapping(models.Model):
    """De-identification's UID remapping: within an organization the same source UID always maps
    to the same new UID, so de-identified studies stay linked across exports."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+")
    source_uid = models.CharField(max_length=UID_LENGTH)
    new_uid = models.CharField(max_length=UID_LENGTH)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "source_uid"], name="medical_uid_mapping_unique_source")
        ]

    def __str__(self) -> str:
        return f"{self.source_uid} → {self.new_uid}"


class PatientDateShift(models.Model):
    """De-identification's date shift per patient (Retain Longitudinal Temporal Information with
    modified dates): every date of one patient moves by the same number of days."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+")
    patient_key = models.CharField(max_length=64, help_text="sha256 of the source Patient ID (never the ID itself).")
    shift_days = models.IntegerField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "patient_key"], name="medical_date_shift_unique_patient")
        ]

    def __str__(self) -> str:
        return f"{self.patient_key[:8]}… {self.shift_days:+d} days"


class PhiAccess(AppendOnlyModel):
    """One request that read protected health information: who, which organization, what kind of
    access, which studies, when, and the request id. One row per request (a search that returned
    forty studies, a retrieve of a study's 300 instances), with one `PhiAccessStudy` per study.

    UIDs are kept as text, not foreign keys, so the log outlives a deleted study.
    """

    organization = models.ForeignKey("core.Organization", on_delete=models.PROTECT, related_name="medical_phi_access")
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_api_key = models.ForeignKey("core.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=150)
    kind = models.CharField(max_length=24, choices=AccessKind.choices)
    path = models.CharField(max_length=500, blank=True)
    series_instance_uid = models.CharField(max_length=UID_LENGTH, blank=True)
    sop_instance_uid = models.CharField(max_length=UID_LENGTH, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)

    append_only_message = "The PHI access log is append-only."
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "PHI access"
        verbose_name_plural = "PHI access log"
        indexes = [models.Index(fields=["organization", "-created_at"], name="medical_phi_org_created")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.kind}"


class PhiAccessStudy(models.Model):
    """A study one PHI access touched (so the log reads per study)."""

    access = models.ForeignKey(PhiAccess, on_delete=models.PROTECT, related_name="studies")
    organization = models.ForeignKey("core.Organization", on_delete=models.PROTECT, related_name="+")
    study_instance_uid = models.CharField(max_length=UID_LENGTH)
    patient_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["organization", "study_instance_uid"], name="medical_phi_study_org_uid")]

    def __str__(self) -> str:
        return self.study_instance_uid


class Export(TimeStampedModel):
    """A de-identified copy of chosen studies, made by a job: a zip to download, or instances
    written into another organization's archive (research). Instances that may carry burned-in
    text are quarantined (listed, not exported)."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="medical_exports")
    job = models.OneToOneField("core.Job", on_delete=models.PROTECT, related_name="medical_export")
    study_uids = models.JSONField(default=list)
    options = models.JSONField(default=dict, blank=True)
    destination = models.CharField(max_length=16, choices=ExportDestination.choices, default=ExportDestination.ZIP)
    target_organization = models.ForeignKey(
        "core.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    file = models.CharField(max_length=300, blank=True)
    exported_instances = models.PositiveIntegerField(default=0)
    quarantined = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"export {self.pk} ({len(self.study_uids)} studies)"


# --- Diagnosis (part 2): routing rules, analyses and their findings, clinicians' reports ---------


class RoutingRule(TimeStampedModel):
    """Analyse every new study whose series match: modality, body part, series description
    pattern (a case-insensitive regular expression searched in the description); an empty
    criterion matches anything. The matching series are analysed with the model's `alias`."""

    organization = models.ForeignKey(
        "core.Organization", on_delete=models.CASCADE, related_name="medical_routing_rules"
    )
    name = models.CharField(max_length=100)
    modality = models.CharField(max_length=16, blank=True)
    body_part = models.CharField(max_length=16, blank=True)
    series_description_pattern = models.CharField(max_length=200, blank=True)
    registered_model = models.ForeignKey("ml.RegisteredModel", on_delete=models.PROTECT, related_name="+")
    alias = models.CharField(max_length=64, default="production")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="medical_routing_rule_name")]

    def __str__(self) -> str:
        return self.name


class Analysis(TimeStampedModel):
    """One run of an image classifier over a study, done by a Job on the `inference` queue.

    The study-level outcome (suggested label, its probability, every class's probability) is
    filled when the job succeeds, with the SR and saliency instances it wrote into the study;
    `errors` lists the instances that could not be read (the job still succeeds with the rest)."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="medical_analyses")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="analyses")
    job = models.OneToOneField("core.Job", on_delete=models.PROTECT, related_name="medical_analysis")
    model_version = models.ForeignKey("ml.ModelVersion", on_delete=models.PROTECT, related_name="+")
    alias = models.CharField(max_length=64, blank=True)
    trigger = models.CharField(max_length=16, choices=AnalysisTrigger.choices, default=AnalysisTrigger.API)
    routing_rule = models.ForeignKey(
        RoutingRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="analyses"
    )
    suggested_label = models.CharField(max_length=100, blank=True)
    probability = models.FloatField(null=True, blank=True)
    probabilities = models.JSONField(default=dict, blank=True)  # {class name: probability}
    sr_sop_instance_uid = models.CharField(max_length=UID_LENGTH, blank=True)
    saliency_sop_instance_uid = models.CharField(max_length=UID_LENGTH, blank=True)
    errors = models.JSONField(default=list, blank=True)  # [{"sop_instance_uid", "error"}]
    completed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "study", "-created_at"], name="medical_analysis_study")]

    def __str__(self) -> str:
        return f"analysis {self.pk} of {self.study.study_instance_uid}"


class AnalysisFinding(models.Model):
    """A classifier's answer for one instance, or for one series (its instances aggregated).

    `saliency_file` is the storage name of a PNG overlay (Grad-CAM) at the source image's size,
    kept for the instance the finding concerns most."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+")
    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="findings")
    level = models.CharField(max_length=16, choices=FindingLevel.choices)
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="+")
    instance = models.ForeignKey(Instance, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    frame_number = models.PositiveIntegerField(null=True, blank=True)
    suggested_label = models.CharField(max_length=100)
    probability = models.FloatField()
    probabilities = models.JSONField(default=dict)
    saliency_file = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["analysis_id", "level", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["analysis", "level", "series", "instance", "frame_number"],
                name="medical_finding_unique",
                nulls_distinct=False,
            )
        ]

    def __str__(self) -> str:
        return f"{self.level} finding {self.suggested_label} ({self.probability:.2f})"


class ReportQuerySet(models.QuerySet["Report"]):
    """Bulk writes never touch a signed report: `update()`/`delete()` of a set holding one raise.

    A guard beside the services (which refuse first, with a 409): no code path, admin action or
    shell slip rewrites an attestation."""

    def update(self, **kwargs: Any) -> int:
        if self.filter(status=ReportStatus.SIGNED).exists():
            raise PermissionError(Report.signed_message)
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        if self.filter(status=ReportStatus.SIGNED).exists():
            raise PermissionError(Report.signed_message)
        return super().delete()


class Report(TimeStampedModel):
    """A clinician's report on a study, in versions: a draft is edited, signing makes it
    VERIFIED and immutable (who, when, the content's sha256), and an amendment is a new version
    linked to the signed one it amends (`amends`), which stays readable."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="medical_reports")
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="reports")
    analysis = models.ForeignKey(Analysis, null=True, blank=True, on_delete=models.PROTECT, related_name="reports")
    version = models.PositiveIntegerField(default=1)
    amends = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT, related_name="amendment")
    status = models.CharField(max_length=16, choices=ReportStatus.choices, default=ReportStatus.DRAFT)
    findings = models.TextField(blank=True)
    impression = models.TextField(blank=True)
    ai_decision = models.CharField(max_length=16, choices=AiDecision.choices, blank=True)
    final_label = models.CharField(max_length=100, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    signed_at = models.DateTimeField(null=True, blank=True)
    content_sha256 = models.CharField(max_length=64, blank=True)
    sr_sop_instance_uid = models.CharField(max_length=UID_LENGTH, blank=True)

    signed_message: ClassVar[str] = "A signed report is immutable; amend it instead."
    objects = ReportQuerySet.as_manager()

    class Meta:
        ordering = ["study_id", "-version", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "version"], name="medical_report_study_version"),
        ]

    def __str__(self) -> str:
        return f"report v{self.version} of {self.study.study_instance_uid} ({self.status})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Refuse to rewrite a row that is signed in the database (signing itself saves a draft)."""
        if self.pk is not None and Report.objects.filter(pk=self.pk, status=ReportStatus.SIGNED).exists():
            raise PermissionError(self.signed_message)
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        if self.pk is not None and Report.objects.filter(pk=self.pk, status=ReportStatus.SIGNED).exists():
            raise PermissionError(self.signed_message)
        return super().delete(*args, **kwargs)
