"""A bounded pool of worker threads for the sync code that must not run on the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from .handover import _calling_loop

T = TypeVar("T")


class WorkerThreads:
    """Sync views and sync response generators run here, so a blocking one stalls only itself.

    The pool starts its threads on first use and never holds more than ``max_threads``.
    """

    def __init__(self, max_threads: int) -> None:
        self.max_threads = max_threads
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in a worker thread, in a copy of the caller's context, and await it."""
        return await asyncio.wrap_future(self.submit_in(context_for_workers(), fn, *args))

    def submit_in(
        self, context: contextvars.Context, fn: Callable[..., T], *args: Any
    ) -> Future[T]:
        """Start ``fn`` in a worker thread, inside ``context`` (see ``context_for_workers``)."""
        return self._executor().submit(context.run, fn, *args)

    def shutdown(self) -> None:
        """Let the threads end once their current work is done; a later ``run`` starts anew."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_threads, thread_name_prefix="flask-sync")
            return self._pool


def context_for_workers() -> contextvars.Context:
    """A copy of the caller's context that names its running loop, so that code in a worker
    thread can wait for coroutines on that loop (``wait_for``)."""
    context = contextvars.copy_context()
    context.run(_calling_loop.set, asyncio.get_running_loop())
    return context
