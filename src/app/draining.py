"""Draining: from the moment the platform asks a worker to stop, it says it is not ready.

The ASGI server (uvicorn) handles SIGTERM and SIGINT itself: it stops accepting, lets the
requests in flight finish, closes idle keep-alive connections, then runs the shutdown hooks
that dispose of the engine. The app only adds its own word to that: it chains onto the
server's handlers, so ``/readyz`` answers 503 from the first signal on, and the router stops
sending traffic here while the worker drains.

A platform's router stops routing at the signal; a load balancer only learns it from its next
health checks, and until then it keeps sending requests, which a closed listener or a
keep-alive connection closed under them would lose. With ``DRAIN_GRACE_S`` the worker says 503
on ``/readyz`` at once but hands the signal to the server only that many seconds later,
serving all the while. A second signal ends the wait.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from flask import current_app
from flask_greenlet import AsyncFlask

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # Fly.io stops with SIGINT


class Drain:
    """The Flask extension that notices the stop signal; wired with ``init_app``."""

    def init_app(self, app: AsyncFlask, *, grace_s: float = 0.0) -> None:
        state = app.extensions["drain"] = _DrainState(grace_s)
        app.before_serving(state.watch)
        app.after_serving(state.unwatch)

    @property
    def started(self) -> bool:
        return current_app.extensions["drain"].started  # type: ignore[no-any-return]

    def when_started(self, app: AsyncFlask, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the serving loop when the server is told to stop: at the signal,
        or after ``DRAIN_GRACE_S`` (until then the worker serves as before)."""
        app.extensions["drain"].callbacks.append(callback)


class _DrainState:
    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.started = False
        self.callbacks: list[Callable[[], None]] = []
        self._servers_handlers: dict[int, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: asyncio.TimerHandle | None = None
        self._handed_over = False

    async def watch(self) -> None:
        self._loop = asyncio.get_running_loop()
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers belong to the main thread
        for stop in STOP_SIGNALS:
            handler = signal.getsignal(stop)
            if callable(handler):  # a server is handling it: chain onto it, never replace it
                self._servers_handlers[stop] = handler
                signal.signal(stop, self._on_stop_signal)

    async def unwatch(self) -> None:
        for stop, handler in self._servers_handlers.items():
            if signal.getsignal(stop) == self._on_stop_signal:
                signal.signal(stop, handler)
        self._servers_handlers.clear()

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        first, self.started = not self.started, True
        loop = self._loop  # a signal handler may not touch the loop directly: it goes through it
        if loop is None:
            self._servers_handlers[signum](signum, frame)
        elif not self.grace_s:
            loop.call_soon_threadsafe(self._end_app_work)
            self._servers_handlers[signum](signum, frame)
        elif first:
            loop.call_soon_threadsafe(self._hand_over_later, signum)
        else:
            loop.call_soon_threadsafe(self._hand_over, signum)

    def _hand_over_later(self, signum: int) -> None:
        # runs on the loop, so the running loop is the one watch() stored
        self._waiting = asyncio.get_running_loop().call_later(self.grace_s, self._hand_over, signum)

    def _hand_over(self, signum: int) -> None:
        """End what only this app knows of (the live streams), then let the server stop."""
        if self._waiting is not None:  # a second signal during the grace: stop now
            self._waiting.cancel()
            self._waiting = None
        self._end_app_work()
        server_handler = self._servers_handlers.get(signum)
        if server_handler is not None:  # None: the server stopped some other way meanwhile
            server_handler(signum, None)

    def _end_app_work(self) -> None:
        if not self._handed_over:
            self._handed_over = True
            for callback in self.callbacks:
                callback()


drain = Drain()
