"""The one pagination of every API list."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request


class PageQuerySerializer(serializers.Serializer[None]):
    """`page` and `page_size` as the client sent them: a positive integer (or `last`), else a 400."""

    page = serializers.RegexField(
        r"^(last|[1-9][0-9]*)$", required=False, error_messages={"invalid": "A page number (1, 2, ...) or `last`."}
    )
    page_size = serializers.IntegerField(min_value=1, required=False)


class StandardPagination(PageNumberPagination):
    """`?page=N&page_size=M` (at most 500); answers {"count", "next", "previous", "results"}.

    A malformed `page` or `page_size` is a 400 naming it (DRF answers a 404 for `page=abc` and
    ignores a bad `page_size`); a page past the end is still a 404; a `page_size` above 500 is
    clamped to 500.
    """

    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        PageQuerySerializer(data=request.query_params).is_valid(raise_exception=True)
        return super().paginate_queryset(queryset, request, view)
