"""The posts API: keyset pages, writing with a bearer token, reading, editing and deleting."""

import asyncio
from datetime import datetime

import pytest
from support.accounts import ApiUser
from support.traffic import database_traffic


async def write(client, user: ApiUser, body: str) -> dict:
    response = await client.post("/api/posts", json={"body": body}, headers=user.auth)
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_new_post_has_its_author_from_the_token_and_a_location(client, alice):
    response = await client.post("/api/posts", json={"body": "  hello  "}, headers=alice.auth)
    assert response.status_code == 201
    post = response.json()
    assert set(post) == {"id", "body", "author", "created_at", "edited_at"}
    assert post["edited_at"] is None
    assert post["body"] == "  hello  " and post["author"] == "alice"  # kept exactly as sent
    assert post["created_at"].endswith("Z")
    assert response.headers["Location"] == f"/api/posts/{post['id']}"
    assert (await client.get(response.headers["Location"])).json() == post


async def test_a_write_checks_its_token_and_inserts_in_one_statement(app, client, alice):
    async with database_traffic(app) as seen:
        await write(client, alice, "one round trip")
    # Behind PgBouncer the block is a transaction too (BEGIN and COMMIT around the statement).
    assert seen.checkouts == 1 and len(seen.work) == 1, seen.statements


async def test_the_page_size_is_written_into_the_sql_not_sent_as_a_parameter(app, client):
    # A parameter there makes PostgreSQL plan the query again on every execution.
    async with database_traffic(app) as seen:
        await client.get("/api/posts?limit=7")
        await client.get("/api/posts?limit=7&cursor=zz")
    assert seen.work, "no statement was sent"
    assert all(" LIMIT 8" in sql for sql in seen.work), seen.work


@pytest.mark.parametrize("body", ["   ", "x" * 281])
async def test_a_bad_token_is_a_401_even_with_a_bad_body(client, alice, body):
    response = await client.post(
        "/api/posts", json={"body": body}, headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401


async def test_a_refused_write_writes_nothing(client, alice):
    await client.delete("/api/tokens", headers=alice.auth)
    response = await client.post("/api/posts", json={"body": "too late"}, headers=alice.auth)
    assert response.status_code == 401
    assert (await client.get("/api/posts")).json()["items"] == []


async def test_the_author_cannot_be_chosen_in_the_body(client, alice, bob):
    response = await client.post(
        "/api/posts", json={"body": "hi", "author": "bob"}, headers=alice.auth
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic YWxpY2U6eA=="}]
)
async def test_writing_without_a_valid_token_is_a_401(client, headers):
    response = await client.post("/api/posts", json={"body": "hi"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_browser_session_cookie_is_not_api_auth(client, alice):
    client.cookies.set("session", "anything")
    response = await client.post("/api/posts", json={"body": "hi"})
    assert response.status_code == 401


@pytest.mark.parametrize("body", ["", "   ", "x" * 281])
async def test_empty_or_over_long_bodies_are_422(client, alice, body):
    response = await client.post("/api/posts", json={"body": body}, headers=alice.auth)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"


async def test_a_post_of_exactly_the_limit_is_accepted(client, alice):
    assert (await write(client, alice, "x" * 280))["body"] == "x" * 280


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 422),
        (b'["a list"]', "application/json", 422),
        (b"body=hi", "application/x-www-form-urlencoded", 415),
    ],
)
async def test_malformed_bodies_get_a_problem(client, alice, content, content_type, status):
    response = await client.post(
        "/api/posts", content=content, headers={**alice.auth, "Content-Type": content_type}
    )
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"


async def test_posts_are_listed_newest_first_in_keyset_pages(client, alice):
    for n in range(5):
        await write(client, alice, f"post {n}")
    first = (await client.get("/api/posts", params={"limit": 2})).json()
    assert [p["body"] for p in first["items"]] == ["post 4", "post 3"]
    second = (
        await client.get("/api/posts", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [p["body"] for p in second["items"]] == ["post 2", "post 1"]
    third = (
        await client.get("/api/posts", params={"limit": 2, "cursor": second["next_cursor"]})
    ).json()
    assert [p["body"] for p in third["items"]] == ["post 0"]
    assert third["next_cursor"] is None


async def test_pages_stay_correct_while_posts_are_added(client, alice):
    for n in range(4):
        await write(client, alice, f"old {n}")
    first = (await client.get("/api/posts", params={"limit": 2})).json()
    await write(client, alice, "newer than the first page")
    second = (
        await client.get("/api/posts", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [p["body"] for p in second["items"]] == ["old 1", "old 0"]


async def test_the_default_page_is_twenty(client, alice):
    await asyncio.gather(*(write(client, alice, f"p{n}") for n in range(21)))
    page = (await client.get("/api/posts")).json()
    assert len(page["items"]) == 20 and page["next_cursor"] is not None


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "many"}, {"cursor": "!!!"}, {"cursor": "LTE"}],
)
async def test_bad_page_parameters_are_422(client, params):
    response = await client.get("/api/posts", params=params)
    assert response.status_code == 422
    assert response.json()["errors"][0]["in"] == "query"


async def test_a_missing_post_is_a_404(client):
    response = await client.get("/api/posts/12345")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"


async def test_only_the_author_can_delete_a_post(client, alice, bob):
    post = await write(client, alice, "mine")
    forbidden = await client.delete(f"/api/posts/{post['id']}", headers=bob.auth)
    assert forbidden.status_code == 403
    assert (await client.get(f"/api/posts/{post['id']}")).status_code == 200
    deleted = await client.delete(f"/api/posts/{post['id']}", headers=alice.auth)
    assert deleted.status_code == 204
    assert (await client.get(f"/api/posts/{post['id']}")).status_code == 404
    again = await client.delete(f"/api/posts/{post['id']}", headers=alice.auth)
    assert again.status_code == 404


async def test_deleting_needs_a_token(client, alice):
    post = await write(client, alice, "mine")
    assert (await client.delete(f"/api/posts/{post['id']}")).status_code == 401


async def test_concurrent_writes_are_each_stored_once(client, alice):
    posts = await asyncio.gather(*(write(client, alice, f"c{n}") for n in range(30)))
    assert len({p["id"] for p in posts}) == 30
    listed = (await client.get("/api/posts", params={"limit": 100})).json()["items"]
    assert sorted(p["body"] for p in listed) == sorted(f"c{n}" for n in range(30))


async def test_an_author_edits_their_post_and_every_read_shows_it(client, alice):
    post = await write(client, alice, "draft")
    response = await client.patch(
        f"/api/posts/{post['id']}", json={"body": "final"}, headers=alice.auth
    )
    assert response.status_code == 200
    edited = response.json()
    assert edited["body"] == "final" and edited["created_at"] == post["created_at"]
    assert datetime.fromisoformat(edited["edited_at"]) >= datetime.fromisoformat(post["created_at"])
    assert (await client.get(f"/api/posts/{post['id']}")).json() == edited
    assert (await client.get("/api/posts")).json()["items"][0] == edited


async def test_nobody_edits_someone_elses_post_or_one_that_does_not_exist(client, alice, bob):
    post = await write(client, alice, "alice's")
    url = f"/api/posts/{post['id']}"
    assert (await client.patch(url, json={"body": "bob's"}, headers=bob.auth)).status_code == 403
    assert (await client.patch(url, json={"body": "x"})).status_code == 401
    missing = await client.patch("/api/posts/999999", json={"body": "x"}, headers=alice.auth)
    assert missing.status_code == 404
    huge = await client.patch(f"/api/posts/{2**40}", json={"body": "x"}, headers=alice.auth)
    assert huge.status_code == 404
    assert (await client.get(url)).json()["body"] == "alice's"


async def test_an_edit_keeps_the_rules_of_a_new_post(client, alice):
    post = await write(client, alice, "rules")
    url = f"/api/posts/{post['id']}"
    for body in [
        {"body": " "},
        {"body": "x" * 281},
        {"body": "a\u0000b"},
        {},
        {"body": "x", "z": 1},
    ]:
        response = await client.patch(url, json=body, headers=alice.auth)
        assert response.status_code == 422, body
        assert response.headers["Content-Type"] == "application/problem+json"
    assert (await client.get(url)).json() == post
