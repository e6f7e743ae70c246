"""JSON responses from response schemas, serialised by pydantic-core in one pass."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from flask import request
from flask_greenlet import Response  # Flask's, sent without a second pass over its headers
from pydantic import TypeAdapter

_adapters: dict[type, TypeAdapter[Any]] = {}


def _adapter(schema: type) -> TypeAdapter[Any]:
    adapter = _adapters.get(schema)
    if adapter is None:
        adapter = _adapters[schema] = TypeAdapter(schema)
    return adapter


def json_bytes(document: Any) -> bytes:
    """``document``, an instance of a response schema, serialised."""
    return _adapter(type(document)).dump_json(document)


def json_response(
    document: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``document``, an instance of a response schema, as an ``application/json`` response."""
    body = json_bytes(document)
    response = Response(body, status=status, mimetype="application/json")
    if headers:  # names a new response lacks: added, not set (setting scans the list first)
        for name, value in headers.items():
            response.headers.add(name, value)
    return response


def json_with_etag(document: Any) -> Response:
    """``document`` with an ``ETag`` of its bytes; a 304 with no body when the client's
    ``If-None-Match`` already names it. Weak, so the tag holds whatever encoding carries it."""
    body = json_bytes(document)
    tag = hashlib.blake2b(body, digest_size=12).hexdigest()
    if "HTTP_IF_NONE_MATCH" in request.environ and request.if_none_match.contains_weak(tag):
        response = Response(status=304)
    else:
        response = Response(body, mimetype="application/json")
    # Appended to the list itself: Headers.add checks each value for newlines, and these are
    # a hex digest and a constant. "no-cache": cache, but always ask.
    response.headers._list += (("ETag", f'W/"{tag}"'), ("Cache-Control", "no-cache"))
    return response


def no_content() -> Response:
    return Response(status=204)
