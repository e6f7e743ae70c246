"""End to end on PostgreSQL: requests that wait on the database overlap instead of queueing."""

import asyncio
import time

import httpx
import pytest
from flask_greenlet import ASGIApp
from sqlalchemy import text
from support.databases import make_settings

from app import create_app
from app.database import db

WAIT_SECONDS = 0.2
REQUESTS = 10


@pytest.fixture
async def client(postgres_available):
    app = create_app(make_settings(postgres_available, db_pool_size=REQUESTS))

    @app.get("/api/_slow")
    async def slow():
        async with db.connect() as conn:
            await conn.execute(text("SELECT pg_sleep(:s)"), {"s": WAIT_SECONDS})
        return {"ok": True}

    await app.startup()
    transport = httpx.ASGITransport(app=ASGIApp(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await app.shutdown()


async def test_concurrent_requests_that_wait_on_postgres_finish_together(client):
    await client.get("/api/_slow")  # open the first connection outside the timing
    started = time.perf_counter()
    responses = await asyncio.gather(*(client.get("/api/_slow") for _ in range(REQUESTS)))
    elapsed = time.perf_counter() - started
    assert {r.status_code for r in responses} == {200}
    print(f"\n{REQUESTS} requests waiting {WAIT_SECONDS}s each took {elapsed:.3f}s")
    # Serialised they would take REQUESTS * WAIT_SECONDS = 2 s; overlapped, about one wait.
    assert elapsed < 3 * WAIT_SECONDS, elapsed
