"""Every request carries an id: the router's ``X-Request-ID`` when it is well formed (Heroku
sends one), otherwise a fresh one. It is echoed on the response, and problem documents carry
it, so a failure a client saw can be found on the server.

The id is set at the outermost ASGI layer, before load shedding, so even a shed request has
one; it lives in a context variable, which the bridge carries into the Flask request.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from typing import Any

REQUEST_ID_HEADER = b"x-request-id"
WELL_FORMED = re.compile(rb"[A-Za-z0-9._:+=@/-]{8,128}")  # a UUID, Heroku's, a trace id

current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's or router's id if it is well formed, else a new one."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if WELL_FORMED.fullmatch(value):
                return value.decode()
            break
    return os.urandom(16).hex()  # as random as uuid4, without building a UUID object


class RequestIds:
    """ASGI middleware: choose the request's id, and echo it on the response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope["headers"])
        echoed = (REQUEST_ID_HEADER, request_id.encode())

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        token = current_request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(token)
