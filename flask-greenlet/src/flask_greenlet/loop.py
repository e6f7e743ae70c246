"""The private event loop in a thread, for callers that are not on one (WSGI servers, the CLI,
``app.test_client()``): one per process, shared by every app that needs it, so a test suite
that makes an app per test holds one loop thread, not one per app still waiting to be
collected. It stops when the last app using it is gone, and a forked child starts its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import threading
from collections.abc import Awaitable, Coroutine
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

    def run(self, coro: Coroutine[Any, Any, T], context: contextvars.Context | None = None) -> T:
        """Run ``coro`` on the loop, in ``context`` (by default a copy of the caller's), and
        wait for its result.

        ``KeyboardInterrupt`` and ``SystemExit`` reach the caller, and the loop runs on: left to
        asyncio, either one would escape the loop and end its thread.
        """
        if not self.running:
            coro.close()
            raise RuntimeError("the private event loop has stopped")
        if context is None:
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

    def wait(self, awaitable: Awaitable[T], context: contextvars.Context) -> T:
        """``run`` for any awaitable, in ``context``: how ``run_in_greenlet_here`` waits."""
        return self.run(_awaited(awaitable), context)


class SharedLoop:
    """The process's one private loop, started on first use; ``acquire`` it for as long as
    an app may need it, and ``release`` it when the app is gone."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # released from garbage collection, maybe mid-acquire
        self._loop_thread: EventLoopThread | None = None
        self._users = 0
        #: Bumped for every new loop: an app whose startup ran on an older one runs it again.
        self.generation = 0

    def acquire(self) -> None:
        with self._lock:
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users <= 0 and self._loop_thread is not None:
                self._loop_thread.stop_soon()
                self._loop_thread = None

    def get(self) -> EventLoopThread:
        """The running loop thread, started (again) if there is none."""
        with self._lock:
            if self._loop_thread is None or not self._loop_thread.running:
                self._loop_thread = EventLoopThread()
                self.generation += 1
            return self._loop_thread

    @property
    def thread(self) -> EventLoopThread | None:
        return self._loop_thread

    def _forget_after_fork(self) -> None:
        # The child has the parent's loop object but not its thread; it starts its own.
        self._lock = threading.RLock()
        self._loop_thread = None


shared_loop = SharedLoop()
os.register_at_fork(after_in_child=shared_loop._forget_after_fork)


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


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
