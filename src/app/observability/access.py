"""The outermost ASGI layer: each request's id and record, its access line, its metrics, its
``Server-Timing``; and ``/metrics``, answered here, before load shedding can refuse it."""

from __future__ import annotations

import hmac
from time import perf_counter
from typing import Any

from flask import Request
from werkzeug.routing import Rule

from ..paths import is_api_path
from .logs import write_access_line
from .metrics import CONTENT_TYPE, Metrics
from .records import REQUEST_ID_HEADER, RequestRecord, current_record, request_id_from
from .tracing import tracing

METRICS_PATH = "/metrics"


class RoutedRequest(Request):
    """Flask's request, telling the record which URL rule matched it (a template, of which
    there are few) the moment Flask matches it: no hook to run, and known even when a later
    hook or the view fails."""

    _matched: Rule | None = None

    @property
    def url_rule(self) -> Rule | None:
        return self._matched

    @url_rule.setter
    def url_rule(self, rule: Rule | None) -> None:
        self._matched = rule
        record = current_record.get()
        if record is not None and rule is not None:
            record.route = rule.rule


class Observed:
    """ASGI middleware around the whole app."""

    def __init__(self, app: Any, metrics: Metrics, *, access_log: bool) -> None:
        self.app, self.metrics, self.access_log = app, metrics, access_log

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == METRICS_PATH:
            await self._scrape(scope, send)
            return
        started = perf_counter()
        record = RequestRecord(request_id_from(scope["headers"]), scope["method"])
        echoed = (REQUEST_ID_HEADER, record.request_id.encode())
        timed = is_api_path(scope["path"])
        status = 500  # what uvicorn answers if the app raises before it starts a response

        async def send_observed(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), echoed]
                if timed:
                    headers.append(_server_timing(record, perf_counter() - started))
                message["headers"] = headers
            await send(message)

        token = current_record.set(record)
        traced = tracing.start_request(scope) if tracing.enabled else None
        try:
            await self.app(scope, receive, send_observed)
        finally:
            if traced is not None:
                tracing.end_request(*traced, record.route, status)
            seconds = perf_counter() - started
            if self.metrics.enabled:
                self.metrics.request_done(record.route, record.method, status, seconds)
            if self.access_log:
                write_access_line(record, status, seconds)
            current_record.reset(token)

    async def _scrape(self, scope: dict[str, Any], send: Any) -> None:
        if not self.metrics.enabled:
            await _answer(send, 404, b"Not Found\n")
        elif self.metrics.token and not _bears(scope["headers"], self.metrics.token):
            await _answer(send, 401, b"A bearer token is required.\n", challenge=True)
        else:
            await _answer(send, 200, await self.metrics.exposition(), CONTENT_TYPE)


def _server_timing(record: RequestRecord, app_seconds: float) -> tuple[bytes, bytes]:
    value = f"db;dur={record.db_seconds * 1000:.1f}, app;dur={app_seconds * 1000:.1f}"
    return b"server-timing", value.encode()


def _bears(headers: list[tuple[bytes, bytes]], token: str) -> bool:
    sent = next((value for name, value in headers if name == b"authorization"), b"")
    scheme, _, credential = sent.partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(credential, token.encode())


async def _answer(
    send: Any,
    status: int,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    *,
    challenge: bool = False,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if challenge:
        headers.append((b"www-authenticate", b'Bearer realm="metrics"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
