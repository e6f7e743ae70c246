"""A TCP proxy that loses some answers after the server has sent them: the fault of a load
balancer or a network that drops a connection whose request was done. A client cannot tell
such a write from one that never arrived, so it retries; only the app can make that safe."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any


class LossyProxy:
    """Forwards every byte both ways, except that the answer to every ``every``-th request
    starting with ``marker`` is thrown away and both connections are closed."""

    def __init__(self, upstream_port: int, *, marker: bytes, every: int) -> None:
        self.upstream_port, self.marker, self.every = upstream_port, marker, every
        self.matched = 0  # requests that started with the marker
        self.lost = 0  # answers thrown away

    async def handle(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            server_in, server_out = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_out.close()
            return
        doomed = asyncio.Event()  # the request in flight is one whose answer will be lost

        async def requests() -> None:
            while data := await client_in.read(65536):
                if data.startswith(self.marker):
                    self.matched += 1
                    if self.matched % self.every == 0:
                        doomed.set()
                server_out.write(data)
                await server_out.drain()

        async def answers() -> None:
            # HTTP/1.1 without pipelining: what the server sends after a doomed request is its
            # answer, and nothing of it may reach the client.
            while data := await server_in.read(65536):
                if doomed.is_set():
                    self.lost += 1
                    return
                client_out.write(data)
                await client_out.drain()

        pumps = [
            asyncio.ensure_future(_quietly(requests())),
            asyncio.ensure_future(_quietly(answers())),
        ]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        for writer in (client_out, server_out):
            writer.close()


async def _quietly(pump: Coroutine[Any, Any, None]) -> None:
    with contextlib.suppress(OSError):  # either side hung up: the other is closed next
        await pump


@asynccontextmanager
async def lossy_proxy(
    upstream_port: int, *, marker: bytes, every: int
) -> AsyncIterator[tuple[LossyProxy, int]]:
    """The proxy, listening on a free loopback port; yields it and that port."""
    proxy = LossyProxy(upstream_port, marker=marker, every=every)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield proxy, port
    finally:
        server.close()
        await server.wait_closed()
