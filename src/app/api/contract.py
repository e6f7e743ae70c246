"""Each API view declares its contract once, with ``@operation``: the same declaration checks
the bearer token, validates the query and body, and describes the route in the OpenAPI document."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from flask import Response, request
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection
from werkzeug.datastructures import Authorization

from ..database import db
from ..observability.records import note_user
from ..store.tokens import UserRef, digest, find_token_user
from .problems import APIProblem, validation_problem
from .token_uses import token_uses

AsyncView = Callable[..., Coroutine[Any, Any, Response]]
Found = TypeVar("Found")
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
    idempotent: bool = False  # takes an Idempotency-Key
    body_optional: bool = False  # no body at all means the body model's defaults
    rate_limits: tuple[str, ...] = ()  # filled in from the view's rate-limit marks
    conditional: bool = False  # answers with an ETag, and If-None-Match with a 304


def operation(
    *,
    responses: Mapping[int, type | None],
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    auth: Auth | None = None,
    tag: str,
    idempotency_key: bool = False,
    body_optional: bool = False,
    conditional: bool = False,
) -> Callable[[AsyncView], AsyncView]:
    """Declare a view's contract, and enforce it: ``auth="bearer"`` gives the view ``user``
    (and ``token`` if it asks), ``auth="basic"`` gives it ``credentials``, or the request ends
    in a 401 before the view runs; ``auth="bearer-optional"`` gives ``user`` as None to a
    request without ``Authorization``, and checks a token that is sent; ``query`` and ``body``
    arrive validated.

    A bearer view that asks for ``bearer`` instead of ``user`` checks the token itself, in the
    statement that does its work (one round trip, not two): it gets a ``Bearer``, must pass that
    statement's result through ``bearer.accept``, and a view that answers without doing so is a
    bug that fails loudly rather than a write nobody authorised."""

    def decorate(view: AsyncView) -> AsyncView:
        summary = _summary(view)
        contract = Operation(
            summary,
            responses,
            body,
            query,
            auth,
            (tag,),
            view.__name__,
            idempotency_key,
            body_optional,
            conditional=conditional,
        )
        parameters = inspect.signature(view).parameters
        wants_token = "token" in parameters
        checks_in_its_statement = auth == "bearer" and "bearer" in parameters

        @functools.wraps(view)
        async def checked_view(**kwargs: Any) -> Response:
            if checks_in_its_statement:
                bearer = kwargs["bearer"] = Bearer(sent_bearer_token())
                try:
                    _validate_request(contract, kwargs)
                except APIProblem:
                    await bearer.user_or_401()  # a bad token answers 401 before a bad body's 422
                    raise
                response = await view(**kwargs)
                if not bearer.accepted:
                    raise RuntimeError(f"{view.__name__} answered without checking its token")
                return response
            if auth == "bearer":
                kwargs["user"], token = await bearer_user()
                if wants_token:
                    kwargs["token"] = token
            elif auth == "bearer-optional":
                sent = request.authorization is not None
                kwargs["user"] = (await bearer_user())[0] if sent else None
            elif auth == "basic":
                kwargs["credentials"] = basic_credentials()
            _validate_request(contract, kwargs)
            return await view(**kwargs)

        checked_view.operation = contract  # type: ignore[attr-defined]
        return checked_view

    return decorate


def _summary(view: AsyncView) -> str:
    """The docstring's first paragraph, on one line, with reST's double backticks as Markdown's."""
    paragraph = (view.__doc__ or view.__name__).strip().split("\n\n")[0]
    return " ".join(paragraph.split()).replace("``", "`")


def _validate_request(contract: Operation, kwargs: dict[str, Any]) -> None:
    if contract.query is not None:
        kwargs["query"] = _validate(contract.query, request.args.to_dict(), "query")
    if contract.body is not None:
        if contract.body_optional and not request.content_length and not request.is_json:
            kwargs["body"] = contract.body()
        else:
            kwargs["body"] = _validate_json_body(contract.body)


class Bearer:
    """The token a request sent, not yet checked: the view checks it in its own statement."""

    __slots__ = ("_digest", "accepted", "token")

    def __init__(self, token: str) -> None:
        self.token = token
        self.accepted = False
        self._digest: str | None = None

    @property
    def digest(self) -> str:
        if self._digest is None:
            self._digest = digest(self.token)
        return self._digest

    def accept(self, found: Found | None) -> Found:
        """What a statement that required this token found; None (no such live token) is a 401."""
        if found is None:
            raise refused_token()
        self.accepted = True
        token_uses.note(self.digest)
        if isinstance(found, UserRef):
            note_user(found.id)
        return found

    async def user(self, conn: AsyncConnection) -> UserRef:
        """The token's user, on the view's own connection (the same turn as its work)."""
        return self.accept(await find_token_user(conn, self.digest))

    async def user_or_401(self) -> UserRef:
        async with db.connect() as conn:
            return await self.user(conn)


def sent_bearer_token() -> str:
    """The token in ``Authorization: Bearer``, or a 401 that asks for one."""
    credentials = request.authorization
    if credentials is None or credentials.type != "bearer" or not credentials.token:
        raise APIProblem(401, "A bearer token is required.", headers=BEARER_CHALLENGE)
    return credentials.token


def refused_token() -> APIProblem:
    return APIProblem(401, "The bearer token is invalid or has expired.", headers=BEARER_CHALLENGE)


async def bearer_user() -> tuple[UserRef, str]:
    """The user whose unexpired token is in ``Authorization: Bearer``, and the token; or a 401."""
    bearer = Bearer(sent_bearer_token())
    return await bearer.user_or_401(), bearer.token


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
