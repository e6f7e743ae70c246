"""``wsgi.input`` for an ASGI request: the body, received from the server as the app reads it."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from flask import has_request_context, request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge, RequestTimeout

from .handover import wait_for
from .types import Message, Receive, Scope

_NO_BODY = b""


class RequestBody(io.RawIOBase):
    """Reads pull ``http.request`` messages one at a time, so a body is never held whole.

    Each piece must arrive within ``piece_timeout`` seconds, or the read raises 408 Request
    Timeout; a body past the request's ``max_content_length`` raises 413 as soon as the
    piece that crosses it arrives; a client that goes away mid-body raises Werkzeug's
    ``ClientDisconnected``.
    """

    def __init__(
        self, receive: Receive, piece_timeout: float | None, first: Message | None = None
    ) -> None:
        super().__init__()
        self._receive = receive
        self._first = first  # a message already received, read before any other
        self._piece_timeout = piece_timeout
        self._pending = bytearray()
        self._complete = False
        self._received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._complete:
            self._pull()
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        del self._pending[:size]
        return size

    def readall(self) -> bytes:
        while not self._complete:
            self._pull()
        data = bytes(self._pending)
        self._pending.clear()
        return data

    def _pull(self) -> None:
        limit = _max_content_length()
        self._take(self._receive_one(), limit)
        # Werkzeug stops reading at the limit and would keep a body cut there; one more
        # message tells whether the body goes past it.
        while limit is not None and self._received == limit and not self._complete:
            self._take(self._receive_one(), limit)

    def _take(self, message: Message, limit: int | None) -> None:
        if message["type"] == "http.disconnect":
            self._complete = True
            raise ClientDisconnected()
        chunk = message.get("body", _NO_BODY)
        self._received += len(chunk)
        self._complete = not message.get("more_body", False)
        if limit is not None and self._received > limit:
            self._complete = True
            raise RequestEntityTooLarge()
        self._pending += chunk

    @property
    def arrived_whole(self) -> bool:
        """Whether the body is all in hand already, so reading it never waits."""
        return self._first is not None and not self._first.get("more_body", False)

    def _receive_one(self) -> Message:
        if self._first is not None:
            message, self._first = self._first, None
            return message
        try:
            return wait_for(self._next_message())
        except TimeoutError:
            raise RequestTimeout("The request body stopped arriving.") from None

    async def _next_message(self) -> Message:
        async with asyncio.timeout(self._piece_timeout):
            return await self._receive()


def _max_content_length() -> int | None:
    """The request's limit (``MAX_CONTENT_LENGTH``, or what the view set for this request)."""
    return request.max_content_length if has_request_context() else None


def expects_continue(scope: Scope) -> bool:
    """The client waits for "100 Continue", which the server sends when the app first reads."""
    return any(
        name == b"expect" and value.lower() == b"100-continue"
        for name, value in scope.get("headers", ())
    )


def has_no_body(scope: Scope) -> bool:
    """An HTTP/1 request with neither Content-Length nor Transfer-Encoding has no body."""
    if scope.get("http_version", "1.1") not in ("1.0", "1.1"):
        return False
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return False
    return True
