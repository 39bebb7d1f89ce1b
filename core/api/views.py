"""The base API view every Tessera endpoint derives from."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.pagination import StandardPagination
from core.api.schema import TesseraAutoSchema
from core.tenancy.actors import Actor
from core.tenancy.models import Organization


class OrgAPIView(APIView):
    """An API view acting inside the caller's organization.

    Subclasses set `required_scope` (or leave None for any member) and use `self.actor` /
    `self.org` after permission checks have run.
    """

    required_scope: str | None = None
    # Names nested Input/OutputSerializers uniquely in the OpenAPI schema and documents the
    # error responses of every operation (see TesseraAutoSchema).
    schema = TesseraAutoSchema()
    # Used by `paginate`, and read by drf-spectacular: a GET answering `many=True` is documented
    # with the paginated envelope and its `page`/`page_size` parameters (an APIView has no
    # `pagination_class` of its own, so without it every list was documented as a bare array).
    pagination_class = StandardPagination

    @property
    def actor(self) -> Actor:
        actor: Actor = self.request.actor  # type: ignore[attr-defined]  # set by OrgPermission before any handler runs
        return actor

    @property
    def org(self) -> Organization:
        return self.actor.organization

    def paginate(self, request: Request, queryset: Any, serializer_class: Any) -> Response:
        """Paginate `queryset` and serialize the page with `serializer_class`."""
        paginator = self.pagination_class()
        page: list[Any] | None = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True, context={"request": request}).data)
