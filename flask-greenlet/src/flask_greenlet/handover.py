"""The greenlet hand-over: sync code waits for awaitables on the event loop that runs it.

``run_in_greenlet`` runs a sync function in a greenlet whose parent is the calling asyncio
task. When the function needs an awaitable's result, ``await_from_greenlet`` switches to the
task, which awaits it while other tasks go on, and switches back with the result. No thread is
involved, and both sides share one ``contextvars.Context``, so context variables (Flask's
request context among them) are the same before and after every await.

Sync code that runs in a worker thread on the loop's behalf (a sync view, a sync response
generator) waits the same way through ``wait_for``, which also works in the greenlet.

A caller with no running loop (``test_client()``, a WSGI server) uses ``run_in_greenlet_here``
instead: the function runs in a greenlet in the caller's own thread, as plain Flask runs it,
and only the awaitables it hands over are waited for elsewhere (on a loop in another thread).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeVar

from greenlet import getcurrent, greenlet

T = TypeVar("T")

# Set in a worker thread's context: the loop that handed it work, for ``wait_for``.
_calling_loop: contextvars.ContextVar[asyncio.AbstractEventLoop] = contextvars.ContextVar(
    "flask_greenlet_calling_loop"
)


class _RequestGreenlet(greenlet):
    """A greenlet whose parent awaits whatever it is handed; see ``await_from_greenlet``."""

    steps_coroutines = False
    on_loop = True  # False when its parent waits from a thread with no running loop


class _Suspension:
    """What a coroutine stepped in the greenlet yielded: an asyncio future, or None for a
    bare yield (``asyncio.sleep(0)``)."""

    __slots__ = ("future",)

    def __init__(self, future: Any) -> None:
        self.future = future

    def __await__(self) -> Generator[Any, None, Any]:
        if self.future is None:
            return (yield)
        # Yielding set the flag that tells a task "wait for me"; clear it, as a task does,
        # so that awaiting the future again here hands it to this task instead.
        self.future._asyncio_future_blocking = False
        return (yield from self.future.__await__())


async def run_in_greenlet(fn: Callable[..., T], *args: Any, step_coroutines: bool = False) -> T:
    """Run sync ``fn`` in a greenlet, awaiting on its behalf each awaitable it hands over.

    With ``step_coroutines``, the coroutines handed over are stepped in the greenlet (see
    ``await_from_greenlet``); without, the task awaits them whole, which costs less.
    """
    child = _RequestGreenlet(fn, getcurrent())
    child.steps_coroutines = step_coroutines
    child.gr_context = getcurrent().gr_context  # one shared Context, not a copy
    handed = child.switch(*args)
    while not child.dead:
        try:
            value = await handed
        except BaseException:
            handed = child.throw(*sys.exc_info())
        else:
            handed = child.switch(value)
    return handed


def run_in_greenlet_here(
    fn: Callable[..., T],
    *args: Any,
    wait: Callable[[Awaitable[Any], contextvars.Context], Any],
) -> T:
    """Run sync ``fn`` in a greenlet in this thread, which has no running loop.

    Each awaitable it hands over goes to ``wait(awaitable, context)``, which blocks this
    thread until the result is there (running it on a loop elsewhere, in ``context``, the
    greenlet's own, so context variables set on either side are seen on the other).
    """
    child = _RequestGreenlet(fn, getcurrent())
    child.on_loop = False
    child.gr_context = contextvars.copy_context()  # never entered elsewhere, so a loop can
    handed = child.switch(*args)
    while not child.dead:
        try:
            value = wait(handed, child.gr_context)
        except BaseException:
            handed = child.throw(*sys.exc_info())
        else:
            handed = child.switch(value)
    return handed


def in_request_greenlet() -> bool:
    """Whether the caller runs inside ``run_in_greenlet`` and may use ``await_from_greenlet``."""
    return isinstance(getcurrent(), _RequestGreenlet)


def in_loop_greenlet() -> bool:
    """Whether the caller runs inside ``run_in_greenlet``, on the thread of a running loop."""
    current = getcurrent()
    return isinstance(current, _RequestGreenlet) and current.on_loop


def await_from_greenlet(awaitable: Awaitable[T]) -> T:
    """From sync code inside ``run_in_greenlet``, wait for ``awaitable`` on the event loop.

    If the greenlet steps coroutines, a coroutine is stepped right here and only the futures
    it waits on go to the task; so sync code that the coroutine calls (an async view reading
    ``request.stream`` while the body arrives) may wait for the loop in turn.
    """
    current = getcurrent()
    if not isinstance(current, _RequestGreenlet):
        raise RuntimeError("await_from_greenlet() called outside run_in_greenlet()")
    if current.steps_coroutines and isinstance(awaitable, Coroutine):
        return _step_in_greenlet(awaitable, current.parent)
    return current.parent.switch(awaitable)


def _step_in_greenlet(coro: Coroutine[Any, Any, T], task_side: greenlet) -> T:
    sent: Any = None
    thrown: BaseException | None = None
    while True:
        try:
            yielded = coro.send(sent) if thrown is None else coro.throw(thrown)
        except StopIteration as stop:
            return stop.value
        sent = thrown = None
        try:
            sent = task_side.switch(_Suspension(yielded))
        except BaseException as exc:  # the future's error, or the task's cancellation
            thrown = exc


def calling_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop this worker thread works for, if ``run_in_thread`` started the work."""
    return _calling_loop.get(None)


def wait_for(coro: Coroutine[Any, Any, T]) -> T:
    """Wait for ``coro`` on the serving loop, from its request greenlet or a worker thread."""
    if in_request_greenlet():
        return await_from_greenlet(coro)
    loop = calling_loop()
    if loop is None:
        coro.close()
        raise RuntimeError("wait_for() needs a request greenlet or a bridge worker thread")
    context = contextvars.copy_context()
    return asyncio.run_coroutine_threadsafe(run_in_context(context, coro), loop).result()


async def run_in_context(context: contextvars.Context, coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` as a task that runs in ``context`` (a caller's, carried across threads)."""
    return await asyncio.get_running_loop().create_task(coro, context=context)
