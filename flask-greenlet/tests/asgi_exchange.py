"""Driving the bridge's ASGI app directly: one request in, every message it sends back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from flask_greenlet.types import ASGICallable, Message


@dataclass
class Exchange:
    """A request's messages both ways, with the time each response message was sent."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    received: int = 0  # how many request messages the app asked for

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


async def exchange(
    asgi: ASGICallable,
    method: str = "GET",
    path: str = "/",
    *,
    body: Iterable[bytes] = (),
    headers: Iterable[tuple[str, str]] = (),
    root_path: str = "",
    query: str = "",
    gone: asyncio.Event | None = None,
    on_send: Callable[[Message], None] | None = None,
) -> Exchange:
    """Send one request to ``asgi``; the client disconnects once ``gone`` is set (or after the
    body, when there is no ``gone``, as soon as the app asks again)."""
    pieces = list(body)
    messages = [
        {"type": "http.request", "body": piece, "more_body": n < len(pieces) - 1}
        for n, piece in enumerate(pieces)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]
    result = Exchange()

    async def receive() -> Message:
        result.received += 1
        if messages:
            return messages.pop(0)
        if gone is not None:
            await gone.wait()
        else:
            await asyncio.sleep(3600)  # a client that stays until the response ends
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if on_send is not None:
            on_send(message)
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            result.chunks.append(message.get("body", b""))
            result.sent_at.append(time.perf_counter())

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": root_path + path,
        "root_path": root_path,
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
    }
    await asgi(scope, receive, send)
    return result
