"""Prometheus metrics: what every worker counts, and ``/metrics``, which sums them.

With one worker the figures live in the process. With ``WEB_CONCURRENCY`` > 1 each worker
writes them to files in a directory that uvicorn's workers share (prometheus-client's
multiprocess mode), so a scrape answered by any worker sums all of them. The directory is
named after the uvicorn process that started the workers, so a restart begins from zero;
directories of servers no longer running are removed at start, and a worker's live gauges
when it exits.

Off (every call returns at once) in production unless ``METRICS_TOKEN`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask_greenlet import AsyncFlask

from ..config import Settings

# Seconds, for requests; the database's and the password threads' waits are shorter.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SAMPLE_EVERY_S = 1.0
NOT_ROUTED = "<not routed>"  # shed at the door, or no URL rule matched: one label, not paths

Sampler = Callable[[AsyncFlask], float]


class Metrics:
    """The extension: created once, wired with ``init_app``. One app per serving process."""

    def __init__(self) -> None:
        self.enabled = False
        self.token: str | None = None  # the bearer token a scrape must send, if any
        self._registry: Any = None
        self._directory: Path | None = None
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._latency: dict[str, Any] = {}

    def init_app(self, app: AsyncFlask, settings: Settings) -> None:
        self.token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
        self.enabled = bool(self.token) or not settings.is_production
        self._requests, self._latency = {}, {}
        if not self.enabled:
            return
        if settings.web_concurrency > 1:
            self._directory = _shared_directory()
            app.after_serving(self._forget_this_worker)
        else:
            self._directory = None
        self._define()

    def _define(self) -> None:
        # Imported here, after PROMETHEUS_MULTIPROC_DIR is set: prometheus-client picks its
        # way of storing values when it is first imported.
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        registry = self._registry = CollectorRegistry()

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return Counter(name, doc, labels, registry=registry)

        def histogram(name: str, doc: str, buckets: tuple[float, ...], labels=()) -> Any:  # type: ignore[no-untyped-def]
            return Histogram(name, doc, labels, buckets=buckets, registry=registry)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return Gauge(name, doc, labels, registry=registry, multiprocess_mode="livesum")

        prefix = "microblog_"
        self.requests_total = counter(
            prefix + "http_requests", "Requests answered", ("route", "method", "status")
        )
        self.request_seconds = histogram(
            prefix + "http_request_duration_seconds",
            "Time to the response's last byte, by route template",
            LATENCY_BUCKETS,
            ("route",),
        )
        self.pool_wait_seconds = histogram(
            prefix + "db_pool_wait_seconds", "Time waiting for a pooled connection", WAIT_BUCKETS
        )
        self.pool_connections = gauge(
            prefix + "db_pool_connections", "Pooled connections (capacity, in_use)", ("state",)
        )
        self.shed_total = counter(
            prefix + "requests_shed", "Requests answered 503 at once", ("reason",)
        )
        self.rate_limited_total = counter(
            prefix + "rate_limited", "Requests refused 429, by rule", ("rule",)
        )
        self.password_wait_seconds = histogram(
            prefix + "password_queue_wait_seconds",
            "Time waiting for a password hashing thread",
            WAIT_BUCKETS,
        )
        self.reads_total = counter(
            prefix + "db_reads", "Reads that may be stale, by where they ran", ("target",)
        )
        self.replica_lag_seconds = Gauge(
            prefix + "db_replica_lag_seconds",
            "How far behind the primary the read replica is (-1: unknown)",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.live_subscribers = gauge(prefix + "live_subscribers", "Open live-timeline streams")
        self.listener_reconnects_total = counter(
            prefix + "live_listener_reconnects", "Times the live timeline's listener reconnected"
        )

    def request_done(self, route: str | None, method: str, status: int, seconds: float) -> None:
        route = route or NOT_ROUTED
        key = (route, method, status)
        # prometheus-client's labels() takes a lock and builds a tuple each call: the children
        # are kept here instead, one dict lookup a request.
        counted = self._requests.get(key)
        if counted is None:
            counted = self._requests[key] = self.requests_total.labels(route, method, str(status))
        counted.inc()
        timed = self._latency.get(route)
        if timed is None:
            timed = self._latency[route] = self.request_seconds.labels(route)
        timed.observe(seconds)

    def pool_waited(self, seconds: float) -> None:
        if self.enabled:
            self.pool_wait_seconds.observe(seconds)

    def password_waited(self, seconds: float) -> None:
        if self.enabled:
            self.password_wait_seconds.observe(seconds)

    def shed(self, reason: str) -> None:
        if self.enabled:
            self.shed_total.labels(reason).inc()

    def rate_limited(self, rule: str) -> None:
        if self.enabled:
            self.rate_limited_total.labels(rule).inc()

    def read_from(self, target: str) -> None:
        if self.enabled:
            self.reads_total.labels(target).inc()

    def replica_lag(self, seconds: float | None) -> None:
        if self.enabled:
            self.replica_lag_seconds.set(-1.0 if seconds is None else seconds)

    def listener_reconnected(self) -> None:
        if self.enabled:
            self.listener_reconnects_total.inc()

    def sample(self, app: AsyncFlask, *, pool: Callable[[AsyncFlask], tuple[int, int]],
               subscribers: Sampler) -> None:  # fmt: skip
        """Every second while serving, each worker writes its pool's and streams' figures."""
        if not self.enabled:
            return
        task: asyncio.Task[None] | None = None

        async def write_forever() -> None:
            while True:
                capacity, in_use = pool(app)
                self.pool_connections.labels("capacity").set(capacity)
                self.pool_connections.labels("in_use").set(in_use)
                self.live_subscribers.set(subscribers(app))
                await asyncio.sleep(SAMPLE_EVERY_S)

        async def start() -> None:
            nonlocal task
            task = asyncio.get_running_loop().create_task(write_forever())

        async def stop() -> None:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        app.before_serving(start)
        app.after_serving(stop)

    async def exposition(self) -> bytes:
        """The text a scrape reads: every worker's figures summed (read off the loop)."""
        return await asyncio.to_thread(self._render)

    def _render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess

        if self._directory is None:
            return generate_latest(self._registry)
        summed = CollectorRegistry()
        multiprocess.MultiProcessCollector(summed, path=str(self._directory))  # type: ignore[no-untyped-call]
        return generate_latest(summed)

    async def _forget_this_worker(self) -> None:
        from prometheus_client import multiprocess

        # Its counters stay (a sum that dropped would read as a reset); its gauges go.
        multiprocess.mark_process_dead(os.getpid(), str(self._directory))  # type: ignore[no-untyped-call]


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _shared_directory() -> Path:
    """The directory this server's workers share, set for prometheus-client to find."""
    if configured := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return Path(configured)  # the deployer's own, and theirs to clean
    parent = Path(tempfile.gettempdir()) / "microblog-metrics"
    parent.mkdir(mode=0o700, exist_ok=True)
    for stale in parent.iterdir():
        if stale.name.isdigit() and not _running(int(stale.name)):
            shutil.rmtree(stale, ignore_errors=True)
    # uvicorn's own process started every worker: its pid names this run of the server.
    directory = parent / str(os.getppid())
    directory.mkdir(mode=0o700, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to someone else
        pass
    return True


metrics = Metrics()
