"""Serializers of the reports API: a report version with its place in the amendment chain and
the AI suggestion it reviews. Output fields are all read-only; the input names exactly what a
client may write (never the status, signer, hash or SR)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.medical.choices import AiDecision
from apps.medical.models import Analysis, Report
from apps.medical.reports import FINDINGS_MAX, IMPRESSION_MAX, LABEL_MAX


class ReportAnalysisOutputSerializer(serializers.ModelSerializer[Analysis]):
    """The AI suggestion a report reviews."""

    model = serializers.CharField(source="model_version.registered_model.name", read_only=True)
    model_version = serializers.IntegerField(source="model_version.number", read_only=True)
    artifact_sha256 = serializers.CharField(source="model_version.artifact_sha256", read_only=True)

    class Meta:
        model = Analysis
        ref_name = "MedicalReportAnalysis"
        fields = [
            "id",
            "model",
            "model_version",
            "artifact_sha256",
            "suggested_label",
            "probability",
            "probabilities",
            "sr_sop_instance_uid",
        ]
        read_only_fields = fields


class ReportOutputSerializer(serializers.ModelSerializer[Report]):
    study_instance_uid = serializers.CharField(source="study.study_instance_uid", read_only=True)
    analysis = ReportAnalysisOutputSerializer(read_only=True, allow_null=True)
    amends: serializers.PrimaryKeyRelatedField[Report] = serializers.PrimaryKeyRelatedField(
        read_only=True, help_text="The signed version this one amends."
    )
    amended_by = serializers.SerializerMethodField(help_text="The version that amends this one, if any.")
    author = serializers.SerializerMethodField()
    signed_by = serializers.SerializerMethodField()

    class Meta:
        model = Report
        ref_name = "MedicalReport"
        fields = [
            "id",
            "study_instance_uid",
            "version",
            "status",
            "amends",
            "amended_by",
            "analysis",
            "findings",
            "impression",
            "ai_decision",
            "final_label",
            "author",
            "signed_by",
            "signed_at",
            "content_sha256",
            "sr_sop_instance_uid",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_amended_by(self, report: Report) -> int | None:
        return report.amendment.pk if _has_amendment(report) else None

    def get_author(self, report: Report) -> str | None:
        return report.author.get_username() if report.author else None

    def get_signed_by(self, report: Report) -> str | None:
        return report.signed_by.get_username() if report.signed_by else None


def _has_amendment(report: Report) -> bool:
    try:
        report.amendment  # noqa: B018 - the reverse one-to-one raises when there is none
    except Report.DoesNotExist:
        return False
    return True


class ReportContentInputSerializer(serializers.Serializer[Any]):
    """What a clinician writes. Left out: unchanged (on PATCH) or empty (on POST)."""

    findings = serializers.CharField(required=False, allow_blank=True, max_length=FINDINGS_MAX, trim_whitespace=False)
    impression = serializers.CharField(
        required=False, allow_blank=True, max_length=IMPRESSION_MAX, trim_whitespace=False
    )
    ai_decision = serializers.ChoiceField(
        # the model's choice set (with "" for "not decided / no AI"), so the schema has one AiDecision enum
        choices=AiDecision.choices,
        required=False,
        allow_blank=True,
        help_text="What the clinician decided about the AI suggestion (required to sign when there is one).",
    )
    final_label = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=LABEL_MAX,
        help_text="The clinician's finding; `accepted` sets it to the suggestion.",
    )

    class Meta:
        ref_name = "MedicalReportContentInput"


class ReportCreateInputSerializer(ReportContentInputSerializer):
    analysis = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="The analysis of this study the report reviews. Left out: the latest succeeded one; "
        "null: none (a report without AI suggestion).",
    )

    class Meta:
        ref_name = "MedicalReportCreateInput"
