"""Output serializers of the archive's REST API (beside DICOMweb): studies and series from the
index, the archive settings, PHI access rows and exports. Every field is read-only."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.medical.models import ArchiveSettings, Export, PhiAccess, Series, Study
from core.jobs.serializers import JobOutputSerializer


class SeriesOutputSerializer(serializers.ModelSerializer[Series]):
    class Meta:
        model = Series
        ref_name = "MedicalSeries"
        fields = [
            "series_instance_uid",
            "modality",
            "series_number",
            "series_description",
            "body_part_examined",
            "series_date",
            "series_time",
            "number_of_instances",
            "created_at",
        ]
        read_only_fields = fields


class StudyOutputSerializer(serializers.ModelSerializer[Study]):
    patient_id = serializers.CharField(source="patient.patient_id", read_only=True)
    patient_name = serializers.CharField(source="patient.patient_name", read_only=True)
    patient_birth_date = serializers.CharField(source="patient.birth_date", read_only=True)
    patient_sex = serializers.CharField(source="patient.sex", read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Study
        ref_name = "MedicalStudy"
        fields = [
            "study_instance_uid",
            "patient_id",
            "patient_name",
            "patient_birth_date",
            "patient_sex",
            "study_date",
            "study_time",
            "accession_number",
            "study_id",
            "study_description",
            "referring_physician_name",
            "modalities_in_study",
            "number_of_series",
            "number_of_instances",
            "created_at",
            "url",
        ]
        read_only_fields = fields

    def get_url(self, study: Study) -> str:
        return f"/api/v1/medical/studies/{study.study_instance_uid}/"


class StudyDetailOutputSerializer(StudyOutputSerializer):
    series = SeriesOutputSerializer(many=True, read_only=True)

    class Meta(StudyOutputSerializer.Meta):
        ref_name = "MedicalStudyDetail"
        fields = [*StudyOutputSerializer.Meta.fields, "series"]
        read_only_fields = fields


class ArchiveSettingsOutputSerializer(serializers.ModelSerializer[ArchiveSettings]):
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True, help_text="Null: never changed.")

    class Meta:
        model = ArchiveSettings
        ref_name = "MedicalArchiveSettings"
        fields = ["duplicate_policy", "deidentify_on_receipt", "deidentify_options", "updated_at"]
        read_only_fields = fields


class PhiAccessOutputSerializer(serializers.ModelSerializer[PhiAccess]):
    when = serializers.DateTimeField(source="created_at", read_only=True)
    who = serializers.CharField(source="actor_label", read_only=True)
    user_id = serializers.IntegerField(source="actor_user_id", read_only=True, allow_null=True)
    api_key_id = serializers.IntegerField(source="actor_api_key_id", read_only=True, allow_null=True)
    studies = serializers.SerializerMethodField()

    class Meta:
        model = PhiAccess
        ref_name = "MedicalPhiAccess"
        fields = [
            "id",
            "when",
            "who",
            "user_id",
            "api_key_id",
            "kind",
            "studies",
            "series_instance_uid",
            "sop_instance_uid",
            "path",
            "request_id",
            "ip_address",
        ]
        read_only_fields = fields

    def get_studies(self, access: PhiAccess) -> list[str]:
        return [study.study_instance_uid for study in access.studies.all()]


class QuarantinedInstanceSerializer(serializers.Serializer[Any]):
    study = serializers.CharField(read_only=True, help_text="Source Study Instance UID.")
    series = serializers.CharField(read_only=True)
    instance = serializers.CharField(read_only=True)
    reason = serializers.CharField(read_only=True)

    class Meta:
        ref_name = "MedicalQuarantinedInstance"


class ExportOutputSerializer(serializers.ModelSerializer[Export]):
    studies = serializers.ListField(source="study_uids", child=serializers.CharField(), read_only=True)
    target_organization: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    quarantined = QuarantinedInstanceSerializer(many=True, read_only=True)
    job = JobOutputSerializer(read_only=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Export
        ref_name = "MedicalExport"
        fields = [
            "id",
            "studies",
            "options",
            "destination",
            "target_organization",
            "exported_instances",
            "quarantined",
            "job",
            "download_url",
            "created_at",
        ]
        read_only_fields = fields

    def get_download_url(self, export: Export) -> str | None:
        return f"/api/v1/medical/exports/{export.pk}/download/" if export.file else None
