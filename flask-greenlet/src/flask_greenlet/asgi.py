"""``ASGIApp``: serves an ``AsyncFlask`` app to an ASGI server (lifespan and HTTP)."""

from __future__ import annotations

import asyncio
import gc
from io import BytesIO, RawIOBase
from typing import IO

from .asyncflask import RESPONSE_KEY, AsyncFlask
from .environ import build_environ
from .handover import run_in_greenlet
from .request_body import RequestBody, expects_continue, has_no_body
from .response_body import Reply, StartedResponse
from .types import Environ, Receive, Scope, Send
from .watchdog import LoopWatchdog

DEBUG_BLOCKING_THRESHOLD = 0.25  # seconds a step may hold the loop, in debug mode


class ASGIApp:
    """The ASGI application for ``app``: ``uvicorn module:ASGIApp(app)``.

    ``body_timeout`` bounds the wait for each piece of a request body: a client that stops
    sending gets 408 instead of holding its request (and the server's shutdown) open.

    ``blocking_threshold`` starts a watchdog (see ``watchdog``) that logs the stack of any step
    holding the event loop longer than that many seconds; by default it is 0.25 s when the app
    is in debug mode and off otherwise.
    """

    def __init__(
        self,
        app: AsyncFlask,
        *,
        body_timeout: float | None = None,
        blocking_threshold: float | None = None,
    ) -> None:
        self.flask_app = app
        self.body_timeout = body_timeout
        self.blocking_threshold = blocking_threshold
        self.watchdog: LoopWatchdog | None = None
        self._watchdog_decided = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            # Closing before accepting is the ASGI way to refuse: the server answers 403.
            await receive()
            await send({"type": "websocket.close", "code": 1003})
        else:
            raise ValueError(f"ASGI scope type {scope['type']!r} is not served")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
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
                if self.watchdog is not None:
                    self.watchdog.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._watchdog_decided:
            self._start_watchdog_if_wanted()
        body = await self._request_body(scope, receive)
        if body is None:
            await _send_request_timeout(send)
            return
        environ = self.build_environ(scope, body)
        # A body that is still arriving is read from sync code an async view calls: the
        # view's coroutines are then stepped in the greenlet, where that code can wait.
        streamed = isinstance(body, RequestBody) and not body.arrived_whole
        reply = await run_in_greenlet(self._call_app, environ, step_coroutines=streamed)
        await reply.send(send, receive, self.flask_app.worker_threads)

    async def _request_body(self, scope: Scope, receive: Receive) -> IO[bytes] | RawIOBase | None:
        """``wsgi.input``; None if the body's first piece never came.

        The first piece is taken before the app runs: the server usually has it already
        (it came with the headers), and a body that fits in it is then read without waiting.
        """
        if has_no_body(scope):
            return BytesIO()
        if expects_continue(scope):  # reading is what tells the client to send the body
            return RequestBody(receive, self.body_timeout)
        try:
            async with asyncio.timeout(self.body_timeout):
                first = await receive()
        except TimeoutError:
            return None
        return RequestBody(receive, self.body_timeout, first)

    def _start_watchdog_if_wanted(self) -> None:
        self._watchdog_decided = True
        threshold = self.blocking_threshold
        if threshold is None and self.flask_app.debug:
            threshold = DEBUG_BLOCKING_THRESHOLD
        if threshold:
            self.watchdog = LoopWatchdog(self.flask_app, threshold)
            self.watchdog.start()

    def build_environ(self, scope: Scope, body: IO[bytes] | RawIOBase) -> Environ:
        """The WSGI environ for ``scope``; a subclass may add keys of its own."""
        return build_environ(scope, body)

    def _call_app(self, environ: Environ) -> Reply:
        started = StartedResponse()
        chunks = self.flask_app.wsgi_app(environ, started.start_response)
        return Reply(started, chunks, environ.get(RESPONSE_KEY), environ["REQUEST_METHOD"])


async def _send_request_timeout(send: Send) -> None:
    body = b"Request Timeout: the request body stopped arriving.\n"
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 408, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _freeze_startup_objects() -> None:
    """Hide what startup made (modules, the app, compiled SQL) from the cyclic collector.

    Those objects live as long as the process; left in the oldest generation, every full
    collection walks all of them again, and shows up as a latency spike on some request.
    """
    gc.collect()
    gc.freeze()
