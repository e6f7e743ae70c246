"""RFC 9457 problem details: the only shape an API error ever takes."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from flask import Response
from pydantic import TypeAdapter, ValidationError

from ..observability.records import current_request_id
from .schemas import Problem, ProblemField

PROBLEM_JSON = "application/problem+json"
_problem_json = TypeAdapter(Problem)


class APIProblem(Exception):
    """Raised anywhere under /api to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        errors: list[ProblemField] | None = None,
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
    errors: list[ProblemField] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The ``Problem`` schema that the OpenAPI document shows, serialised as it shows it."""
    body = problem_body(status, detail, errors=errors)
    response = Response(body, status=status, mimetype=PROBLEM_JSON)
    response.headers.update(headers or {})
    return response


def problem_body(
    status: int, detail: str | None = None, *, errors: list[ProblemField] | None = None
) -> bytes:
    """A problem document's JSON, with the current request's id."""
    document = Problem(
        HTTPStatus(status).phrase,
        status,
        detail=detail or None,
        errors=errors,
        request_id=current_request_id(),
    )
    return _problem_json.dump_json(document, by_alias=True, exclude_none=True)


def validation_problem(error: ValidationError, where: str) -> APIProblem:
    """A 422 that lists each bad field of the request's ``where`` (body or query)."""
    errors = [
        ProblemField(
            where,
            ".".join(str(part) for part in item["loc"]),
            item["msg"],
            item["type"],
        )
        for item in error.errors(include_url=False, include_input=False)
    ]
    return APIProblem(422, f"The request {where} is not valid.", errors=errors)
