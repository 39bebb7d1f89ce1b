"""The DICOM nodes API (`/api/v1/medical/dicom-nodes/`): which modalities and PACS may send to
the DICOM listener, by calling AE title (and optionally from which host).

Org admins (portal session) and API keys with the `medical` scope; clinicians are refused (403)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from apps.medical import selectors, services
from apps.medical.choices import DOMAIN
from apps.medical.node_serializers import DicomNodeInputSerializer, DicomNodeOutputSerializer
from core.api.schema import conflict
from core.api.views import OrgAPIView

SCHEMA_TAG = "medical: DICOM nodes"
AE_TITLE_TAKEN = "`conflict`: the AE title is already used by a DICOM node (of any organization)."


class DicomNodeApi(OrgAPIView):
    required_scope = DOMAIN
    parser_classes = (JSONParser,)

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        super().initial(request, *args, **kwargs)
        # nodes decide who may store into the archive: admin business, reads included
        self.actor.require_org_admin("manage DICOM nodes", key_scope=DOMAIN)


class DicomNodeListApi(DicomNodeApi):
    @extend_schema(
        summary="List the DICOM nodes allowed to send to the listener",
        responses=DicomNodeOutputSerializer(many=True),
        tags=[SCHEMA_TAG],
        operation_id="medical_dicom_nodes_list",
    )
    def get(self, request: Request) -> Response:
        return self.paginate(request, selectors.dicom_node_list(org=self.org), DicomNodeOutputSerializer)

    @extend_schema(
        summary="Allow a modality or PACS to send (C-STORE) under its calling AE title",
        request=DicomNodeInputSerializer,
        responses={201: DicomNodeOutputSerializer, 409: conflict(AE_TITLE_TAKEN)},
        tags=[SCHEMA_TAG],
        operation_id="medical_dicom_nodes_create",
    )
    def post(self, request: Request) -> Response:
        serializer = DicomNodeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        node = services.dicom_node_create(actor=self.actor, **serializer.validated_data)
        return Response(DicomNodeOutputSerializer(node).data, status=status.HTTP_201_CREATED)


class DicomNodeDetailApi(DicomNodeApi):
    @extend_schema(
        summary="A DICOM node",
        responses=DicomNodeOutputSerializer,
        tags=[SCHEMA_TAG],
        operation_id="medical_dicom_nodes_retrieve",
    )
    def get(self, request: Request, node_id: int) -> Response:
        return Response(DicomNodeOutputSerializer(selectors.dicom_node_get(org=self.org, node_id=node_id)).data)

    @extend_schema(
        summary="Change a DICOM node (AE title, description, host, active)",
        request=DicomNodeInputSerializer(partial=True),
        responses={200: DicomNodeOutputSerializer, 409: conflict(AE_TITLE_TAKEN)},
        tags=[SCHEMA_TAG],
        operation_id="medical_dicom_nodes_update",
    )
    def patch(self, request: Request, node_id: int) -> Response:
        node = selectors.dicom_node_get(org=self.org, node_id=node_id)
        serializer = DicomNodeInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        node = services.dicom_node_update(actor=self.actor, node=node, data=dict(serializer.validated_data))
        return Response(DicomNodeOutputSerializer(node).data)

    @extend_schema(
        summary="Remove a DICOM node (its AE title is refused from then on)",
        responses={204: None},
        tags=[SCHEMA_TAG],
        operation_id="medical_dicom_nodes_delete",
    )
    def delete(self, request: Request, node_id: int) -> Response:
        services.dicom_node_delete(actor=self.actor, node=selectors.dicom_node_get(org=self.org, node_id=node_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
