"""Shedding load when the worker falls behind: a quick 503 rather than a slow answer.

When the worker's CPU is what runs out, requests wait in the event loop's queue of ready work,
and every one of them gets slower until clients time out. How late a timer fires on the loop
(its lag) measures that wait directly, whatever the mix of requests. While the lag is above
``OVERLOAD_MAX_LAG_MS``, new requests are answered 503 with ``Retry-After`` at the door, before
Flask runs, which costs almost nothing, so the requests already admitted finish in time. A
slow database does not trip it: requests waiting on I/O leave the loop idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from flask_greenlet import AsyncFlask

from .api.problems import PROBLEM_JSON, problem_body
from .database import db
from .observability.metrics import metrics
from .occasionally import Occasionally
from .paths import is_api_path

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 0.05
RETRY_AFTER_S = 1
NEVER_SHED = frozenset({"/healthz", "/readyz"})  # the platform must still see the worker
BUSY_DETAIL = "The service is overloaded; try again shortly."
BUSY_PAGE = (
    b"<!doctype html><html lang=en><meta charset=utf-8><title>Busy</title>"
    b"<h1>Too busy right now</h1><p>" + BUSY_DETAIL.encode() + b"</p></html>"
)


class LoopLag:
    """How late the serving loop runs a timer, probed every ``PROBE_INTERVAL_S``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._probe: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._probe = asyncio.get_running_loop().create_task(self._measure())

    async def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        self.seconds = 0.0

    async def _measure(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(PROBE_INTERVAL_S)
            self.seconds = loop.time() - started - PROBE_INTERVAL_S


class LoadShedding:
    """ASGI middleware: refuse new HTTP requests while the loop lags more than ``max_lag``, or
    while the queue for a database connection is longer than a newcomer may wait (turned
    away here, the refusal costs no Flask request: under overload that CPU serves others)."""

    def __init__(
        self, app: Any, flask_app: AsyncFlask, *, max_lag_ms: int, headers: dict[str, str]
    ) -> None:
        self.app, self.flask_app, self.max_lag = app, flask_app, max_lag_ms / 1000
        self._headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.lag = LoopLag()
        self._shedding_said = Occasionally(10)
        if max_lag_ms:
            flask_app.before_serving(self.lag.start)
            flask_app.after_serving(self.lag.stop)
        self._problem_type = PROBLEM_JSON.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] not in NEVER_SHED:
            if self.max_lag and self.lag.seconds > self.max_lag:
                metrics.shed("overload")
                await self._refuse(scope, send, "event loop %.0f ms behind", self.lag.seconds * 1e3)
                return
            if db.queue_is_full(self.flask_app):
                metrics.shed("database_queue")
                await self._refuse(scope, send, "the queue for a database connection is full")
                return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: dict[str, Any], send: Any, why: str, *args: object) -> None:
        if self._shedding_said():  # one line per burst, not one per request
            log.warning(why + ": answering 503", *args)
        if is_api_path(scope["path"]):
            body, content_type = problem_body(503, BUSY_DETAIL), self._problem_type
        else:
            body, content_type = BUSY_PAGE, b"text/html; charset=utf-8"
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER_S).encode()),
            *self._headers,
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
