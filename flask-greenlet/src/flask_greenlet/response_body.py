"""Sending a WSGI response over ASGI: whole when it is in memory, chunk by chunk when streamed.

A body Flask holds in memory is joined and sent in one message. A streamed body (a generator,
``send_file``) is iterated on worker threads, one chunk at a time, so a generator that waits
stalls only its own response; an async iterable is iterated on the loop. Either stream stops,
and its generator is closed, when the client goes away. ``close()`` (and with it
``call_on_close``) runs after the last chunk is sent, as under a WSGI server.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterable, Coroutine, Iterable
from concurrent.futures import Future
from typing import Any

from flask import Response

from .threads import WorkerThreads, context_for_workers
from .types import Message, Receive, Send

_END = object()
_BODILESS = frozenset({204, 304})


class StartedResponse:
    """What the app passed to ``start_response``: status and headers as ASGI wants them."""

    __slots__ = ("headers", "status")

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        self.status = int(status[:3])
        names = _HEADER_NAMES
        self.headers = [(names.get(k) or _header_name(k), v.encode("latin-1")) for k, v in headers]
        return _no_write  # the legacy write() callable; Flask never uses it

    def message(self) -> Message:
        return {"type": "http.response.start", "status": self.status, "headers": self.headers}


# Response header names as ASGI wants them (lower case, bytes): the app sets the same few on
# every response, so each is encoded once; at most so many, should an app make them up.
_HEADER_NAMES: dict[str, bytes] = {}
HEADER_NAMES_KEPT = 512


def _header_name(name: str) -> bytes:
    encoded = name.lower().encode("latin-1")
    if len(_HEADER_NAMES) < HEADER_NAMES_KEPT:
        _HEADER_NAMES[name] = encoded
    return encoded


def _no_write(data: bytes) -> None:
    raise NotImplementedError("the WSGI write() callable is not supported")


class Reply:
    """A response ready to send: started, with its body in memory or still to iterate."""

    def __init__(
        self,
        started: StartedResponse,
        wsgi_iterable: Iterable[bytes],
        response: Response | None,
        method: str,
    ) -> None:
        self.started = started
        self.wsgi_iterable = wsgi_iterable
        self.response = response
        self.body: bytes | None = None
        self.head = method == "HEAD"
        self.context: contextvars.Context | None = None  # where a sync stream is iterated
        if response is not None and not response.is_streamed:
            # Held in memory: joining it cannot block, so it happens right here.
            self.body = b"".join(wsgi_iterable)

    async def send(self, send: Send, receive: Receive, threads: WorkerThreads) -> None:
        """Send the reply, then close the app's iterable (running ``call_on_close``)."""
        try:
            if self.body is not None:
                await send(self.started.message())
                await send({"type": "http.response.body", "body": self.body})
                return
            await _until_disconnect(self._stream(send, threads), receive)
        finally:
            await self._close(threads)

    async def _stream(self, send: Send, threads: WorkerThreads) -> None:
        body = self.response.response if self.response is not None else None
        if isinstance(body, AsyncIterable):
            await send(self.started.message())
            if not self.head and self.started.status not in _BODILESS:
                await _send_async_chunks(body, send)
        else:
            # One context for every step, as one WSGI server thread would have: a generator
            # that pushes a context (stream_with_context) must pop it in the same one.
            self.context = context_for_workers()
            await _send_sync_chunks(self.started, self.wsgi_iterable, send, threads, self.context)
        await send({"type": "http.response.body", "body": b""})

    async def _close(self, threads: WorkerThreads) -> None:
        close = getattr(self.wsgi_iterable, "close", None)
        if close is None:
            return
        if self.context is not None:  # the generator ends where it ran
            await _in_thread(threads.submit_in(self.context, close))
        elif self.body is not None and not self.response._on_close:  # type: ignore[union-attr]
            close()  # closing a body held in memory runs no user code
        else:
            await threads.run(close)


async def _send_async_chunks(chunks: AsyncIterable[Any], send: Send) -> None:
    async for chunk in chunks:
        data = chunk if isinstance(chunk, bytes) else _as_bytes(chunk)
        if data:
            await send({"type": "http.response.body", "body": data, "more_body": True})


def _as_bytes(chunk: Any) -> bytes:
    return chunk.encode() if isinstance(chunk, str) else bytes(chunk)


async def _send_sync_chunks(
    started: StartedResponse,
    iterable: Iterable[bytes],
    send: Send,
    threads: WorkerThreads,
    context: contextvars.Context,
) -> None:
    iterator = await _in_thread(threads.submit_in(context, iter, iterable))
    if started.status == 0:  # a WSGI app may start the response with its first chunk
        first = await _in_thread(threads.submit_in(context, next, iterator, _END))
        await send(started.message())
        if first is _END:
            return
        await send({"type": "http.response.body", "body": first, "more_body": True})
    else:
        await send(started.message())
    while True:
        chunk = await _in_thread(threads.submit_in(context, next, iterator, _END))
        if chunk is _END:
            return
        if chunk:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _in_thread(future: Future[Any]) -> Any:
    """Await a worker's future; if cancelled, wait out the step in progress first, so the
    generator is not running when it is closed."""
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await asyncio.shield(asyncio.wrap_future(future))
        raise


async def _until_disconnect(streaming: Coroutine[Any, Any, None], receive: Receive) -> None:
    """Run ``streaming``, cancelling it if the client disconnects first."""
    task = asyncio.ensure_future(streaming)
    watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # re-raises what the stream raised, unless it was cut off


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # the rest of a body the view did not read
