"""Domain errors. Services raise these; `core.api.exceptions` maps them to HTTP once.

Services never know about HTTP: each error has a stable machine-readable `code`, a human
message and optional per-field messages. The status code lives in the API layer's map.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a service may raise for bad input or state."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.fields = fields or {}


class ValidationFailed(DomainError):
    code = "invalid"


class NotFound(DomainError):
    code = "not_found"


class PermissionDenied(DomainError):
    code = "permission_denied"


class Conflict(DomainError):
    code = "conflict"


class PayloadTooLarge(DomainError):
    code = "too_large"


class UnsupportedMediaType(DomainError):
    code = "unsupported_media_type"


class NotAcceptable(DomainError):
    """None of the representations the client accepts can be produced (406)."""

    code = "not_acceptable"


class LengthRequired(DomainError):
    """The body's length is unknown and the server cannot read it as a stream here (411)."""

    code = "length_required"


class Gone(DomainError):
    """The resource is known but its content is no longer available, likely for good (410): a
    stored file lost from storage behind an index row that still names it."""

    code = "gone"
