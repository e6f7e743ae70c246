"""The statements every request runs (store/prepared.py): straight to asyncpg on PostgreSQL,
through SQLAlchemy on SQLite, behind PgBouncer and inside a transaction, the same answers."""

import pytest
from flask import request
from support.accounts import register_api_user
from support.databases import make_settings, reset_schema
from support.traffic import database_traffic

from app import create_app
from app.database import db
from app.store.posts import create_post_for_token
from app.store.tokens import digest


class Abandoned(Exception):
    """Raised inside a transaction to roll it back."""


@pytest.fixture
async def app(database_url):
    flask_app = create_app(make_settings(database_url))

    @flask_app.get("/_test/write-then-abandon")  # a GET: no CSRF token to fetch first
    async def write_then_abandon():
        token_hash = digest(request.headers["Authorization"].removeprefix("Bearer "))
        try:
            async with db.begin() as conn:
                written = await create_post_for_token(conn, token_hash=token_hash, body="undone")
                assert written is not None, "the token was refused"
                raise Abandoned
        except Abandoned:
            pass
        return {"abandoned": True}

    await flask_app.startup()
    await reset_schema(flask_app)
    yield flask_app
    await flask_app.shutdown()


async def test_a_hot_statement_inside_a_transaction_is_rolled_back_with_it(client):
    alice = await register_api_user(client, "alice")
    response = await client.get("/_test/write-then-abandon", headers=alice.auth)
    assert response.status_code == 200, response.text
    assert (await client.get("/api/posts")).json()["items"] == []


async def test_reads_and_writes_go_straight_to_asyncpg_only_on_a_plain_postgres(
    app, client, database_url
):
    alice = await register_api_user(client, "alice")
    async with database_traffic(app) as seen:
        created = await client.post("/api/posts", json={"body": "hi"}, headers=alice.auth)
        one = await client.get(created.headers["Location"])
        page = await client.get("/api/posts")
    assert created.status_code == 201 and one.json() == created.json()
    assert page.json()["items"] == [created.json()]
    straight = [sql for sql in seen.straight_to_asyncpg if sql in seen.work]
    plain_postgres = database_url.startswith("postgresql") and "pgbouncer=true" not in database_url
    assert len(seen.work) == 3, seen.statements
    assert len(straight) == (3 if plain_postgres else 0), seen.statements
