"""Draining: from the moment the platform asks a worker to stop, it says it is not ready.

The ASGI server (uvicorn) handles SIGTERM and SIGINT itself: it stops accepting, lets the
requests in flight finish, closes idle keep-alive connections, then runs the shutdown hooks
that dispose of the engine. The app only adds its own word to that: it chains onto the
server's handlers, so ``/readyz`` answers 503 from the first signal on, and the router stops
sending traffic here while the worker drains.
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

    def init_app(self, app: AsyncFlask) -> None:
        state = app.extensions["drain"] = _DrainState()
        app.before_serving(state.watch)
        app.after_serving(state.unwatch)

    @property
    def started(self) -> bool:
        return current_app.extensions["drain"].started  # type: ignore[no-any-return]

    def when_started(self, app: AsyncFlask, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the serving loop as soon as draining starts."""
        app.extensions["drain"].callbacks.append(callback)


class _DrainState:
    def __init__(self) -> None:
        self.started = False
        self.callbacks: list[Callable[[], None]] = []
        self._servers_handlers: dict[int, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

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
        self.started = True
        if self._loop is not None:  # a signal handler may not touch the loop directly
            for callback in self.callbacks:
                self._loop.call_soon_threadsafe(callback)
        self._servers_handlers[signum](signum, frame)


drain = Drain()
