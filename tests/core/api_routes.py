"""Every route of the partner API, read from the URL resolver (so new apps' routes are included).

Each route gets a concrete example path (dummy values for its parameters, checked to resolve
back to the same view) and the HTTP methods its view implements.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.converters import IntConverter, UUIDConverter
from django.urls.exceptions import Resolver404
from django.utils.regex_helper import normalize

API_PREFIX = "/api/v1/"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
_DUMMY_CANDIDATES = ("1", "x", str(uuid.UUID(int=1)))


@dataclass(frozen=True)
class ApiRoute:
    """One API route: its pattern, an example path, its view and the methods it implements."""

    pattern: str
    path: str
    callback: Any
    methods: tuple[str, ...]

    @property
    def view_class(self) -> Any:
        return getattr(self.callback, "cls", None) or getattr(self.callback, "view_class", None)

    @property
    def required_scope(self) -> str | None:
        return getattr(self.view_class, "required_scope", None)

    @property
    def method(self) -> str:
        """The method to call it with: GET when implemented, else the first one it has."""
        return self.methods[0] if self.methods else "get"

    def __str__(self) -> str:
        return f"{self.method.upper()} /{self.pattern}"


def api_routes(prefix: str = API_PREFIX) -> list[ApiRoute]:
    routes = []
    for entry, regex, converters in _walk(get_resolver(), "", {}):
        template, params = normalize(regex)[0]
        if ("/" + template).startswith(prefix):
            routes.append(_route(entry, template, params, converters))
    return sorted(routes, key=lambda route: route.pattern)


def _walk(resolver: URLResolver, regex: str, converters: dict[str, Any]) -> Iterator[tuple[URLPattern, str, dict]]:
    for entry in resolver.url_patterns:
        entry_regex = regex + _strip_anchors(entry.pattern.regex.pattern)
        entry_converters = {**converters, **getattr(entry.pattern, "converters", {})}
        if isinstance(entry, URLResolver):
            yield from _walk(entry, entry_regex, entry_converters)
        elif isinstance(entry, URLPattern):
            yield entry, entry_regex, entry_converters


def _strip_anchors(pattern: str) -> str:
    return re.sub(r"(\\Z|\$)$", "", pattern.removeprefix("^"))


def _route(entry: URLPattern, template: str, params: list[str], converters: dict[str, Any]) -> ApiRoute:
    pattern = template % {name: f"<{name}>" for name in params}
    for candidate in _DUMMY_CANDIDATES:
        path = "/" + template % {name: _dummy(converters.get(name), candidate) for name in params}
        try:
            match = resolve(path)
        except Resolver404:
            continue
        if match.func is entry.callback:
            view_class = getattr(entry.callback, "cls", None) or getattr(entry.callback, "view_class", None)
            methods = tuple(m for m in HTTP_METHODS if view_class is None or hasattr(view_class, m))
            return ApiRoute(pattern=pattern, path=path, callback=entry.callback, methods=methods)
    raise AssertionError(f"Could not build an example path that resolves to URL pattern /{pattern}")


def _dummy(converter: Any, fallback: str) -> str:
    if converter is None:
        return fallback  # a regex group (re_path): try each candidate until one resolves
    if isinstance(converter, IntConverter):
        return "1"
    if isinstance(converter, UUIDConverter):
        return str(uuid.UUID(int=1))
    return "x"  # str, slug, path and custom converters taking words
