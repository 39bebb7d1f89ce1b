"""Per-request context (request id, client IP) that audit rows pick up without threading it
through every service signature. Set by `core.api.middleware.RequestContextMiddleware`."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="")
client_ip_var: ContextVar[str | None] = ContextVar("client_ip", default=None)
