"""Output serializers of the analysis and routing-rule API. Every field is read-only.

An analysis answers its job's status, the model version that ran (name, number, artifact
sha256), the study-level suggestion with every class's probability, and its findings: one per
series, each with the findings of its instances, and absolute URLs of the saliency overlays
(`…/findings/{id}/saliency.png`) and of the SR and secondary capture it wrote (WADO-RS).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.medical.choices import FindingLevel
from apps.medical.models import Analysis, AnalysisFinding, Instance, RoutingRule
from core.jobs.serializers import JobOutputSerializer

API_ROOT = "/api/v1/medical"
# An absolute URL, or null where there is nothing to link to (no saliency map, not written yet).
NULLABLE_URL = serializers.URLField(allow_null=True, read_only=True)


def _absolute(context: Mapping[str, Any], path: str) -> str:
    request = context.get("request")
    return request.build_absolute_uri(path) if request is not None else path


def analysis_path(analysis: Analysis) -> str:
    return f"{API_ROOT}/studies/{analysis.study.study_instance_uid}/analyses/{analysis.pk}/"


def saliency_path(analysis: Analysis, finding: AnalysisFinding) -> str:
    return f"{analysis_path(analysis)}findings/{finding.pk}/saliency.png"


class ModelVersionRefSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(source="registered_model.name", read_only=True)
    kind = serializers.CharField(read_only=True)
    version = serializers.IntegerField(source="number", read_only=True)
    artifact_sha256 = serializers.CharField(read_only=True)

    class Meta:
        ref_name = "MedicalAnalysisModel"


class InstanceFindingSerializer(serializers.ModelSerializer[AnalysisFinding]):
    sop_instance_uid = serializers.CharField(source="instance.sop_instance_uid", read_only=True)
    probabilities = serializers.DictField(child=serializers.FloatField(), read_only=True)
    saliency_url = serializers.SerializerMethodField()

    class Meta:
        model = AnalysisFinding
        ref_name = "MedicalInstanceFinding"
        fields = [
            "id",
            "sop_instance_uid",
            "frame_number",
            "suggested_label",
            "probability",
            "probabilities",
            "saliency_url",
        ]
        read_only_fields = fields

    @extend_schema_field(NULLABLE_URL)
    def get_saliency_url(self, finding: AnalysisFinding) -> str | None:
        if not finding.saliency_file:
            return None
        return _absolute(self.context, saliency_path(self.context["analysis"], finding))


class SeriesFindingSerializer(serializers.ModelSerializer[AnalysisFinding]):
    series_instance_uid = serializers.CharField(source="series.series_instance_uid", read_only=True)
    modality = serializers.CharField(source="series.modality", read_only=True)
    series_description = serializers.CharField(source="series.series_description", read_only=True)
    probabilities = serializers.DictField(child=serializers.FloatField(), read_only=True)
    saliency_url = serializers.SerializerMethodField()
    saliency_instance = serializers.SerializerMethodField(
        help_text="The instance (and frame) the series' saliency map is drawn on: the one with the highest "
        "probability of the series' suggested label."
    )
    instances = serializers.SerializerMethodField()

    class Meta:
        model = AnalysisFinding
        ref_name = "MedicalSeriesFinding"
        fields = [
            "id",
            "series_instance_uid",
            "modality",
            "series_description",
            "suggested_label",
            "probability",
            "probabilities",
            "saliency_url",
            "saliency_instance",
            "instances",
        ]
        read_only_fields = fields

    @extend_schema_field(NULLABLE_URL)
    def get_saliency_url(self, finding: AnalysisFinding) -> str | None:
        if not finding.saliency_file:
            return None
        return _absolute(self.context, saliency_path(self.context["analysis"], finding))

    @extend_schema_field(InstanceFindingSerializer(allow_null=True))
    def get_saliency_instance(self, finding: AnalysisFinding) -> dict[str, Any] | None:
        for instance_finding in self.context["instances_by_series"].get(finding.series_id, []):
            if instance_finding.saliency_file and instance_finding.saliency_file == finding.saliency_file:
                return dict(InstanceFindingSerializer(instance_finding, context=self.context).data)
        return None

    @extend_schema_field(InstanceFindingSerializer(many=True))
    def get_instances(self, finding: AnalysisFinding) -> list[Any]:
        rows = self.context["instances_by_series"].get(finding.series_id, [])
        return list(InstanceFindingSerializer(rows, many=True, context=self.context).data)


class AnalysisErrorSerializer(serializers.Serializer[Any]):
    sop_instance_uid = serializers.CharField(read_only=True)
    error = serializers.CharField(read_only=True)

    class Meta:
        ref_name = "MedicalAnalysisError"


class AnalysisOutputSerializer(serializers.ModelSerializer[Analysis]):
    """An analysis without its findings (lists)."""

    study_instance_uid = serializers.CharField(source="study.study_instance_uid", read_only=True)
    status = serializers.CharField(source="job.status", read_only=True, help_text="The job's status.")
    progress = serializers.FloatField(source="job.progress", read_only=True)
    model = ModelVersionRefSerializer(source="model_version", read_only=True)
    probabilities = serializers.DictField(child=serializers.FloatField(), read_only=True)
    # The field named as the model's column; DRF's metaclass moves declared fields off the class,
    # so `Serializer.errors` (validation errors) stays what it is.
    errors = AnalysisErrorSerializer(many=True, read_only=True)  # type: ignore[assignment]
    routing_rule = serializers.IntegerField(source="routing_rule_id", read_only=True, allow_null=True)
    job = JobOutputSerializer(read_only=True)
    structured_report_url = serializers.SerializerMethodField(help_text="WADO-RS URL of the SR it wrote.")
    saliency_capture_url = serializers.SerializerMethodField(
        help_text="WADO-RS URL of the secondary capture (saliency blended over the image) it wrote."
    )
    url = serializers.SerializerMethodField()

    class Meta:
        model = Analysis
        ref_name = "MedicalAnalysis"
        fields = [
            "id",
            "study_instance_uid",
            "status",
            "progress",
            "trigger",
            "routing_rule",
            "alias",
            "model",
            "suggested_label",
            "probability",
            "probabilities",
            "errors",
            "sr_sop_instance_uid",
            "saliency_sop_instance_uid",
            "structured_report_url",
            "saliency_capture_url",
            "job",
            "created_at",
            "completed_at",
            "url",
        ]
        read_only_fields = fields

    def _wado(self, analysis: Analysis, sop_uid: str) -> str | None:
        if not sop_uid:
            return None
        instance = (
            Instance.objects.filter(organization_id=analysis.organization_id, sop_instance_uid=sop_uid)
            .select_related("series")
            .only("sop_instance_uid", "series__series_instance_uid")
            .first()
        )
        if instance is None:
            return None
        return _absolute(
            self.context,
            f"{API_ROOT}/dicomweb/studies/{analysis.study.study_instance_uid}/series/"
            f"{instance.series.series_instance_uid}/instances/{sop_uid}",
        )

    @extend_schema_field(NULLABLE_URL)
    def get_structured_report_url(self, analysis: Analysis) -> str | None:
        return self._wado(analysis, analysis.sr_sop_instance_uid)

    @extend_schema_field(NULLABLE_URL)
    def get_saliency_capture_url(self, analysis: Analysis) -> str | None:
        return self._wado(analysis, analysis.saliency_sop_instance_uid)

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, analysis: Analysis) -> str:
        return _absolute(self.context, analysis_path(analysis))


class AnalysisDetailOutputSerializer(AnalysisOutputSerializer):
    """An analysis with its findings: per series, each with its instances."""

    saliency_url = serializers.SerializerMethodField(
        help_text="The overlay of the instance that concerns the study-level suggestion most."
    )
    series = serializers.SerializerMethodField()

    _nested: dict[str, Any]  # the findings, grouped once per representation (see to_representation)

    class Meta(AnalysisOutputSerializer.Meta):
        ref_name = "MedicalAnalysisDetail"
        fields = [*AnalysisOutputSerializer.Meta.fields, "saliency_url", "series"]
        read_only_fields = fields

    def to_representation(self, analysis: Analysis) -> dict[str, Any]:
        findings = list(analysis.findings.select_related("series", "instance").order_by("series__series_number", "id"))
        by_series: dict[int, list[AnalysisFinding]] = {}
        for finding in findings:
            if finding.level == FindingLevel.INSTANCE:
                by_series.setdefault(finding.series_id, []).append(finding)
        self._nested = {
            **self.context,
            "analysis": analysis,
            "instances_by_series": by_series,
            "series_findings": [finding for finding in findings if finding.level == FindingLevel.SERIES],
        }
        return dict(super().to_representation(analysis))

    @extend_schema_field(NULLABLE_URL)
    def get_saliency_url(self, analysis: Analysis) -> str | None:
        label = analysis.suggested_label
        candidates = [row for rows in self._nested["instances_by_series"].values() for row in rows]
        if not label or not candidates:
            return None
        concerned = max(candidates, key=lambda row: float(row.probabilities.get(label, 0.0)))
        if not concerned.saliency_file:
            return None
        return _absolute(self.context, saliency_path(analysis, concerned))

    @extend_schema_field(SeriesFindingSerializer(many=True))
    def get_series(self, analysis: Analysis) -> list[Any]:
        return list(SeriesFindingSerializer(self._nested["series_findings"], many=True, context=self._nested).data)


class AnalysisCreatedSerializer(serializers.Serializer[Any]):
    """What `POST …/analyses/` answers (202): the analysis and its job."""

    analysis = AnalysisOutputSerializer(read_only=True)
    job = JobOutputSerializer(read_only=True)

    class Meta:
        ref_name = "MedicalAnalysisCreated"


class RoutingRuleOutputSerializer(serializers.ModelSerializer[RoutingRule]):
    model = serializers.CharField(source="registered_model.name", read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = RoutingRule
        ref_name = "MedicalRoutingRule"
        fields = [
            "id",
            "name",
            "modality",
            "body_part",
            "series_description_pattern",
            "model",
            "alias",
            "active",
            "created_at",
            "updated_at",
            "url",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, rule: RoutingRule) -> str:
        return _absolute(self.context, f"{API_ROOT}/routing-rules/{rule.pk}/")
