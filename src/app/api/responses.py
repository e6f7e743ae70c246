"""JSON responses from schema instances, serialised by pydantic-core in one pass."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Response
from pydantic import BaseModel


def json_response(
    document: BaseModel, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    response = Response(document.model_dump_json(), status=status, mimetype="application/json")
    if headers:
        response.headers.update(headers)
    return response


def no_content() -> Response:
    return Response(status=204)
