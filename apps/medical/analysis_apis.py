"""The analysis and routing-rule REST API (`/api/v1/medical/…`). Thin: validate, call one service
or selector, serialize.

    POST/GET  studies/{study}/analyses/                                   start (202) / list
    GET       studies/{study}/analyses/{id}/                              status, suggestion, findings
    GET       studies/{study}/analyses/{id}/findings/{finding}/saliency.png   the overlay (PNG)
    GET/POST  routing-rules/                  GET/PATCH/DELETE  routing-rules/{id}/

An analysis' result is patient data: every read writes a PHI access row (kind `analysis`).
Routing rules are changed by org admins (portal session) or API keys with the `medical` scope.
"""

from __future__ import annotations

from typing import Any

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from apps.medical import analysis as analyses
from apps.medical import routing, selectors, services
from apps.medical.analysis_serializers import (
    AnalysisCreatedSerializer,
    AnalysisDetailOutputSerializer,
    AnalysisOutputSerializer,
    RoutingRuleOutputSerializer,
)
from apps.medical.apis import MedicalApi
from apps.medical.choices import AccessKind, AnalysisTrigger
from apps.medical.models import Analysis, Study
from core.api.schema import conflict, referenced_not_found
from core.jobs.serializers import JobOutputSerializer
from ml.choices import PRODUCTION_ALIAS
from ml.models import RegisteredModel
from ml.selectors import registered_model_get

SCHEMA_TAG = "medical: analysis"
RULES_TAG = "medical: routing rules"
ADMIN_NOTE = "Changes need an org admin (portal session) or an API key with the `medical` scope."
_ANALYSIS_ERRORS = (
    "`wrong_model_kind` (the model is not a medical.image_classifier), `unknown_alias` (the model has no "
    "such alias), `no_readable_image` (the study holds no image the model can read)."
)


def _record(api: MedicalApi, request: Request, study: Study, *, sop_instance_uid: str = "") -> None:
    services.phi_access_record(
        actor=api.actor,
        kind=AccessKind.ANALYSIS,
        studies=[(study.study_instance_uid, study.patient.patient_id)],
        path=request.get_full_path(),
        sop_instance_uid=sop_instance_uid,
    )


def _model(api: MedicalApi, name: str) -> RegisteredModel:
    """The organization's model by name, any kind (the service answers a 400 for the wrong kind)."""
    return registered_model_get(org=api.org, name=name)


class AnalysisListApi(MedicalApi):
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer[Any]):
        model = serializers.CharField(max_length=100, help_text="A medical.image_classifier model of the organization.")
        alias = serializers.CharField(
            max_length=50, required=False, default=PRODUCTION_ALIAS, help_text="Which version (default production)."
        )

    @extend_schema(responses=AnalysisOutputSerializer(many=True), tags=[SCHEMA_TAG])
    def get(self, request: Request, study_uid: str) -> Response:
        """The study's analyses, newest first (a PHI access row: `analysis`)."""
        study = selectors.study_get(org=self.org, study_uid=study_uid)
        response = self.paginate(request, analyses.analysis_list(org=self.org, study=study), AnalysisOutputSerializer)
        _record(self, request, study)
        return response

    @extend_schema(
        request=InputSerializer,
        responses={
            202: AnalysisCreatedSerializer,
            400: OpenApiResponse(description=_ANALYSIS_ERRORS),
            404: referenced_not_found("the study or the `model`"),
        },
        tags=[SCHEMA_TAG],
    )
    def post(self, request: Request, study_uid: str) -> Response:
        """Analyse the study with a classifier (a job on the `inference` queue; poll the analysis or its job)."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        study = selectors.study_get(org=self.org, study_uid=study_uid)
        created = analyses.analysis_create(
            actor=self.actor,
            study=study,
            registered_model=_model(self, data.validated_data["model"]),
            alias=data.validated_data["alias"],
            trigger=AnalysisTrigger.API,
        )
        analysis = analyses.analysis_get(org=self.org, study=study, analysis_id=created.pk)
        context = {"request": request}
        body = {
            "analysis": AnalysisOutputSerializer(analysis, context=context).data,
            "job": JobOutputSerializer(analysis.job).data,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)


class AnalysisDetailApi(MedicalApi):
    @extend_schema(responses=AnalysisDetailOutputSerializer, tags=[SCHEMA_TAG])
    def get(self, request: Request, study_uid: str, analysis_id: int) -> Response:
        """An analysis: status, the model version, the suggestion, findings per series and instance
        with saliency overlay URLs (a PHI access row: `analysis`)."""
        study = selectors.study_get(org=self.org, study_uid=study_uid)
        analysis: Analysis = analyses.analysis_get(org=self.org, study=study, analysis_id=analysis_id)
        _record(self, request, study)
        return Response(AnalysisDetailOutputSerializer(analysis, context={"request": request}).data)


class AnalysisSaliencyApi(MedicalApi):
    renderer_classes = [JSONRenderer]

    @extend_schema(
        responses={
            (200, "image/png"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="The Grad-CAM overlay (RGBA, transparent where the model did not look) at the source "
                "image's size.",
            )
        },
        tags=[SCHEMA_TAG],
    )
    def get(self, request: Request, study_uid: str, analysis_id: int, finding_id: int) -> FileResponse:
        """A finding's saliency overlay (a PHI access row: `analysis`, naming the instance)."""
        study = selectors.study_get(org=self.org, study_uid=study_uid)
        analysis = analyses.analysis_get(org=self.org, study=study, analysis_id=analysis_id)
        finding = analyses.finding_get(analysis=analysis, finding_id=finding_id)
        handle = analyses.saliency_open(finding)
        concerned = finding if finding.instance is not None else analyses.series_finding_concerned_instance(finding)
        sop_uid = concerned.instance.sop_instance_uid if concerned is not None and concerned.instance else ""
        _record(self, request, study, sop_instance_uid=sop_uid)
        return FileResponse(handle, content_type=analyses.SALIENCY_MEDIA_TYPE)


# --- Routing rules ----------------------------------------------------------------------------------


class RoutingRuleInputSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    model = serializers.CharField(max_length=100, help_text="A medical.image_classifier model of the organization.")
    alias = serializers.CharField(max_length=50, required=False, default=PRODUCTION_ALIAS)
    modality = serializers.CharField(
        max_length=16, required=False, allow_blank=True, default="", help_text="Exact (e.g. CR, CT); empty: any."
    )
    body_part = serializers.CharField(
        max_length=16, required=False, allow_blank=True, default="", help_text="Case-insensitive; empty: any."
    )
    series_description_pattern = serializers.CharField(
        max_length=routing.PATTERN_MAX_LENGTH,
        required=False,
        allow_blank=True,
        default="",
        help_text="A regular expression searched case-insensitively in the series description; empty: any.",
    )
    active = serializers.BooleanField(required=False, default=True)

    class Meta:
        ref_name = "MedicalRoutingRuleInput"


_RULE_ERRORS = {
    400: OpenApiResponse(
        description="`invalid_pattern` (not a regular expression), `wrong_model_kind`, `unknown_alias`, `invalid`."
    ),
    404: referenced_not_found("the `model`"),
    409: conflict("`name_taken`: another rule of the organization has this name."),
}


class RoutingRuleListApi(MedicalApi):
    parser_classes = [JSONParser]

    @extend_schema(responses=RoutingRuleOutputSerializer(many=True), tags=[RULES_TAG])
    def get(self, request: Request) -> Response:
        """The organization's routing rules, by name."""
        return self.paginate(request, routing.routing_rule_list(org=self.org), RoutingRuleOutputSerializer)

    @extend_schema(
        request=RoutingRuleInputSerializer,
        responses={201: RoutingRuleOutputSerializer, **_RULE_ERRORS},
        tags=[RULES_TAG],
        description=ADMIN_NOTE,
    )
    def post(self, request: Request) -> Response:
        """A rule: analyse every new study with a series matching it, on receipt (STOW-RS, C-STORE, upload)."""
        data = RoutingRuleInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        self.actor.require_org_admin("manage routing rules", key_scope="medical")
        rule = routing.routing_rule_create(
            actor=self.actor, registered_model=_model(self, values.pop("model")), **values
        )
        return Response(
            RoutingRuleOutputSerializer(rule, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


class RoutingRuleDetailApi(MedicalApi):
    parser_classes = [JSONParser]

    @extend_schema(responses=RoutingRuleOutputSerializer, tags=[RULES_TAG])
    def get(self, request: Request, rule_id: int) -> Response:
        rule = routing.routing_rule_get(org=self.org, rule_id=rule_id)
        return Response(RoutingRuleOutputSerializer(rule, context={"request": request}).data)

    @extend_schema(
        request=RoutingRuleInputSerializer(partial=True),
        responses={200: RoutingRuleOutputSerializer, **_RULE_ERRORS},
        tags=[RULES_TAG],
        description=f"Fields left out keep their value. {ADMIN_NOTE}",
    )
    def patch(self, request: Request, rule_id: int) -> Response:
        data = RoutingRuleInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        rule = routing.routing_rule_get(org=self.org, rule_id=rule_id)
        values = dict(data.validated_data)
        if "model" in values:
            values["registered_model"] = _model(self, values.pop("model"))
        rule = routing.routing_rule_update(actor=self.actor, rule=rule, data=values)
        return Response(RoutingRuleOutputSerializer(rule, context={"request": request}).data)

    @extend_schema(responses={204: None}, tags=[RULES_TAG], description=ADMIN_NOTE)
    def delete(self, request: Request, rule_id: int) -> Response:
        rule = routing.routing_rule_get(org=self.org, rule_id=rule_id)
        routing.routing_rule_delete(actor=self.actor, rule=rule)
        return Response(status=status.HTTP_204_NO_CONTENT)
