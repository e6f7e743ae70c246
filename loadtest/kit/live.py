"""Following the live timeline (GET /api/posts/stream) for a while, as a browser tab does.

Each subscription gets a socket of its own, closed when the listening ends: a half-read
stream must never go back to the pool that the user's other requests share.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent import socket, ssl

PATH = "/api/posts/stream"

# (what happened, milliseconds, bytes, exception or None) -> reported to locust
Report = Callable[[str, float, int, Exception | None], None]


def listen(host: str, seconds: float, report: Report, *, timed_deliveries: bool) -> int:
    """Subscribe, read events for ``seconds``, and return how many posts arrived.

    The subscription is reported under PATH (time to the response headers); with
    ``timed_deliveries`` each post is reported too, timed from its ``created_at`` (only
    meaningful where the load generator shares the server's clock).
    """
    started = time.perf_counter()
    try:
        connection = _connect(host)
    except OSError as exc:  # refused, unreachable, timed out
        report(PATH, (time.perf_counter() - started) * 1000, 0, exc)
        return 0
    try:
        return _follow(
            connection, urlsplit(host).netloc, started, seconds, report, timed_deliveries
        )
    finally:
        connection.close()  # also when locust stops the user mid-read


def _connect(host: str) -> socket.socket:
    parts = urlsplit(host)
    secure = parts.scheme == "https"
    address = (parts.hostname or "localhost", parts.port or (443 if secure else 80))
    connection = socket.create_connection(address, timeout=10)
    if secure:
        connection = ssl.create_default_context().wrap_socket(
            connection, server_hostname=parts.hostname
        )
    return connection


def _follow(
    connection: socket.socket,
    netloc: str,
    started: float,
    seconds: float,
    report: Report,
    timed_deliveries: bool,
) -> int:
    request = f"GET {PATH} HTTP/1.1\r\nHost: {netloc}\r\nAccept: text/event-stream\r\n\r\n"
    connection.sendall(request.encode())
    # Buffered reads hand back each line as soon as it is complete, however small.
    stream = connection.makefile("rb")
    try:
        status = stream.readline()
    except OSError as exc:
        report(PATH, (time.perf_counter() - started) * 1000, 0, exc)
        return 0
    subscribed = (time.perf_counter() - started) * 1000
    if b" 200 " not in status:
        report(PATH, subscribed, 0, RuntimeError(f"subscribing answered {status.decode().strip()}"))
        return 0
    report(PATH, subscribed, 0, None)
    posts = 0
    event = ""
    with gevent.Timeout(seconds, False):  # then the tab is closed
        # Headers, chunk sizes and blank lines pass by: only event lines mean anything here.
        while line := stream.readline():
            line = line.rstrip(b"\r\n")
            if line.startswith(b"event:"):
                event = line[6:].strip().decode()
            elif line.startswith(b"data:") and event == "post":
                posts += 1
                event = ""
                if timed_deliveries:
                    report("live post delivered", _age_ms(line[5:]), len(line), None)
    return posts


def _age_ms(data: bytes) -> float:
    created = json.loads(data)["created_at"].replace("Z", "+00:00")
    return max(0.0, (time.time() - datetime.fromisoformat(created).timestamp()) * 1000)


def reporter(environment: Any) -> Report:
    """A ``Report`` that fires locust's request event, so the stats and thresholds see it."""

    def report(name: str, milliseconds: float, length: int, exception: Exception | None) -> None:
        environment.events.request.fire(
            request_type="SSE" if name != PATH else "GET",
            name=name,
            response_time=milliseconds,
            response_length=length,
            exception=exception,
            context={},
        )

    return report
