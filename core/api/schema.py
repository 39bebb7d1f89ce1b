"""OpenAPI generation tweaks shared by every Tessera API view."""

from __future__ import annotations

from typing import Any, Literal

from django.apps import apps
from drf_spectacular.openapi import AutoSchema


class TesseraAutoSchema(AutoSchema):
    """Unique component names for the nested `InputSerializer`/`OutputSerializer` convention.

    Every API class declares its own `InputSerializer`, so drf-spectacular's default name (the
    class name) collides across views ("Encountered 2 components with identical names"), which
    also fails `check --deploy --fail-level WARNING`. A nested serializer is named after its app
    and enclosing classes instead: `apps.finance.apis.ScoreApi.InputSerializer` becomes
    `FinanceScoreInput` (+ `Request` for request bodies). Top-level serializers keep their own
    name, and `Meta.ref_name` still wins when a serializer sets one.
    """

    def get_serializer_name(self, serializer: Any, direction: Literal["request", "response"]) -> str:
        cls = serializer.__class__
        path = [part for part in cls.__qualname__.split(".") if part != "<locals>"]
        if len(path) < 2:
            return str(super().get_serializer_name(serializer, direction))
        outer = "".join(_strip_suffix(part, ("Api", "API", "View", "ViewSet")) for part in path[:-1])
        inner = _strip_suffix(path[-1], ("Serializer",))
        app_config = apps.get_containing_app_config(cls.__module__)
        app_prefix = app_config.label.title().replace("_", "") if app_config is not None else ""
        return f"{app_prefix}{outer}{inner}"


def _strip_suffix(name: str, suffixes: tuple[str, ...]) -> str:
    for suffix in suffixes:
        if name.endswith(suffix) and name != suffix:
            return name[: -len(suffix)]
    return name
