"""OpenAPI generation shared by every Tessera API view: component names and the error responses.

Every operation documents the errors it can answer, once, here, instead of a decorator per
view: `TesseraAutoSchema.get_operation` adds the statuses that follow from what the operation
is (authenticated, has a body, has path or query parameters), each with the one `Error` body
(`core.api.exceptions.error_body`). A view declares the errors that only its logic knows (a
409 conflict, a 404 for an id named in the body) as
`extend_schema(responses={409: OpenApiResponse(description="...")})`; a declared 4xx without
a body gets the `Error` body too.
"""

from __future__ import annotations

from typing import Any, Literal

from django.apps import apps
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiResponse
from rest_framework.permissions import AllowAny

ERROR_COMPONENT = "Error"

# The shape every API error has (see core/api/exceptions.py).
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every API error: a machine-readable `code`, a message, and the offending fields.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "example": "invalid"},
                "message": {"type": "string", "example": "Invalid input."},
                "fields": {
                    "type": "object",
                    "description": "Messages per input field (`name`, `nested.name`, `items[0]`); empty if none.",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    "example": {"amount": ["Ensure this value is greater than or equal to 0."]},
                },
            },
            "required": ["code", "message", "fields"],
        }
    },
    "required": ["error"],
}

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "`invalid` (a field or query parameter fails validation; `fields` names each) or `parse_error` "
    "(the body is not valid JSON/multipart).",
    401: "`not_authenticated` / `authentication_failed`: no, malformed, unknown, revoked or expired API key.",
    403: "`permission_denied`: the key lacks this endpoint's scope, or the user's role does not allow it.",
    404: "`not_found`: no such object in the caller's organization (another organization's is not found either).",
    409: "`conflict`: the request conflicts with the current state.",
    413: "`too_large`: the request body is larger than the API's upload limit.",
    415: "`unsupported_media_type`: the body's content type is not one this endpoint reads.",
    429: "`throttled`: too many requests for this API key; retry after `Retry-After` seconds.",
}


class TesseraAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema with unique names for nested serializers and documented errors.

    Names: every API class declares its own `InputSerializer`, so drf-spectacular's default name
    (the class name) collides across views ("Encountered 2 components with identical names"), which
    also fails `check --deploy --fail-level WARNING`. A nested serializer is named after its app
    and enclosing classes instead: `apps.finance.apis.ScoreApi.InputSerializer` becomes
    `FinanceScoreInput` (+ `Request` for request bodies). Top-level serializers keep their own
    name, and `Meta.ref_name` still wins when a serializer sets one.

    Errors: each operation lists the error statuses it can answer (see `error_statuses`).
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

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses: dict[str, Any] = operation.setdefault("responses", {})
        for error_status in self.error_statuses(operation):
            responses.setdefault(str(error_status), {"description": ERROR_DESCRIPTIONS[error_status]})
        error_content = {"application/json": {"schema": self._error_component().ref}}
        for status_code, response in responses.items():
            # A protocol may answer a 4xx in its own media type too (DICOMweb STOW-RS: 409 with the
            # Store Instances Response); the error shape is documented beside it.
            if str(status_code).startswith("4") and "application/json" not in response.get("content", {}):
                response["content"] = {**response.get("content", {}), **error_content}
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def error_statuses(self, operation: dict[str, Any]) -> list[int]:
        """The error statuses that follow from what the operation is, whatever the view does.

        401/403 where a permission is checked (every `OrgAPIView`), 429 where a throttle applies,
        400 where the client sends anything to validate (a body, query or path parameters: a model
        name is validated), 404 where a path parameter names an object or a page number can run
        past the end, 413/415 where there is a body (size limit, parsers).
        """
        parameters = operation.get("parameters", [])
        query = [p for p in parameters if p.get("in") == "query"]
        has_path_parameter = any(p.get("in") == "path" for p in parameters)
        has_body = "requestBody" in operation
        paginated = any(p.get("name") == "page" for p in query)
        statuses = []
        if has_body or query or has_path_parameter:
            statuses.append(400)
        if any(not isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            statuses += [401, 403]
        if has_path_parameter or paginated:
            statuses.append(404)
        if has_body:
            statuses += [413, 415]
        if self.view.get_throttles():
            statuses.append(429)
        return statuses

    def _error_component(self) -> ResolvedComponent:
        component = ResolvedComponent(
            name=ERROR_COMPONENT, type=ResolvedComponent.SCHEMA, object=ERROR_COMPONENT, schema=ERROR_SCHEMA
        )
        self.registry.register_on_missing(component)
        return component


def referenced_not_found(what: str) -> OpenApiResponse:
    """A 404 for an object the request body names (the operation's path alone does not say so)."""
    return OpenApiResponse(description=f"`not_found`: {what} does not exist in the caller's organization.")


def conflict(description: str) -> OpenApiResponse:
    """A 409 the view's logic can answer, with its error code and when."""
    return OpenApiResponse(description=description)


def _strip_suffix(name: str, suffixes: tuple[str, ...]) -> str:
    for suffix in suffixes:
        if name.endswith(suffix) and name != suffix:
            return name[: -len(suffix)]
    return name
