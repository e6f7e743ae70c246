"""Draining on SIGTERM: not ready at once, requests in flight finish, stalled bodies are cut."""

import asyncio
import os
import signal
import time

import asyncpg
import httpx
import pytest
from flask_greenlet import ASGIApp
from sqlalchemy.engine import make_url
from support.databases import (
    fresh_database,
    make_reads_of_posts_slow,
    make_settings,
    reset_schema,
)
from support.processes import uvicorn_serving

from app import create_asgi_app

DRAIN_DATABASE = "drain"
SLOW_READ_S = 1.0


async def test_readyz_says_503_from_the_first_stop_signal_on(database_url):
    server_saw = []
    original = signal.signal(signal.SIGTERM, lambda signum, frame: server_saw.append(signum))
    try:
        asgi_app = create_asgi_app(make_settings(database_url))
        flask_app = asgi_app.flask_app
        await flask_app.startup()
        await reset_schema(flask_app)
        transport = httpx.ASGITransport(app=asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/readyz")).status_code == 200
            os.kill(os.getpid(), signal.SIGTERM)  # a real signal, as the platform sends it
            await asyncio.sleep(0)
            assert server_saw == [signal.SIGTERM], "the server's own handler must still run"
            draining = await client.get("/readyz")
            assert draining.status_code == 503 and draining.json() == {"status": "draining"}
            assert (await client.get("/healthz")).status_code == 200
        await flask_app.shutdown()
        handler = signal.getsignal(signal.SIGTERM)
        assert handler is not None and getattr(handler, "__name__", "") == "<lambda>"
    finally:
        signal.signal(signal.SIGTERM, original)


async def test_a_body_that_stops_arriving_gets_408(app):
    received = asyncio.Event()

    async def receive():
        if not received.is_set():
            received.set()
            return {"type": "http.request", "body": b"{", "more_body": True}
        await asyncio.Event().wait()  # the client never sends the rest

    sent = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/users",  # registering reads the body before anything else
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
    }
    started = time.perf_counter()
    await ASGIApp(app, body_timeout=0.2)(scope, receive, send)
    assert time.perf_counter() - started < 1
    assert sent[0]["status"] == 408


@pytest.fixture
async def drain_database(postgres_available):
    return await fresh_database(postgres_available, DRAIN_DATABASE)


async def idle_keep_alive_connection(port):
    """A connection that asked for one thing, got it, and stays open, idle."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(
        next(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        ).split(b":")[1]
    )
    await reader.readexactly(length)
    return reader, writer


async def stalled_upload(port):
    """Headers and a first piece of a 1,000-byte body, then nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /api/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"body": '
    )
    await writer.drain()
    return reader, writer


@pytest.mark.processes
async def test_sigterm_drains_a_real_server_inside_the_grace_period(drain_database):
    env = {"REQUEST_BODY_TIMEOUT": "2", "DB_POOL_SIZE": "10"}
    args = ("--timeout-graceful-shutdown", "20")
    async with uvicorn_serving(drain_database, env=env, args=args) as (base_url, process):
        await make_reads_of_posts_slow(drain_database, SLOW_READ_S)
        port = int(base_url.rsplit(":", 1)[1])
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            idle_reader, idle_writer = await idle_keep_alive_connection(port)
            slow = [asyncio.ensure_future(client.get("/api/posts")) for _ in range(5)]
            reader, writer = await stalled_upload(port)
            await asyncio.sleep(0.3)  # the reads are now in flight, waiting on the database
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            idle_closed = await asyncio.wait_for(idle_reader.read(), 2)
            idle_writer.close()
            answers = await asyncio.gather(*slow)
            stalled_answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            exit_code = await asyncio.to_thread(process.wait, 20)
            took = time.monotonic() - signalled
    assert idle_closed == b"", "an idle keep-alive connection was left open"
    assert [answer.status_code for answer in answers] == [200] * 5  # in flight: finished
    assert stalled_answer.startswith(b"HTTP/1.1 408")  # cut, not waited out
    assert exit_code in (0, -signal.SIGTERM)
    assert took < 6, f"{took:.1f}s: shutdown waited for someone"  # grace period: 20 s
    conn = await asyncpg.connect(drain_database.replace("+asyncpg", ""))
    left = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'microblog' "
        "AND datname = $1",
        make_url(drain_database).database,
    )
    await conn.close()
    assert left == 0, "the engine was not disposed"


@pytest.mark.processes
async def test_with_a_drain_grace_a_signalled_server_still_serves_newcomers_then_stops(
    drain_database,
):
    """As behind a load balancer: not ready at once, but serving new connections for
    DRAIN_GRACE_S (until the balancer's health checks have seen the 503), then stopping."""
    grace = 2.0
    async with (
        uvicorn_serving(drain_database, env={"DRAIN_GRACE_S": str(grace)}) as (
            base_url,
            process,
        ),
        httpx.AsyncClient(base_url=base_url, timeout=10) as kept,
    ):
        assert (await kept.get("/api/posts")).status_code == 200  # a kept-alive connection
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        assert (await kept.get("/readyz")).status_code == 503
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as newcomer:
            late = await newcomer.get("/api/posts")  # a new connection, during the grace
        assert late.status_code == 200
        assert (await kept.get("/api/posts")).status_code == 200
        assert time.monotonic() - signalled < grace
        exit_code = await asyncio.to_thread(process.wait, 20)
        took = time.monotonic() - signalled
    assert exit_code in (0, -signal.SIGTERM)
    assert grace <= took < grace + 4, f"stopped {took:.1f}s after the signal"
