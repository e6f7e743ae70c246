"""The real thing: uvicorn serving asgi:app, with keep-alive, pipelining and a clean stop."""

import asyncio
import signal

import httpx
import pytest
from support.processes import uvicorn_serving

pytestmark = pytest.mark.processes


@pytest.fixture
async def server(database_url):
    async with uvicorn_serving(database_url, env={"DB_POOL_SIZE": "5"}) as served:
        yield served


async def test_keep_alive_connections_serve_many_requests(server):
    base_url, _ = server
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    async with httpx.AsyncClient(base_url=base_url, limits=limits) as client:

        async def session(n):
            statuses = []
            for _ in range(25):
                statuses.append((await client.get("/api/posts")).status_code)
                statuses.append((await client.get("/readyz")).status_code)
            return statuses

        results = await asyncio.gather(*(session(n) for n in range(8)))
    assert {status for statuses in results for status in statuses} == {200}


async def test_pipelined_requests_on_one_connection_all_succeed(server):
    base_url, _ = server
    port = int(base_url.rsplit(":", 1)[1])
    count = 30
    request = b"GET /api/posts?limit=1 HTTP/1.1\r\nHost: localhost\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request * count)
    await writer.drain()
    statuses = []
    while len(statuses) < count:
        status_line = await asyncio.wait_for(reader.readline(), 10)
        statuses.append(status_line.split()[1])
        length = 0
        while (line := await reader.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
    writer.close()
    assert statuses == [b"200"] * count


async def test_sigterm_stops_the_server_cleanly(server):
    _, process = server
    process.send_signal(signal.SIGTERM)
    # uvicorn finishes its shutdown (lifespan included), then re-raises the signal it caught.
    assert await asyncio.to_thread(process.wait, 15) in (0, -signal.SIGTERM)
    output = process.stdout.read().decode()
    assert "Traceback" not in output and "ERROR" not in output
