"""The real URLconf plus one tiny JSON endpoint, for tests of request-body errors (400/413/415).

No platform endpoint reads a JSON body yet; this one behaves like any domain endpoint would:
an `OrgAPIView` with a scope and an `InputSerializer`.
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.views import OrgAPIView
from core.tenancy.choices import Scope
from core.urls import handler404, handler500
from core.urls import urlpatterns as root_urlpatterns

PROBE_PATH = "/api/v1/probe/echo/"
BOOM_PATH = "/api/v1/probe/boom/"


class ProbeEchoApi(OrgAPIView):
    required_scope = Scope.FINANCE

    class InputSerializer(serializers.Serializer[None]):
        amount = serializers.IntegerField(min_value=0)

    @extend_schema(request=InputSerializer, responses=InputSerializer)
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(data.validated_data)


class ProbeBoomApi(OrgAPIView):
    """A bug: an unexpected exception must still answer in the error shape (500)."""

    def get(self, request: Request) -> Response:
        raise RuntimeError("probe bug")


urlpatterns = [
    path(PROBE_PATH.lstrip("/"), ProbeEchoApi.as_view(), name="probe-echo"),
    path(BOOM_PATH.lstrip("/"), ProbeBoomApi.as_view(), name="probe-boom"),
    *root_urlpatterns,
]

__all__ = ["BOOM_PATH", "PROBE_PATH", "handler404", "handler500", "urlpatterns"]
