"""Each API view declares its contract once, with ``@operation``: the same declaration checks
the bearer token, validates the query and body, and describes the route in the OpenAPI document."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from flask import Response, request
from pydantic import BaseModel, ValidationError
from werkzeug.datastructures import Authorization

from ..database import db
from ..store.tokens import UserRef, find_token_user
from .problems import APIProblem, validation_problem

AsyncView = Callable[..., Coroutine[Any, Any, Response]]
Auth = Literal["bearer", "bearer-optional", "basic"]

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="api"'}
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="api"'}


@dataclass(frozen=True)
class Operation:
    """What the OpenAPI document says of one route."""

    summary: str
    responses: Mapping[int, type | None]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    auth: Auth | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    operation_id: str = ""


def operation(
    *,
    responses: Mapping[int, type | None],
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    auth: Auth | None = None,
    tag: str,
) -> Callable[[AsyncView], AsyncView]:
    """Declare a view's contract, and enforce it: ``auth="bearer"`` gives the view ``user``
    (and ``token`` if it asks), ``auth="basic"`` gives it ``credentials``, or the request ends
    in a 401 before the view runs; ``auth="bearer-optional"`` gives ``user`` as None to a
    request without ``Authorization``, and checks a token that is sent; ``query`` and ``body``
    arrive validated."""

    def decorate(view: AsyncView) -> AsyncView:
        summary = (view.__doc__ or view.__name__).strip().splitlines()[0]
        contract = Operation(summary, responses, body, query, auth, (tag,), view.__name__)
        wants_token = "token" in inspect.signature(view).parameters

        @functools.wraps(view)
        async def checked_view(**kwargs: Any) -> Response:
            if auth == "bearer":
                kwargs["user"], token = await bearer_user()
                if wants_token:
                    kwargs["token"] = token
            elif auth == "bearer-optional":
                sent = request.authorization is not None
                kwargs["user"] = (await bearer_user())[0] if sent else None
            elif auth == "basic":
                kwargs["credentials"] = basic_credentials()
            if query is not None:
                kwargs["query"] = _validate(query, request.args.to_dict(), "query")
            if body is not None:
                kwargs["body"] = _validate_json_body(body)
            return await view(**kwargs)

        checked_view.operation = contract  # type: ignore[attr-defined]
        return checked_view

    return decorate


async def bearer_user() -> tuple[UserRef, str]:
    """The user whose unexpired token is in ``Authorization: Bearer``, and the token; or a 401."""
    credentials = request.authorization
    if credentials is None or credentials.type != "bearer" or not credentials.token:
        raise APIProblem(401, "A bearer token is required.", headers=BEARER_CHALLENGE)
    async with db.connect() as conn:
        user = await find_token_user(conn, credentials.token)
    if user is None:
        raise APIProblem(
            401, "The bearer token is invalid or has expired.", headers=BEARER_CHALLENGE
        )
    return user, credentials.token


def basic_credentials() -> Authorization:
    """The ``Authorization: Basic`` username and password, or a 401 that asks for them."""
    credentials = request.authorization
    if credentials is None or credentials.type != "basic":
        raise APIProblem(
            401,
            "Send a username and password with HTTP Basic authentication.",
            headers=BASIC_CHALLENGE,
        )
    return credentials


def _validate(model: type[BaseModel], data: Any, where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_problem(error, where) from None


def _validate_json_body(model: type[BaseModel]) -> BaseModel:
    if not request.is_json:
        raise APIProblem(415, "Send the request body as application/json.")
    try:
        return model.model_validate_json(request.get_data())
    except ValidationError as error:
        raise validation_problem(error, "body") from None
