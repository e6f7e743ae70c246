"""The ASGI bridge: Flask's synchronous core in a greenlet, its async views on the event loop.

Each request runs ``Flask.wsgi_app`` inside a greenlet whose parent is the request's asyncio
task. When Flask calls an ``async def`` view (or hook), the greenlet passes the coroutine up to
the task, which awaits it while other requests go on, and switches back with the result. No
thread is involved, so there are no hand-offs, and the greenlet and the task share one
``contextvars.Context``, so Flask's request context is the same on both sides of every await.

Where no event loop serves the app (``flask run``, the ``flask`` CLI, ``app.test_client()``),
``AsyncFlask`` starts one private loop in a daemon thread and runs every request on it the
same way, so the database engine always lives on exactly one loop.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import gc
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import Future
from io import BytesIO
from typing import Any, TypeVar

from flask import Flask
from greenlet import getcurrent, greenlet

T = TypeVar("T")
ServingHook = Callable[[], Coroutine[Any, Any, None]]


class _RequestGreenlet(greenlet):
    """A greenlet whose parent awaits whatever it is handed; see ``await_from_greenlet``."""


async def run_in_greenlet(fn: Callable[..., T], *args: Any) -> T:
    """Run sync ``fn`` in a greenlet, awaiting on its behalf each awaitable it hands over."""
    child = _RequestGreenlet(fn, getcurrent())
    child.gr_context = getcurrent().gr_context  # one shared Context, not a copy
    handed = child.switch(*args)
    while not child.dead:
        try:
            value = await handed
        except BaseException:
            handed = child.throw(*sys.exc_info())
        else:
            handed = child.switch(value)
    return handed  # type: ignore[no-any-return]


def in_request_greenlet() -> bool:
    return isinstance(getcurrent(), _RequestGreenlet)


def await_from_greenlet(awaitable: Awaitable[T]) -> T:
    """From sync code inside ``run_in_greenlet``, wait for ``awaitable`` on the event loop."""
    current = getcurrent()
    if not isinstance(current, _RequestGreenlet):
        raise RuntimeError("await_from_greenlet() called outside run_in_greenlet()")
    return current.parent.switch(awaitable)  # type: ignore[no-any-return]


class EventLoopThread:
    """A private event loop in a daemon thread, for callers that are not on one."""

    def __init__(self, on_start: ServingHook, on_stop: ServingHook) -> None:
        self._on_start, self._on_stop = on_start, on_stop
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="flask-event-loop"
        )
        self._thread.start()
        self.run(self._on_start())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the private loop, in the caller's context, and wait for its result."""
        context = contextvars.copy_context()  # carries the caller's app or request context
        future: Future[T] = asyncio.run_coroutine_threadsafe(_run_in(context, coro), self._loop)
        return future.result()

    def stop(self) -> None:
        if not self._loop.is_running():
            return
        try:
            self.run(self._on_stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)


async def _run_in(context: contextvars.Context, coro: Coroutine[Any, Any, T]) -> T:
    return await asyncio.get_running_loop().create_task(coro, context=context)


class AsyncFlask(Flask):
    """Flask that awaits async views on the serving event loop instead of a new one each time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._before_serving: list[ServingHook] = []
        self._after_serving: list[ServingHook] = []
        self._loop_thread: EventLoopThread | None = None
        self._loop_thread_lock = threading.Lock()

    def before_serving(self, hook: ServingHook) -> ServingHook:
        """Register a coroutine function to run on the serving loop before the first request."""
        self._before_serving.append(hook)
        return hook

    def after_serving(self, hook: ServingHook) -> ServingHook:
        """Register a coroutine function to run on the serving loop after the last request."""
        self._after_serving.append(hook)
        return hook

    async def startup(self) -> None:
        with self.app_context():
            for hook in self._before_serving:
                await hook()

    async def shutdown(self) -> None:
        with self.app_context():
            for hook in reversed(self._after_serving):
                await hook()

    def async_to_sync(self, func: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
        def call_and_await(*args: Any, **kwargs: Any) -> Any:
            if in_request_greenlet():
                return await_from_greenlet(func(*args, **kwargs))
            return self.run_coroutine(func(*args, **kwargs))

        return call_and_await

    def wsgi_app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if in_request_greenlet():
            return super().wsgi_app(environ, start_response)
        # A plain WSGI server called us: run the request on the private loop.
        handle = super().wsgi_app
        return self.run_coroutine(run_in_greenlet(handle, environ, start_response))

    def run_coroutine(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion from sync code, on the app's private event loop."""
        if _loop_running_in_this_thread():
            coro.close()
            raise RuntimeError("run_coroutine() would block the running event loop; await instead")
        return self._private_loop().run(coro)

    def stop_private_loop(self) -> None:
        """Run the after-serving hooks on the private loop, if one was started, and stop it."""
        with self._loop_thread_lock:
            loop_thread, self._loop_thread = self._loop_thread, None
        if loop_thread is not None:
            loop_thread.stop()

    def _private_loop(self) -> EventLoopThread:
        with self._loop_thread_lock:
            if self._loop_thread is None:
                self._loop_thread = EventLoopThread(self.startup, self.shutdown)
                atexit.register(self.stop_private_loop)
            return self._loop_thread


def _loop_running_in_this_thread() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class ASGIApp:
    """The ASGI application that serves an ``AsyncFlask`` app: lifespan and HTTP.

    ``body_timeout`` bounds the wait for each piece of a request body: a client that stops
    sending gets 408 instead of holding its request (and the server's shutdown) open.
    """

    def __init__(self, app: AsyncFlask, *, body_timeout: float | None = None) -> None:
        self.flask_app = app
        self.body_timeout = body_timeout

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise NotImplementedError(f"ASGI scope type {scope['type']!r} is not served")

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.flask_app.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                _freeze_startup_objects()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.flask_app.shutdown()
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        limit = self.flask_app.config.get("MAX_CONTENT_LENGTH")
        try:
            body = await _read_body(receive, limit, self.body_timeout)
        except TimeoutError:
            await _send_request_timeout(send)
            return
        environ = wsgi_environ(scope, body)
        response = _Response()
        await run_in_greenlet(self._respond, environ, response)
        await send(
            {"type": "http.response.start", "status": response.status, "headers": response.headers}
        )
        await send({"type": "http.response.body", "body": response.body})

    def _respond(self, environ: dict[str, Any], response: _Response) -> None:
        chunks = self.flask_app.wsgi_app(environ, response.start)
        try:
            response.body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()


def _freeze_startup_objects() -> None:
    """Hide what startup made (modules, the app, compiled SQL) from the cyclic collector.

    Those objects live as long as the process; left in the oldest generation, every full
    collection walks all of them again, and shows up as a latency spike on some request.
    """
    gc.collect()
    gc.freeze()


class _Response:
    """What ``start_response`` and the body iterable told us, ready for ASGI messages."""

    __slots__ = ("body", "headers", "status")

    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""

    def start(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.status = int(status[:3])
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        return lambda data: None  # the legacy write() callable; Flask never uses it


async def _read_body(receive: Any, limit: int | None, piece_timeout: float | None) -> bytes:
    """Read the request body, stopping just past ``limit`` so Flask can answer 413 itself;
    each piece must arrive within ``piece_timeout`` seconds (TimeoutError otherwise)."""
    chunks, size = [], 0
    while True:
        async with asyncio.timeout(piece_timeout):
            message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False) or (limit is not None and size > limit):
            break
    return b"".join(chunks)


async def _send_request_timeout(send: Any) -> None:
    body = b"Request Timeout: the request body stopped arriving.\n"
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 408, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def wsgi_environ(scope: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) for an ASGI HTTP scope and its complete body."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode("utf-8").decode("latin-1"),
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] or 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "asgi.scope": scope,
    }
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
        if key in environ:
            separator = "; " if key == "HTTP_COOKIE" else ","
            value = f"{environ[key]}{separator}{value}"
        environ[key] = value
    if environ.pop("HTTP_TRANSFER_ENCODING", None) is not None or (
        body and "CONTENT_LENGTH" not in environ
    ):
        # The bridge has read a chunked body whole (or just past MAX_CONTENT_LENGTH), so it
        # passes it on as a body of known length, as a buffering server does. Left chunked,
        # Werkzeug reads it as empty and never applies MAX_CONTENT_LENGTH to it.
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ
