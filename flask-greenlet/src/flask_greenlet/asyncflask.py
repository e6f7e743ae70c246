"""``AsyncFlask``: Flask whose async views are awaited on the serving event loop.

Under an ASGI server (see ``ASGIApp``) each request runs in a greenlet on the server's loop and
async views are awaited right there; sync views go to a bounded pool of worker threads, so one
that blocks stalls only itself. Called by anything else (a WSGI server, ``test_client()``, the
CLI), a request runs in the caller's own thread, as on plain Flask, in a greenlet whose async
views and hooks are awaited on the process's private loop (see ``loop``).
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import threading
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Iterable, Iterator
from types import FunctionType, MethodType
from typing import Any, TypeVar

from flask import Flask, Request, Response
from flask.globals import request_ctx
from flask.views import MethodView
from werkzeug.exceptions import HTTPException
from werkzeug.routing import MapAdapter

from . import wrappers
from .handover import (
    await_from_greenlet,
    calling_loop,
    in_loop_greenlet,
    in_request_greenlet,
    run_in_greenlet_here,
    wait_for,
)
from .loop import EventLoopThread, shared_loop
from .threads import WorkerThreads
from .types import Environ
from .url_binding import UrlBinder

T = TypeVar("T")
ServingHook = Callable[[], Coroutine[Any, Any, None]]

RESPONSE_KEY = "flask_greenlet.response"  # the environ key where the response object is left
COROUTINE_CACHE_SIZE = 4096  # functions whose ensure_sync() answer is kept


class AsyncFlask(Flask):
    """Flask that awaits async views on the serving event loop instead of a new one each time."""

    #: How many sync views (and sync response generators) may run at once, each on a thread.
    sync_threads = 40
    #: Flask's response, without a second pass over its headers on the way out (see wrappers).
    response_class = wrappers.Response

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._before_serving: list[ServingHook] = []
        self._after_serving: list[ServingHook] = []
        self._loop_lease = _LoopLease()
        self._started_on_loop = 0  # the private loop's generation where startup() ran
        self._loop_lock = threading.Lock()
        self.worker_threads = WorkerThreads(self.sync_threads)
        self._sync_views: dict[str, Callable[..., Any]] = {}
        self._sync_prefixes: tuple[str, ...] = ()
        self._sync_views_seen = 0
        self._coroutine_functions: dict[FunctionType, bool] = {}
        self._url_binder = UrlBinder()
        weakref.finalize(self, self.worker_threads.shutdown)
        # Nothing on the loop refers back to the app, so an app no longer used is collected,
        # and lets go of the shared loop (the last one to go stops it).
        weakref.finalize(self, self._loop_lease.release).atexit = False

    def before_serving(self, hook: ServingHook) -> ServingHook:
        """Register a coroutine function to run on the serving loop before the first request."""
        self._before_serving.append(hook)
        return hook

    def after_serving(self, hook: ServingHook) -> ServingHook:
        """Register a coroutine function to run on the serving loop after the last request."""
        self._after_serving.append(hook)
        return hook

    async def startup(self) -> None:
        """Run the before-serving hooks, in an app context (pushed only if there are any)."""
        if self._before_serving:
            with self.app_context():
                for hook in self._before_serving:
                    await hook()

    async def shutdown(self) -> None:
        """Run the after-serving hooks, last registered first, then let the worker threads go."""
        try:
            if self._after_serving:
                with self.app_context():
                    for hook in reversed(self._after_serving):
                        await hook()
        finally:
            self.worker_threads.shutdown()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        # Flask asks this of the view and of every hook, on every request; whether a function
        # is a coroutine function is worked out once per function. A bound method is looked up
        # by its function, so the cache never keeps an instance alive.
        key = func.__func__ if type(func) is MethodType else func
        if type(key) is not FunctionType:
            return super().ensure_sync(func)  # a partial, a callable object: Flask's own way
        is_async = self._coroutine_functions.get(key)
        if is_async is None:
            is_async = inspect.iscoroutinefunction(func)
            # Bounded, so that a caller that makes a new closure each time grows nothing.
            if len(self._coroutine_functions) < COROUTINE_CACHE_SIZE:
                self._coroutine_functions[key] = is_async
        return self.async_to_sync(func) if is_async else func

    def async_to_sync(self, func: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
        def call_and_await(*args: Any, **kwargs: Any) -> Any:
            if in_request_greenlet():
                return await_from_greenlet(func(*args, **kwargs))
            return self.run_coroutine(func(*args, **kwargs))

        return call_and_await

    def make_response(self, rv: Any) -> Response:
        if isinstance(rv, HTTPException):
            # Flask would run the exception as a WSGI app, which leaves a body that looks
            # streamed; its own response is the same, and in memory.
            return super().make_response(rv.get_response(request_ctx.request.environ))
        body = rv[0] if isinstance(rv, tuple) and rv else rv
        if isinstance(body, AsyncIterable):
            # Werkzeug keeps any iterable as the body; the bridge iterates it on the loop.
            response = self.response_class(body)  # type: ignore[arg-type]
            rv = (response, *rv[1:]) if isinstance(rv, tuple) else response
        return super().make_response(rv)

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        if request is not None and (adapter := self._url_binder.adapter(self, request)) is not None:
            return adapter
        return super().create_url_adapter(request)

    def finalize_request(self, rv: Any, from_error_handler: bool = False) -> Response:
        response = super().finalize_request(rv, from_error_handler)
        if isinstance(response.response, AsyncIterable):
            response.response = _in_request_context(response.response)  # type: ignore[assignment]
        request_ctx.request.environ[RESPONSE_KEY] = response
        return response

    def wsgi_app(self, environ: Environ, start_response: Any) -> Iterable[bytes]:
        if in_loop_greenlet():
            if self._routes_to_sync_view(environ):
                # A sync view may block (sleep, a sync client): the whole request (hooks,
                # view, teardown) gets a worker thread, as under a threaded WSGI server,
                # so whatever the hooks open for the view stays on one thread.
                handle = super().wsgi_app
                return await_from_greenlet(self.worker_threads.run(handle, environ, start_response))
            return super().wsgi_app(environ, start_response)
        # A caller with no loop (test_client(), a WSGI server's thread): the request runs right
        # here, as on plain Flask, so what this thread holds (an in-memory SQLite database,
        # thread-locals, mocks) is the request's too; only what it awaits goes to the loop.
        if self._before_serving:
            self._private_loop()  # the hooks run before the first request
        handle = super().wsgi_app
        chunks = run_in_greenlet_here(handle, environ, start_response, wait=self._wait_on_loop)
        response = environ.get(RESPONSE_KEY)
        if response is not None and isinstance(response.response, AsyncIterable):
            return _iterate_on(self._private_loop(), response.response, chunks)
        return chunks

    def _wait_on_loop(self, awaitable: Any, context: Any) -> Any:
        return self._private_loop().wait(awaitable, context)

    def _routes_to_sync_view(self, environ: Environ) -> bool:
        sync_endpoints, prefixes = self._sync_endpoints()
        if not environ.get("PATH_INFO", "").startswith(prefixes):
            return False  # no sync view's rule can match: skip routing it twice
        try:
            adapter = self.create_url_adapter(self.request_class(environ))
            rule, _ = adapter.match(return_rule=True)  # type: ignore[union-attr]
        except HTTPException:  # 404, 405, a redirect: Flask answers those itself
            return False
        method = environ["REQUEST_METHOD"]
        if method == "OPTIONS" and getattr(rule, "provide_automatic_options", False):
            return False
        view = sync_endpoints.get(rule.endpoint)
        return view is not None and not _view_is_async(view, method)

    def _sync_endpoints(self) -> tuple[dict[str, Callable[..., Any]], tuple[str, ...]]:
        """The views that are not coroutine functions (a class-based one may be, per method),
        and the fixed start of each of their rules (``/static/`` for ``/static/<path:f>``)."""
        if self._sync_views_seen != len(self.view_functions):
            self._sync_views = {
                endpoint: view
                for endpoint, view in self.view_functions.items()
                if not inspect.iscoroutinefunction(inspect.unwrap(view))
            }
            self._sync_prefixes = tuple(
                rule.rule.split("<", 1)[0]
                for rule in self.url_map.iter_rules()
                if rule.endpoint in self._sync_views
            )
            self._sync_views_seen = len(self.view_functions)
        return self._sync_views, self._sync_prefixes

    def run_coroutine(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion from sync code: on the loop this request or thread works
        for, or on the private loop."""
        if in_request_greenlet():
            return await_from_greenlet(coro)
        if _loop_running_in_this_thread():
            coro.close()
            raise RuntimeError("run_coroutine() would block the running event loop; await instead")
        if calling_loop() is not None:
            return wait_for(coro)
        return self._private_loop().run(coro)

    def stop_private_loop(self) -> None:
        """Run the after-serving hooks on the private loop, if they ran their counterparts
        there, and let go of the loop (it stops when no app holds it)."""
        with self._loop_lock:
            started, self._started_on_loop = self._started_on_loop, 0
        loop_thread = shared_loop.thread
        try:
            if started and started == shared_loop.generation and loop_thread is not None:
                loop_thread.run(self.shutdown())
        finally:
            _apps_with_private_loops.discard(self)
            self._loop_lease.release()

    def _private_loop(self) -> EventLoopThread:
        with self._loop_lock:
            self._loop_lease.acquire()
            loop_thread = shared_loop.get()
            if self._started_on_loop != shared_loop.generation:
                # First use, or a new loop (after a fork): the serving hooks run on it first.
                _apps_with_private_loops.add(self)
                loop_thread.run(self.startup())
                self._started_on_loop = shared_loop.generation
            return loop_thread


class _LoopLease:
    """An app's hold on the shared private loop: taken on first use, given back once."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = False

    def acquire(self) -> None:
        if not self.held:
            self.held = True
            shared_loop.acquire()

    def release(self) -> None:
        if self.held:
            self.held = False
            shared_loop.release()


def _view_is_async(view: Callable[..., Any], method: str) -> bool:
    """Whether ``view`` runs on the loop for ``method``: a coroutine function, a decorator's
    sync wrapper around one (Flask-Login's ``login_required`` calls ``ensure_sync``), or a
    class-based view whose handler is one."""
    view_class = getattr(view, "view_class", None)
    if view_class is None:
        return inspect.iscoroutinefunction(inspect.unwrap(view))
    handler = view_class.dispatch_request
    if issubclass(view_class, MethodView):
        handler = getattr(view_class, method.lower(), None) or getattr(view_class, "get", None)
    return inspect.iscoroutinefunction(handler)


def _in_request_context(chunks: AsyncIterable[Any]) -> AsyncIterator[Any]:
    """Iterate ``chunks`` inside the request context, as ``stream_with_context`` does."""
    return _iterate_in(request_ctx._get_current_object(), chunks)  # type: ignore[attr-defined]


async def _iterate_in(context: Any, chunks: AsyncIterable[Any]) -> AsyncIterator[Any]:
    with context:
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()


def _iterate_on(
    loop_thread: EventLoopThread, chunks: AsyncIterable[Any], wsgi_iterable: Iterable[bytes]
) -> Iterator[bytes]:
    """An async response body for a WSGI caller: each chunk is awaited on the private loop."""
    iterator = aiter(chunks)
    try:
        while True:
            chunk = loop_thread.run(_next_or_none(iterator))
            if chunk is None:
                return
            yield chunk.encode() if isinstance(chunk, str) else chunk
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            loop_thread.run(aclose())
        close = getattr(wsgi_iterable, "close", None)
        if close is not None:
            close()


async def _next_or_none(iterator: AsyncIterator[T]) -> T | None:
    try:
        return await anext(iterator)
    except StopAsyncIteration:
        return None


def _loop_running_in_this_thread() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


_apps_with_private_loops: weakref.WeakSet[AsyncFlask] = weakref.WeakSet()


@atexit.register
def _stop_private_loops() -> None:
    for app in list(_apps_with_private_loops):
        app.stop_private_loop()
