"""Partner REST API of the model registry (`/api/v1/ml/…`, scope `ml`).

Reads: models with their versions and aliases, one version's full record, an alias's history
(and which version it pointed at on a given date), a version's artifact as a zip with its
manifest. Writes (org admins in the portal, or keys with the `ml` scope): move an alias
(promotion or rollback) and import an artifact as a new version. Every write is audited by
its service.

Routing note: `aliases/history/` is matched before `aliases/<alias>/`, so `history` cannot be
used as an alias name through this API.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from typing import Any

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.schema import conflict
from core.api.views import OrgAPIView
from core.errors import Conflict
from core.tenancy.choices import Scope
from ml.artifacts import ArtifactIntegrityError
from ml.choices import PRODUCTION_ALIAS
from ml.models import ModelAlias
from ml.selectors import (
    model_alias_history,
    model_version_get,
    model_version_live_at,
    registered_model_get,
    registered_model_list,
)
from ml.serializers import (
    ModelAliasEventSerializer,
    ModelVersionDetailSerializer,
    RegisteredModelSerializer,
)
from ml.services import model_alias_set, model_version_export, model_version_import

ML_TAG = ["ml"]


class MlAPIView(OrgAPIView):
    """Every registry endpoint needs the `ml` scope (org admins have it; other roles do not)."""

    required_scope = Scope.ML


class ModelListApi(MlAPIView):
    class FilterSerializer(serializers.Serializer[None]):
        kind = serializers.CharField(required=False, max_length=100, help_text="Only models of this kind.")

        class Meta:
            ref_name = "MlModelListFilter"

    @extend_schema(tags=ML_TAG, parameters=[FilterSerializer], responses=RegisteredModelSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        models = registered_model_list(org=self.org, kind=filters.validated_data.get("kind"))
        return self.paginate(request, models, RegisteredModelSerializer)


class ModelDetailApi(MlAPIView):
    @extend_schema(tags=ML_TAG, responses=RegisteredModelSerializer)
    def get(self, request: Request, name: str) -> Response:
        return Response(RegisteredModelSerializer(registered_model_get(org=self.org, name=name)).data)


class ModelVersionImportApi(MlAPIView):
    """Import an uploaded artifact (e.g. pretrained weights) as the model's next version."""

    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer[None]):
        file = serializers.FileField(help_text="The artifact, in the format the kind imports.")
        kind = serializers.CharField(max_length=100, help_text="Model kind, e.g. `traffic.yolo_detector`.")
        description = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
        promote = serializers.BooleanField(required=False, default=False, help_text="Make it `production` now.")

        class Meta:
            ref_name = "MlModelVersionImportInput"

    @extend_schema(
        tags=ML_TAG,
        request={"multipart/form-data": InputSerializer},
        responses={
            201: ModelVersionDetailSerializer,
            409: conflict("`kind_mismatch`: the model exists with another kind."),
        },
        description=(
            "Creates the model on first import. Formats that can run code when loaded are accepted only "
            "from org admins or keys with the `ml` scope; every import is hashed and audited."
        ),
    )
    def post(self, request: Request, name: str) -> Response:
        self.actor.require_org_admin("import models")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = model_version_import(
            actor=self.actor,
            name=name,
            kind=data.validated_data["kind"],
            upload=data.validated_data["file"],
            description=data.validated_data["description"],
            promote=data.validated_data["promote"],
        )
        return Response(ModelVersionDetailSerializer(version).data, status=status.HTTP_201_CREATED)


class ModelVersionDetailApi(MlAPIView):
    @extend_schema(tags=ML_TAG, responses=ModelVersionDetailSerializer)
    def get(self, request: Request, name: str, number: int) -> Response:
        version = model_version_get(org=self.org, name=name, number=number)
        return Response(ModelVersionDetailSerializer(version).data)


class _JsonErrorsWhateverAccept(DefaultContentNegotiation):
    """Answer errors in JSON even when the client asked only for `application/zip`."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))  # JSON, the project's only renderer
        return renderer, renderer.media_type


class ModelVersionArtifactApi(MlAPIView):
    """Download a version's artifact, verified against its manifest, as a zip with MANIFEST.json."""

    # The body is a FileResponse (never rendered); negotiation only picks how errors are written.
    content_negotiation_class = _JsonErrorsWhateverAccept

    @extend_schema(
        tags=ML_TAG,
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The artifact as a zip."),
            409: OpenApiResponse(description="`artifact_integrity`: a stored file no longer matches its manifest."),
        },
    )
    def get(self, request: Request, name: str, number: int) -> FileResponse:
        version = model_version_get(org=self.org, name=name, number=number)
        # A temporary file rather than memory: artifacts (detector weights) can be large.
        handle = tempfile.TemporaryFile()  # noqa: SIM115  (FileResponse closes it)
        try:
            model_version_export(actor=self.actor, version=version, handle=handle)
        except ArtifactIntegrityError as exc:
            handle.close()
            raise Conflict(str(exc), code="artifact_integrity") from exc
        except BaseException:
            handle.close()
            raise
        handle.seek(0)
        response = FileResponse(
            handle, as_attachment=True, filename=f"{name}-v{number}.zip", content_type="application/zip"
        )
        response["X-Artifact-SHA256"] = version.artifact_sha256
        return response


class ModelAliasApi(MlAPIView):
    """Point an alias at a version: a promotion, or a rollback. Audited, with its reason."""

    class InputSerializer(serializers.Serializer[None]):
        version = serializers.IntegerField(min_value=1, help_text="The version number the alias should point at.")
        reason = serializers.CharField(max_length=500, help_text="Why (kept in the alias history and audit).")

        class Meta:
            ref_name = "MlModelAliasSetInput"

    class OutputSerializer(serializers.Serializer[ModelAlias]):
        model = serializers.CharField(source="registered_model.name", read_only=True)
        alias = serializers.CharField(source="name", read_only=True)
        version = serializers.IntegerField(source="version.number", read_only=True)
        updated_at = serializers.DateTimeField(read_only=True)

        class Meta:
            ref_name = "MlModelAlias"

    @extend_schema(tags=ML_TAG, request=InputSerializer, responses=OutputSerializer)
    def put(self, request: Request, name: str, alias: str) -> Response:
        self.actor.require_org_admin("move model aliases")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        alias_row = model_alias_set(
            actor=self.actor,
            name=name,
            alias=alias,
            version_number=data.validated_data["version"],
            reason=data.validated_data["reason"],
        )
        return Response(self.OutputSerializer(alias_row).data)


class ModelAliasHistoryApi(MlAPIView):
    """Every move of the model's aliases (newest first), or with `?at=` which version was live then."""

    class FilterSerializer(serializers.Serializer[None]):
        alias = serializers.CharField(
            required=False, max_length=50, help_text=f"Only this alias (with `at`: default `{PRODUCTION_ALIAS}`)."
        )
        at = serializers.DateTimeField(
            required=False, help_text="ISO 8601 date-time: answer which version the alias pointed at then."
        )

        class Meta:
            ref_name = "MlModelAliasHistoryFilter"

    class LiveAtSerializer(serializers.Serializer[dict[str, Any]]):
        alias = serializers.CharField(read_only=True)
        at = serializers.DateTimeField(read_only=True)
        version = serializers.IntegerField(read_only=True, allow_null=True, help_text="Null: the alias did not exist.")

        class Meta:
            ref_name = "MlModelAliasLiveAt"

    class HistoryPageSerializer(serializers.Serializer[None]):
        count = serializers.IntegerField()
        next = serializers.URLField(allow_null=True)
        previous = serializers.URLField(allow_null=True)
        results = ModelAliasEventSerializer(many=True)

        class Meta:
            ref_name = "MlPaginatedModelAliasEventList"

    @extend_schema(
        tags=ML_TAG,
        parameters=[
            FilterSerializer,
            OpenApiParameter("page", int, description="Page number (without `at`)."),
            OpenApiParameter("page_size", int, description="Results per page, at most 500 (without `at`)."),
        ],
        responses=PolymorphicProxySerializer(
            component_name="MlModelAliasHistoryResponse",
            serializers=[HistoryPageSerializer, LiveAtSerializer],
            resource_type_field_name=None,
        ),
    )
    def get(self, request: Request, name: str) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        alias = filters.validated_data.get("alias")
        at = filters.validated_data.get("at")
        if at is not None:
            alias = alias or PRODUCTION_ALIAS
            version = model_version_live_at(org=self.org, name=name, at=at, alias=alias)
            answer = {"alias": alias, "at": at, "version": version.number if version else None}
            return Response(self.LiveAtSerializer(answer).data)
        events = model_alias_history(org=self.org, name=name, alias=alias)
        return self.paginate(request, events, ModelAliasEventSerializer)
