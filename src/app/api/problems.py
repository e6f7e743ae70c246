"""RFC 9457 problem details: the only shape an API error ever takes."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from flask import Response, json
from pydantic import ValidationError

PROBLEM_JSON = "application/problem+json"


class APIProblem(Exception):
    """Raised anywhere under /api to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or HTTPStatus(status).phrase)
        self.status, self.detail, self.errors = status, detail, errors
        self.headers = dict(headers or {})

    def to_response(self) -> Response:
        return problem_response(self.status, self.detail, errors=self.errors, headers=self.headers)


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    document: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        document["detail"] = detail
    if errors is not None:
        document["errors"] = errors
    response = Response(json.dumps(document), status=status, mimetype=PROBLEM_JSON)
    response.headers.update(headers or {})
    return response


def validation_problem(error: ValidationError, where: str) -> APIProblem:
    """A 422 that lists each bad field of the request's ``where`` (body or query)."""
    errors = [
        {
            "in": where,
            "field": ".".join(str(part) for part in item["loc"]) or None,
            "message": item["msg"],
            "type": item["type"],
        }
        for item in error.errors(include_url=False, include_input=False)
    ]
    return APIProblem(422, f"The request {where} is not valid.", errors=errors)
