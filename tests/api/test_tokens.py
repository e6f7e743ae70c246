"""POST /api/tokens with HTTP Basic, DELETE /api/tokens with the bearer token."""

from datetime import UTC, datetime, timedelta

from support.accounts import PASSWORD


async def test_basic_credentials_get_a_token_that_expires(client, alice):
    response = await client.post("/api/tokens", auth=("alice", PASSWORD))
    assert response.status_code == 201
    body = response.json()
    assert len(body["token"]) >= 32
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert timedelta(hours=23) < expires_at - datetime.now(UTC) <= timedelta(hours=24)


async def test_wrong_password_and_unknown_user_get_the_same_401(client, alice):
    wrong = await client.post("/api/tokens", auth=("alice", "wrong password"))
    unknown = await client.post("/api/tokens", auth=("nobody", PASSWORD))
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")


async def test_no_credentials_is_a_401(client):
    response = await client.post("/api/tokens")
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"


async def test_a_revoked_token_no_longer_works(client, alice):
    assert (await client.delete("/api/tokens", headers=alice.auth)).status_code == 204
    response = await client.post("/api/posts", json={"body": "hi"}, headers=alice.auth)
    assert response.status_code == 401
    assert (await client.delete("/api/tokens", headers=alice.auth)).status_code == 401


async def test_an_expired_token_is_refused(client, alice, app):
    from sqlalchemy import update

    from app.database import db
    from app.models import Token

    with app.app_context():
        async with db.connect() as conn:
            await conn.execute(
                update(Token).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
    response = await client.post("/api/posts", json={"body": "hi"}, headers=alice.auth)
    assert response.status_code == 401


async def test_tokens_are_stored_only_as_hashes(client, alice, app):
    from sqlalchemy import select

    from app.database import db
    from app.models import Token

    with app.app_context():
        async with db.connect() as conn:
            stored = list(await conn.scalars(select(Token.token_hash)))
    assert stored and alice.token not in stored


async def test_expired_tokens_are_purged_when_a_token_is_issued(client, alice, app):
    from sqlalchemy import func, select, update

    from app.database import db
    from app.models import Token, utc_now

    with app.app_context():
        async with db.connect() as conn:
            await conn.execute(update(Token).values(expires_at=utc_now()))
    assert (await client.post("/api/tokens", auth=("alice", PASSWORD))).status_code == 201
    with app.app_context():
        async with db.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(Token)) == 1


async def test_a_user_keeps_at_most_ten_live_tokens_the_oldest_go_first(client, alice):
    from app.store.tokens import MAX_LIVE_TOKENS

    tokens = [
        (await client.post("/api/tokens", auth=("alice", PASSWORD))).json()["token"]
        for _ in range(MAX_LIVE_TOKENS + 2)
    ]
    statuses = [
        (
            await client.post(
                "/api/posts", json={"body": "x"}, headers={"Authorization": f"Bearer {t}"}
            )
        ).status_code
        for t in [alice.token, *tokens]
    ]
    assert statuses == [401] * 3 + [201] * MAX_LIVE_TOKENS
