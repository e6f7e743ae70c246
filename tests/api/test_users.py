"""POST /api/users, GET /api/users/<username>, GET /api/users/<username>/posts."""

from support.accounts import PASSWORD, register_api_user


async def test_registering_returns_the_public_user_and_its_location(client):
    response = await client.post(
        "/api/users", json={"username": "carol", "email": "Carol@Example.com", "password": PASSWORD}
    )
    assert response.status_code == 201
    assert response.headers["Location"] == "/api/users/carol"
    body = response.json()
    assert body["username"] == "carol" and body["post_count"] == 0
    assert body["created_at"].endswith("Z")
    assert set(body) == {"username", "created_at", "post_count"}


async def test_a_taken_username_or_email_is_a_409(client, alice):
    taken_name = await client.post(
        "/api/users", json={"username": "alice", "email": "other@example.com", "password": PASSWORD}
    )
    taken_email = await client.post(
        "/api/users", json={"username": "other", "email": "ALICE@example.com", "password": PASSWORD}
    )
    assert taken_name.status_code == taken_email.status_code == 409
    assert "username" in taken_name.json()["detail"]
    assert "email" in taken_email.json()["detail"]
    assert taken_name.headers["Content-Type"] == "application/problem+json"


async def test_invalid_registrations_list_each_bad_field(client):
    response = await client.post(
        "/api/users", json={"username": "a b", "email": "not-an-email", "password": "short"}
    )
    assert response.status_code == 422
    problem = response.json()
    assert {error["field"] for error in problem["errors"]} == {"username", "email", "password"}
    assert problem["status"] == 422 and problem["title"]


async def test_unknown_fields_are_refused(client):
    response = await client.post(
        "/api/users",
        json={"username": "dave", "email": "dave@example.com", "password": PASSWORD, "admin": True},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "admin"


async def test_a_user_profile_counts_posts_and_hides_private_fields(client, alice):
    for body in ("one", "two"):
        await client.post("/api/posts", json={"body": body}, headers=alice.auth)
    response = await client.get("/api/users/alice")
    assert response.status_code == 200
    assert response.json()["post_count"] == 2
    assert "email" not in response.text and "password" not in response.text


async def test_an_unknown_user_is_a_404_problem(client):
    response = await client.get("/api/users/nobody")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    response = await client.get("/api/users/nobody/posts")
    assert response.status_code == 404


async def test_a_users_posts_are_only_theirs_newest_first(client, alice):
    bob = await register_api_user(client, "bob")
    for n in range(3):
        await client.post("/api/posts", json={"body": f"alice {n}"}, headers=alice.auth)
        await client.post("/api/posts", json={"body": f"bob {n}"}, headers=bob.auth)
    response = await client.get("/api/users/bob/posts", params={"limit": 2})
    page = response.json()
    assert [p["body"] for p in page["items"]] == ["bob 2", "bob 1"]
    rest = await client.get("/api/users/bob/posts", params={"cursor": page["next_cursor"]})
    assert [p["body"] for p in rest.json()["items"]] == ["bob 0"]
    assert rest.json()["next_cursor"] is None


async def test_a_token_user_reads_themselves_with_their_email(client, alice):
    me = await client.get("/api/users/me", headers=alice.auth)
    assert me.status_code == 200
    assert me.json() == {
        "username": "alice",
        "email": "alice@example.com",
        "created_at": me.json()["created_at"],
        "post_count": 0,
    }
    await client.post("/api/posts", json={"body": "one"}, headers=alice.auth)
    assert (await client.get("/api/users/me", headers=alice.auth)).json()["post_count"] == 1


async def test_who_am_i_needs_a_live_token(client):
    assert (await client.get("/api/users/me")).status_code == 401
    bad = await client.get("/api/users/me", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.headers["Content-Type"] == "application/problem+json"
