"""JSON responses from response schemas, serialised by pydantic-core in one pass."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response
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
    if headers:
        response.headers.update(headers)
    return response


def no_content() -> Response:
    return Response(status=204)
