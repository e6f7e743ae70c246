"""A debug-mode watchdog that names whatever holds the event loop too long.

The bridge cannot make a blocking call safe when it runs on the loop: a sync Redis or HTTP
client called from an async view, or from a hook of an app whose views are async (some
extensions do that in ``before_request``), stalls every request in the worker. The watchdog
finds those: the loop ticks a heartbeat, a thread of its own checks it, and when the loop has
not ticked for ``threshold`` seconds it logs the loop thread's stack at that moment, with the
hook or view the stack is in and the request being served.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from types import CodeType, FrameType
from typing import Any

from flask import Flask

logger = logging.getLogger("flask_greenlet.watchdog")


class LoopWatchdog:
    """Logs the stack of any step that holds ``loop`` longer than ``threshold`` seconds."""

    def __init__(self, app: Flask, threshold: float) -> None:
        self.app = app
        self.threshold = threshold
        self.interval = threshold / 4
        self._last_tick = time.monotonic()
        self._stopped = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id = 0

    def start(self) -> None:
        """Start watching the running loop; call it from the loop's thread."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        self._tick()
        threading.Thread(target=self._watch, name="flask-greenlet-watchdog", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _tick(self) -> None:
        self._last_tick = time.monotonic()
        if not self._stopped.is_set() and self._loop is not None:
            self._loop.call_later(self.interval, self._tick)

    def _watch(self) -> None:
        reported = False
        while not self._stopped.wait(self.interval):
            if self._loop is None or self._loop.is_closed():
                return  # the loop it watched is gone; its thread may serve another
            # An idle loop ticks every interval; later than that plus the threshold, a step
            # has held it for at least the threshold.
            held = time.monotonic() - self._last_tick - self.interval
            if held < self.threshold:
                reported = False
            elif not reported:
                reported = True
                frame = sys._current_frames().get(self._loop_thread_id)
                if frame is not None:
                    self._report(held, frame)

    def _report(self, held: float, frame: FrameType) -> None:
        frames = list(_outward(frame))
        culprit = _innermost_known(frames, _described_functions(self.app))
        request = _request_line(frames)
        stack = "".join(traceback.format_stack(frame))
        logger.warning(
            "The event loop has been blocked for %.2f s by %s (%s); every other request in this "
            "worker waits meanwhile. A sync call on the loop (a sync client, time.sleep) does "
            "this: await an async client, or make the view sync so it runs on a thread. "
            "Stack of the loop thread:\n%s",
            held,
            culprit or "code outside any hook or view",
            request or "no request",
            stack,
        )


def _outward(frame: FrameType | None) -> Iterable[FrameType]:
    while frame is not None:
        yield frame
        frame = frame.f_back


def _innermost_known(frames: list[FrameType], known: dict[CodeType, str]) -> str | None:
    for frame in frames:
        description = known.get(frame.f_code)
        if description is not None:
            return description
    return None


def _request_line(frames: list[FrameType]) -> str | None:
    """``GET /path`` of the request whose ``wsgi_app`` frame is on the stack."""
    for frame in frames:
        if frame.f_code.co_name == "wsgi_app":
            environ = frame.f_locals.get("environ")
            if isinstance(environ, dict):
                return f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"
    return None


def _described_functions(app: Flask) -> dict[CodeType, str]:
    """Every view and hook of ``app`` and its blueprints, by code object."""
    described: dict[CodeType, str] = {}

    def add(kind: str, function: Callable[..., Any], endpoint: str | None = None) -> None:
        name = getattr(inspect.unwrap(function), "__qualname__", repr(function))
        description = f"the {kind} {name}" + (f" (endpoint {endpoint!r})" if endpoint else "")
        for layer in (function, inspect.unwrap(function)):
            code = getattr(layer, "__code__", None)
            if code is not None:
                described.setdefault(code, description)

    for endpoint, view in app.view_functions.items():
        view_class = getattr(view, "view_class", None)
        if view_class is not None:
            for method in ("get", "post", "put", "patch", "delete", "dispatch_request"):
                handler = getattr(view_class, method, None)
                if handler is not None:
                    add("view", handler, endpoint)
        add("view", view, endpoint)
    hooks: dict[str, dict[Any, list[Callable[..., Any]]]] = {
        "before_request hook": app.before_request_funcs,
        "after_request hook": app.after_request_funcs,
        "teardown_request hook": app.teardown_request_funcs,
        "url_value_preprocessor": app.url_value_preprocessors,
        "context_processor": app.template_context_processors,
    }
    for kind, by_blueprint in hooks.items():
        for functions in by_blueprint.values():
            for function in functions:
                add(kind, function)
    for function in app.teardown_appcontext_funcs:
        add("teardown_appcontext hook", function)
    for by_code in app.error_handler_spec.values():
        for handlers in by_code.values():
            for function in handlers.values():
                add("error handler", function)
    return described
