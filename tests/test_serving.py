"""The real thing: uvicorn serving asgi:app, with keep-alive, pipelining and a clean stop."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import TEST_SECRET, make_settings, reset_schema

from app import create_app

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def server(database_url):
    app = create_app(make_settings(database_url))
    await app.startup()
    await reset_schema(app)
    await app.shutdown()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET,
        "APP_ENV": "production",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DB_POOL_SIZE": "5",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "asgi:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        await wait_until_up(base_url, process)
        yield base_url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def wait_until_up(base_url, process, timeout=15.0):
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"uvicorn exited: {process.stdout.read().decode()}")
            try:
                if (await client.get(f"{base_url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    pytest.fail("uvicorn did not come up")


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
