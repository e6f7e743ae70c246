"""Idempotency-Key on POST /api/posts: a retried write happens once, whatever the retry."""

import asyncio
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from app.api import posts as posts_api
from app.database import db
from app.models import IdempotencyKey, Post, utc_now
from app.store.idempotency import purge_expired_keys

KEY = "retry-me-7f3a9c"


async def count(app, table):
    with app.app_context():
        async with db.connect() as conn:
            return (await conn.execute(select(func.count()).select_from(table))).scalar()


def keyed(user, key=KEY):
    return {**user.auth, "Idempotency-Key": key}


async def test_a_repeat_gets_the_first_answer_and_writes_nothing(app, client, alice):
    first = await client.post("/api/posts", json={"body": "once"}, headers=keyed(alice))
    again = await client.post("/api/posts", json={"body": "once"}, headers=keyed(alice))
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await count(app, Post) == 1


async def test_the_same_body_written_another_way_is_the_same_request(app, client, alice):
    headers = {**keyed(alice), "Content-Type": "application/json"}
    await client.post("/api/posts", content=b'{"body": "same"}', headers=headers)
    again = await client.post("/api/posts", content=b'{ "body":"same" }', headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert await count(app, Post) == 1


async def test_the_same_key_for_another_body_is_refused(app, client, alice):
    await client.post("/api/posts", json={"body": "first"}, headers=keyed(alice))
    other = await client.post("/api/posts", json={"body": "second"}, headers=keyed(alice))
    assert other.status_code == 422
    assert other.headers["Content-Type"] == "application/problem+json"
    assert "different request" in other.json()["detail"]
    assert await count(app, Post) == 1


async def test_keys_belong_to_their_user(app, client, alice, bob):
    await client.post("/api/posts", json={"body": "hers"}, headers=keyed(alice))
    his = await client.post("/api/posts", json={"body": "his"}, headers=keyed(bob))
    assert his.status_code == 201 and "Idempotent-Replayed" not in his.headers
    assert his.json()["author"] == "bob"


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "caf\u00e9"])
async def test_a_malformed_key_is_refused_and_writes_nothing(app, client, alice, key):
    headers = {**alice.auth, "Idempotency-Key": key.encode()}  # as UTF-8 bytes on the wire
    refused = await client.post("/api/posts", json={"body": "x"}, headers=headers)
    assert refused.status_code == 422 and "Idempotency-Key" in refused.json()["detail"]
    assert await count(app, Post) == 0


async def test_a_bad_token_with_a_key_is_a_401(client):
    headers = {"Authorization": "Bearer not-a-token", "Idempotency-Key": KEY}
    refused = await client.post("/api/posts", json={"body": "x"}, headers=headers)
    assert refused.status_code == 401


async def test_an_expired_key_is_claimed_afresh_and_purged(app, client, alice):
    await client.post("/api/posts", json={"body": "long ago"}, headers=keyed(alice))
    with app.app_context():
        async with db.connect() as conn:
            past = utc_now() - timedelta(seconds=1)
            await conn.execute(update(IdempotencyKey).values(expires_at=past))
    fresh = await client.post("/api/posts", json={"body": "today"}, headers=keyed(alice))
    assert fresh.status_code == 201 and "Idempotent-Replayed" not in fresh.headers
    assert await count(app, Post) == 2
    with app.app_context():
        async with db.connect() as conn:
            later = utc_now() + timedelta(hours=25)
            assert await purge_expired_keys(conn, later) == 1
    assert await count(app, IdempotencyKey) == 0


async def test_a_write_that_fails_keeps_no_key_so_the_retry_writes(app, client, alice, monkeypatch):
    real_create_post = posts_api.create_post

    async def insert_then_lose_the_connection(conn, **post):
        await real_create_post(conn, **post)
        raise ConnectionResetError("the database went away mid-write")

    monkeypatch.setattr(posts_api, "create_post", insert_then_lose_the_connection)
    failed = await client.post("/api/posts", json={"body": "retry"}, headers=keyed(alice))
    assert failed.status_code == 503
    monkeypatch.setattr(posts_api, "create_post", real_create_post)
    assert await count(app, Post) == 0 and await count(app, IdempotencyKey) == 0
    retried = await client.post("/api/posts", json={"body": "retry"}, headers=keyed(alice))
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers
    assert await count(app, Post) == 1


async def test_a_repeat_while_the_first_is_running_gets_409_then_the_answer(
    app, client, alice, database_url
):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time: a repeat waits, then is answered")
    # The first request holds its key, uncommitted, in a transaction still open.
    url = make_url(database_url)  # through PgBouncer too, without the app's own options
    first = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        user_id = await first.fetchval("SELECT id FROM users WHERE username = 'alice'")
        holding = first.transaction()
        await holding.start()
        await first.execute(
            "INSERT INTO idempotency_keys (user_id, key, request_digest, created_at, expires_at)"
            " VALUES ($1, $2, 'x', now(), now() + interval '1 hour')",
            user_id,
            KEY,
        )
        busy = await client.post("/api/posts", json={"body": "x"}, headers=keyed(alice))
        assert busy.status_code == 409 and busy.headers["Retry-After"] == "1"
        await holding.rollback()  # the first request failed: nothing was written
    finally:
        await first.close()
    await asyncio.sleep(0)
    retried = await client.post("/api/posts", json={"body": "x"}, headers=keyed(alice))
    assert retried.status_code == 201 and await count(app, Post) == 1
