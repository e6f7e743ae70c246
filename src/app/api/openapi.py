"""The OpenAPI 3.1 document, built from the ``@operation`` contracts of the API's routes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from functools import cache
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, current_app, json
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from ..models import IDEMPOTENCY_KEY_MAX, MAX_ID
from . import bp
from .contract import Operation
from .idempotency import HEADER
from .schemas import EventStream, Problem

_PATH_PARAMETER = re.compile(r"<(?:(?P<converter>[a-z]+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_CONVERTER_SCHEMAS = {
    "int": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
    None: {"type": "string"},
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer"},
    "basic": {"type": "http", "scheme": "basic"},
}


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """This document."""
    return Response(
        _document_json(current_app._get_current_object()),  # type: ignore[attr-defined]
        mimetype="application/json",
    )


@cache
def _document_json(app: Flask) -> str:
    return json.dumps(build_document(app))


def documented_routes(app: Flask) -> list[tuple[str, str, Operation]]:
    """(path, method, contract) for every API route that has an ``@operation`` contract,
    with the answers every such route can give added to what the view declares."""
    routes = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        contract = getattr(view, "operation", None)
        if contract is None:
            continue
        answers = {**contract.responses, **_answers_any_route_gives(contract, view)}
        contract = replace(
            contract,
            responses=dict(sorted(answers.items())),
            rate_limits=tuple(getattr(view, "rate_limits", ())),
        )
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((rule.rule, method.lower(), contract))
    return routes


def _answers_any_route_gives(contract: Operation, view: Any) -> dict[int, type | None]:
    answers: dict[int, type | None] = {
        503: Problem
    }  # the database is busy, or the worker sheds load
    if contract.auth is not None:
        answers[401] = Problem
    if contract.body is not None:
        answers |= {413: Problem, 415: Problem, 422: Problem}
    if contract.query is not None:
        answers[422] = Problem
    if getattr(view, "rate_limits", None):
        answers[429] = Problem
    if contract.conditional:
        answers[304] = None
    return answers


def build_document(app: Flask) -> dict[str, Any]:
    routes = documented_routes(app)
    schemas = _schemas(op for _, _, op in routes)
    paths: dict[str, dict[str, Any]] = {}
    for rule, method, contract in routes:
        path = _PATH_PARAMETER.sub(r"{\g<name>}", rule)
        paths.setdefault(path, {})[method] = _operation(rule, contract)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Microblog API", "version": "1.0.0"},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


def _schemas(contracts: Iterable[Operation]) -> dict[str, Any]:
    """JSON Schemas of every request (as validated) and response (as serialised) schema."""
    inputs: dict[str, tuple[type, JsonSchemaMode]] = {}
    for contract in contracts:
        for schema in (contract.body, contract.query):
            if schema is not None:
                inputs[schema.__name__] = (schema, "validation")
        for answer in contract.responses.values():
            if answer is not None and answer is not EventStream:
                inputs.setdefault(answer.__name__, (answer, "serialization"))
    _, document = TypeAdapter.json_schemas(
        [(name, mode, TypeAdapter(schema)) for name, (schema, mode) in inputs.items()],
        ref_template="#/components/schemas/{model}",
    )
    return document.get("$defs", {})  # type: ignore[no-any-return]


def _operation(rule: str, contract: Operation) -> dict[str, Any]:
    document: dict[str, Any] = {
        "operationId": contract.operation_id,
        "summary": contract.summary,
        "tags": list(contract.tags),
        "parameters": _path_parameters(rule)
        + _query_parameters(contract.query)
        + (_idempotency_key_header() if contract.idempotent else [])
        + (IF_NONE_MATCH if contract.conditional else []),
        "responses": {
            str(status): _response(
                status,
                model,
                limited=bool(contract.rate_limits),
                tagged=contract.conditional and status in (200, 304),
            )
            for status, model in contract.responses.items()
        },
    }
    if contract.body is not None:
        document["requestBody"] = {
            "required": not contract.body_optional,
            "content": {"application/json": {"schema": _ref(contract.body)}},
        }
    if contract.auth == "bearer-optional":
        document["security"] = [{}, {"bearer": []}]  # anonymous, or a token
    elif contract.auth is not None:
        document["security"] = [{contract.auth: []}]
    return document


def _idempotency_key_header() -> list[dict[str, Any]]:
    return [
        {
            "name": HEADER,
            "in": "header",
            "required": False,
            "description": "Send the same key to retry this write safely: a repeat with the "
            "same body gets the first answer again (Idempotent-Replayed: true) and writes "
            "nothing; kept for IDEMPOTENCY_KEY_HOURS.",
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": IDEMPOTENCY_KEY_MAX,
                "pattern": "^[!-~]+$",
            },
        }
    ]


def _path_parameters(rule: str) -> list[dict[str, Any]]:
    return [
        {
            "name": match["name"],
            "in": "path",
            "required": True,
            "schema": _CONVERTER_SCHEMAS.get(match["converter"], {"type": "string"}),
        }
        for match in _PATH_PARAMETER.finditer(rule)
    ]


def _query_parameters(model: type[BaseModel] | None) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": field_schema}
        for name, field_schema in schema["properties"].items()
    ]


RATE_LIMIT_HEADERS = {
    "RateLimit-Policy": {
        "description": 'Each limit on this operation: "name";q=quota;w=window seconds '
        "(draft-ietf-httpapi-ratelimit-headers).",
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'Where the caller stands on each: "name";r=remaining;t=seconds to reset.',
        "schema": {"type": "string"},
    },
}


IF_NONE_MATCH = [
    {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": "The ETag of the copy the client holds: if it is still current, the "
        "answer is 304 with no body.",
        "schema": {"type": "string"},
    }
]
ETAG_HEADER = {
    "description": "A weak validator of this document, for If-None-Match.",
    "schema": {"type": "string"},
}


def _response(
    status: int, model: type | None, *, limited: bool = False, tagged: bool = False
) -> dict[str, Any]:
    response: dict[str, Any] = {"description": HTTPStatus(status).phrase}
    if tagged:
        response["headers"] = {"ETag": ETAG_HEADER}
    if limited and status not in (413, 415, 503):  # those are answered before any count
        response.setdefault("headers", {}).update(RATE_LIMIT_HEADERS)
    if status == 429:
        response.setdefault("headers", {})["Retry-After"] = {
            "description": "Seconds until a retry may succeed.",
            "schema": {"type": "integer", "minimum": 1},
        }
    if model is EventStream:
        response["content"] = {"text/event-stream": {"schema": {"type": "string"}}}
    elif model is not None:
        media = "application/problem+json" if model.__name__ == "Problem" else "application/json"
        response["content"] = {media: {"schema": _ref(model)}}
    return response


def _ref(model: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}
