"""A private event loop in a thread, for callers that are not on one (WSGI servers, the CLI,
``app.test_client()``)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .handover import run_in_context

T = TypeVar("T")


class EventLoopThread:
    """An event loop that runs in its own daemon thread until ``stop``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=_run_until_stopped, args=(self.loop,), daemon=True, name="flask-event-loop"
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop, in a copy of the caller's context, and wait for its result.

        ``KeyboardInterrupt`` and ``SystemExit`` reach the caller, and the loop runs on: left to
        asyncio, either one would escape the loop and end its thread.
        """
        if not self.running:
            coro.close()
            raise RuntimeError("the private event loop has stopped")
        context = contextvars.copy_context()  # carries the caller's app or request context
        outcome = asyncio.run_coroutine_threadsafe(
            run_in_context(context, _capture_exit(coro)), self.loop
        ).result()
        if isinstance(outcome, _Exited):
            raise outcome.exception
        return outcome

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self.loop.is_closed()

    def stop(self) -> None:
        """Stop the loop and, unless called from the loop's own thread, wait for it to close."""
        self.stop_soon()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def stop_soon(self) -> None:
        """Ask the loop to stop and close, without waiting: safe inside a garbage collection,
        where waiting would let the loop's thread end (and free its greenlets) mid-collection."""
        if self.loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # closed in the meantime
            self.loop.call_soon_threadsafe(self.loop.stop)


class _Exited:
    __slots__ = ("exception",)

    def __init__(self, exception: BaseException) -> None:
        self.exception = exception


async def _capture_exit(coro: Coroutine[Any, Any, T]) -> T | _Exited:
    try:
        return await coro
    except (KeyboardInterrupt, SystemExit) as exc:
        return _Exited(exc)


def _run_until_stopped(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()  # its selector and self-pipe are three file descriptors
