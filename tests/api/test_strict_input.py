"""No input gives a 500, and both databases answer alike: NUL bytes, huge ids, odd names."""

import pytest
from support.accounts import PASSWORD, csrf_token, login, register

NUL = "\x00"


@pytest.mark.parametrize(
    "path",
    [
        "/api/users/al%00ice",
        "/api/users/al%00ice/posts",
        "/user/al%00ice",
        "/api/posts/2147483648",
        "/api/posts/99999999999999999999999",
        "/?page=99999999999999999999",
        "/?page=%C2%B2",
        "/user/alice?page=12345678",
    ],
)
async def test_out_of_range_or_impossible_paths_are_404(client, alice, path):
    assert (await client.get(path)).status_code == 404


async def test_deleting_an_id_past_int32_is_404_not_500(client, alice):
    response = await client.delete("/api/posts/2147483648", headers=alice.auth)
    assert response.status_code == 404


@pytest.mark.parametrize("cursor", ["", "-1", "ZZ", "12345678", "a b", "%00", "zzzzzzzz"])
async def test_malformed_cursors_are_422(client, cursor):
    response = await client.get("/api/posts", params={"cursor": cursor})
    assert response.status_code == 422
    assert response.json()["errors"][0]["in"] == "query"


async def test_every_well_formed_cursor_is_a_position(client, alice):
    for n in range(3):
        await client.post("/api/posts", json={"body": f"post {n}"}, headers=alice.auth)
    past_the_end = await client.get("/api/posts", params={"cursor": "zzzzzzz"})
    assert [p["body"] for p in past_the_end.json()["items"]] == ["post 2", "post 1", "post 0"]
    before_the_start = await client.get("/api/posts", params={"cursor": "0"})
    assert before_the_start.json() == {"items": [], "next_cursor": None}


async def test_a_nul_in_a_post_body_is_refused_on_both_databases(client, alice):
    response = await client.post("/api/posts", json={"body": f"a{NUL}b"}, headers=alice.auth)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"


async def test_a_nul_in_basic_credentials_is_just_a_wrong_sign_in(client, alice):
    response = await client.post("/api/tokens", auth=(f"ali{NUL}ce", PASSWORD))
    assert response.status_code == 401


async def test_a_nul_in_registration_is_refused(client):
    body = {"username": "nul", "email": f"n{NUL}@example.com", "password": PASSWORD}
    assert (await client.post("/api/users", json=body)).status_code == 422


async def test_a_nul_in_the_forms_is_a_form_error(client):
    await register(client)
    response = await login(client, username=f"er{NUL}in")
    assert response.status_code == 200 and "not allowed" in response.text
    await login(client)
    home = await client.get("/")
    response = await client.post("/", data={"csrf_token": csrf_token(home.text), "body": NUL})
    assert response.status_code == 200 and "not allowed" in response.text


async def test_names_are_unique_and_found_in_any_case(client, alice):
    taken = await client.post(
        "/api/users", json={"username": "ALICE", "email": "x@example.com", "password": PASSWORD}
    )
    assert taken.status_code == 409
    assert (await client.get("/api/users/ALICE")).json()["username"] == "alice"
    assert (await client.post("/api/tokens", auth=("Alice", PASSWORD))).status_code == 201
    page = await register(client, username="Alice")
    assert "That username is taken." in page.text
