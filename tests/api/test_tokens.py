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


async def named_token(client, name, username="alice"):
    response = await client.post("/api/tokens", auth=(username, PASSWORD), json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_token_can_be_named_at_creation(client, alice):
    issued = await named_token(client, "laptop backup script")
    assert issued["name"] == "laptop backup script"
    assert isinstance(issued["id"], int)


async def test_a_token_without_a_body_has_no_name(client, alice):
    response = await client.post("/api/tokens", auth=("alice", PASSWORD))
    assert response.status_code == 201
    assert response.json()["name"] is None


async def test_a_name_with_control_characters_or_too_long_is_a_422(client, alice):
    for name in ["tab\there", "x" * 65, ""]:
        response = await client.post("/api/tokens", auth=("alice", PASSWORD), json={"name": name})
        assert response.status_code == 422, name
        assert response.headers["Content-Type"] == "application/problem+json"


async def test_the_list_shows_the_callers_live_tokens_and_never_a_secret(client, alice, bob):
    laptop = await named_token(client, "laptop")
    await named_token(client, "bob's phone", username="bob")
    response = await client.get("/api/tokens", headers=alice.auth)
    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["name"] for item in items] == ["laptop", None]  # newest first; bob's not here
    assert items[0]["id"] == laptop["id"]
    assert [item["current"] for item in items] == [False, True]
    assert set(items[0]) == {"id", "name", "created_at", "last_used_at", "expires_at", "current"}
    assert laptop["token"] not in response.text and alice.token not in response.text


async def test_last_used_is_set_by_a_use_and_written_to_the_database(client, alice, app):
    from sqlalchemy import select

    from app.api.token_uses import token_uses
    from app.database import db
    from app.models import Token

    unused = await named_token(client, "never used")
    await client.post("/api/posts", json={"body": "hi"}, headers=alice.auth)
    listed = {
        i["name"]: i for i in (await client.get("/api/tokens", headers=alice.auth)).json()["items"]
    }
    assert listed["never used"]["last_used_at"] is None
    assert listed[None]["last_used_at"] is not None
    with app.app_context():
        await token_uses.write()
        async with db.connect() as conn:
            written = dict((await conn.execute(select(Token.id, Token.last_used_at))).all())
    assert written[unused["id"]] is None
    assert written[listed[None]["id"]] is not None


async def test_a_token_revoked_by_id_stops_working_and_others_go_on(client, alice):
    laptop = await named_token(client, "laptop")
    laptop_auth = {"Authorization": f"Bearer {laptop['token']}"}
    response = await client.delete(f"/api/tokens/{laptop['id']}", headers=alice.auth)
    assert response.status_code == 204
    refused = await client.post("/api/posts", json={"body": "hi"}, headers=laptop_auth)
    assert refused.status_code == 401
    still = await client.post("/api/posts", json={"body": "hi"}, headers=alice.auth)
    assert still.status_code == 201


async def test_nobody_revokes_another_users_token(client, alice, bob):
    bobs = await named_token(client, "bob's", username="bob")
    for token_id in [bobs["id"], 2**31 - 1, 2**40]:
        response = await client.delete(f"/api/tokens/{token_id}", headers=alice.auth)
        assert response.status_code == 404, token_id
    bob_auth = {"Authorization": f"Bearer {bobs['token']}"}
    assert (await client.get("/api/tokens", headers=bob_auth)).status_code == 200
