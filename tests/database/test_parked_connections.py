"""Connections kept checked out between turns (database.py, _TurnConnection): on a plain
PostgreSQL, requests take the connection the last one left instead of the pool's checkout;
one the server closed meanwhile is replaced unseen; a block that began a transaction or set
options goes back to the pool, so the next request never inherits them."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from flask_greenlet import ASGIApp
from sqlalchemy import event, func, select
from support.accounts import register_api_user
from support.databases import make_settings, reset_schema

from app import create_app
from app.database import db
from app.store.prepared import Prepared


@pytest.fixture
async def app(database_url):
    flask_app = create_app(make_settings(database_url))

    @flask_app.get("/_test/in-a-transaction")  # a GET: no CSRF token to fetch first
    async def in_a_transaction():
        async with db.begin() as conn:
            await conn.execute(select(1))
        return {"done": True}

    await flask_app.startup()
    await reset_schema(flask_app)
    yield flask_app
    await flask_app.shutdown()


@pytest.fixture
async def checkouts(app) -> AsyncIterator[list[int]]:
    """The pool's checkouts, as they happen (SQLAlchemy's own event)."""
    seen: list[int] = []
    with app.app_context():
        engine = db.engine.sync_engine

    def checked_out(_dbapi, _record, _proxy):
        seen.append(1)

    event.listen(engine, "checkout", checked_out)
    yield seen
    event.remove(engine, "checkout", checked_out)


def plain_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql") and "pgbouncer=true" not in database_url


async def test_consecutive_requests_take_the_connection_the_last_one_left(
    client, checkouts, database_url
):
    alice = await register_api_user(client, "alice")
    checkouts.clear()
    for n in range(5):
        created = await client.post("/api/posts", json={"body": f"post {n}"}, headers=alice.auth)
        assert created.status_code == 201, created.text
        assert (await client.get(created.headers["Location"])).status_code == 200
        assert (await client.get("/api/posts")).status_code == 200
    # Behind PgBouncer every block is a transaction, and on SQLite a statement autobegins one
    # in SQLAlchemy: those blocks hand their connection back, as before.
    assert len(checkouts) <= 1 if plain_postgres(database_url) else len(checkouts) == 15


async def test_after_a_transaction_block_a_plain_write_still_commits(client, checkouts):
    alice = await register_api_user(client, "alice")
    assert (await client.get("/_test/in-a-transaction")).status_code == 200
    # Had the transaction's connection been kept with its isolation level, this write would
    # run in a transaction that the end of its block rolls back, after its 201.
    created = await client.post("/api/posts", json={"body": "kept"}, headers=alice.auth)
    assert created.status_code == 201, created.text
    assert [post["body"] for post in (await client.get("/api/posts")).json()["items"]] == ["kept"]


async def test_a_kept_connection_the_server_closed_is_replaced_unseen(
    client, checkouts, database_url
):
    if not plain_postgres(database_url):
        pytest.skip("only a plain PostgreSQL keeps connections between turns")
    alice = await register_api_user(client, "alice")
    assert (await client.get("/api/posts")).status_code == 200
    checkouts.clear()
    admin = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        ended = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND query NOT LIKE 'LISTEN%'"
        )
    finally:
        await admin.close()
    assert ended >= 1  # the connections the app kept
    await asyncio.sleep(0.2)  # the closed socket reaches the loop
    created = await client.post("/api/posts", json={"body": "after"}, headers=alice.auth)
    assert created.status_code == 201, created.text
    assert (await client.get("/api/posts")).status_code == 200
    assert checkouts  # its place taken by a fresh connection from the pool


async def test_after_a_burst_the_worker_keeps_no_more_than_its_pool_size(database_url):
    if not plain_postgres(database_url):
        pytest.skip("only a plain PostgreSQL keeps connections between turns")
    flask_app = create_app(make_settings(database_url, db_pool_size=2, db_max_overflow=3))

    # Long enough that five requests hold five connections; prepared, as the hot reads are
    # (a statement through SQLAlchemy's execute begins its own transaction object).
    sleep = Prepared(select(func.pg_sleep(0.05)))

    @flask_app.get("/_test/slow-read")
    async def slow_read():
        async with db.connect() as conn:
            await sleep.rows(conn, {})
        return {"done": True}

    await flask_app.startup()
    try:
        transport = httpx.ASGITransport(app=ASGIApp(flask_app))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            burst = [client.get("/_test/slow-read") for _ in range(10)]
            assert {r.status_code for r in await asyncio.gather(*burst)} == {200}
        with flask_app.app_context():
            pool = db.engine.sync_engine.pool
            # The overflow went back to the pool; only the pool's size stays checked out.
            assert 1 <= pool.checkedout() <= 2
    finally:
        await flask_app.shutdown()
