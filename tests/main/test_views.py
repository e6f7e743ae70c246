"""The HTML pages: everyone's posts, a user's posts, the post form, page links."""

import pytest
from support.accounts import PASSWORD, csrf_token, login, register, register_api_user


async def seed_posts(client, count, username="alice"):
    user = await register_api_user(client, username)
    for n in range(count):
        response = await client.post(
            "/api/posts", json={"body": f"{username} post {n}"}, headers=user.auth
        )
        assert response.status_code == 201
    return user


async def test_the_home_page_lists_posts_newest_first_twenty_a_page(client):
    await seed_posts(client, 25)
    first = await client.get("/")
    assert first.status_code == 200
    assert first.text.count('class="post"') == 20
    assert first.text.index("alice post 24") < first.text.index("alice post 5")
    assert "alice post 4" not in first.text
    assert 'href="/?page=2"' in first.text
    second = await client.get("/", params={"page": 2})
    assert second.text.count('class="post"') == 5 and "alice post 0" in second.text
    assert 'href="/?page=1"' in second.text and "page=3" not in second.text


@pytest.mark.parametrize("page", ["0", "-1", "abc", "99"])
async def test_bad_pages_are_404(client, page):
    await seed_posts(client, 3)
    assert (await client.get("/", params={"page": page})).status_code == 404


async def test_a_user_page_shows_only_their_posts(client):
    await seed_posts(client, 2, "alice")
    await seed_posts(client, 1, "bob")
    page = await client.get("/user/bob")
    assert "bob post 0" in page.text and "alice post" not in page.text
    assert (await client.get("/user/nobody")).status_code == 404


async def test_a_signed_in_user_can_post_from_the_form(client):
    await register(client)
    await login(client)
    home = await client.get("/")
    assert "<textarea" in home.text
    response = await client.post(
        "/", data={"csrf_token": csrf_token(home.text), "body": "from the form"}
    )
    assert response.status_code == 302
    post_id = response.headers["Location"].removeprefix("/#post-")
    home = await client.get("/")
    assert f'id="post-{post_id}"' in home.text and "from the form" in home.text
    assert "from the form" in (await client.get("/user/erin")).text


async def test_an_empty_post_shows_a_form_error_and_stores_nothing(client):
    await register(client)
    await login(client)
    home = await client.get("/")
    response = await client.post("/", data={"csrf_token": csrf_token(home.text), "body": "  "})
    assert response.status_code == 200 and "This field is required." in response.text
    assert "No posts yet." in response.text


async def test_signed_out_visitors_see_no_form_and_cannot_post(client):
    home = await client.get("/")
    assert "<textarea" not in home.text
    response = await client.post("/", data={"body": "anonymous"})
    assert response.status_code in (302, 400)
    assert "anonymous" not in (await client.get("/")).text


async def test_signed_out_post_redirects_to_sign_in(client, app):
    app.config["WTF_CSRF_ENABLED"] = False
    response = await client.post("/", data={"body": "anonymous"})
    assert response.status_code == 302 and response.headers["Location"].startswith("/auth/login")


async def test_post_bodies_are_escaped(client):
    user = await register_api_user(client, "alice")
    await client.post("/api/posts", json={"body": "<script>alert(1)</script>"}, headers=user.auth)
    page = await client.get("/")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text
    assert PASSWORD not in page.text


async def post_from_the_form(client, body):
    home = await client.get("/")
    response = await client.post("/", data={"csrf_token": csrf_token(home.text), "body": body})
    assert response.status_code == 302
    return int(response.headers["Location"].removeprefix("/#post-"))


async def delete_from_the_page(client, post_id):
    home = await client.get("/")
    return await client.post(f"/post/{post_id}/delete", data={"csrf_token": csrf_token(home.text)})


async def test_an_author_deletes_their_post_from_the_page(client):
    await register(client)
    await login(client)
    post_id = await post_from_the_form(client, "soon gone")
    home = await client.get("/")
    assert f'action="/post/{post_id}/delete"' in home.text
    response = await delete_from_the_page(client, post_id)
    assert response.status_code == 302
    assert "soon gone" not in (await client.get("/")).text
    assert (await client.get(f"/api/posts/{post_id}")).status_code == 404
    assert (await delete_from_the_page(client, post_id)).status_code == 404


async def test_nobody_deletes_someone_elses_post(client):
    bob = await register_api_user(client, "bob")
    created = await client.post("/api/posts", json={"body": "bob's"}, headers=bob.auth)
    post_id = created.json()["id"]
    await register(client)
    await login(client)
    home = await client.get("/")
    assert f'action="/post/{post_id}/delete"' not in home.text
    assert (await delete_from_the_page(client, post_id)).status_code == 403
    assert (await client.get(f"/api/posts/{post_id}")).status_code == 200


async def test_signed_out_visitors_cannot_delete(client, app):
    bob = await register_api_user(client, "bob")
    created = await client.post("/api/posts", json={"body": "bob's"}, headers=bob.auth)
    app.config["WTF_CSRF_ENABLED"] = False
    response = await client.post(f"/post/{created.json()['id']}/delete")
    assert response.status_code == 302 and response.headers["Location"].startswith("/auth/login")
    assert (await client.get(f"/api/posts/{created.json()['id']}")).status_code == 200


async def edit_from_the_page(client, post_id, body):
    form = await client.get(f"/post/{post_id}/edit")
    assert form.status_code == 200
    return await client.post(
        f"/post/{post_id}/edit", data={"csrf_token": csrf_token(form.text), "body": body}
    )


async def test_an_author_edits_their_post_from_the_page(client):
    await register(client)
    await login(client)
    post_id = await post_from_the_form(client, "frist post")
    home = await client.get("/")
    assert f'href="/post/{post_id}/edit"' in home.text
    form = await client.get(f"/post/{post_id}/edit")
    assert "frist post" in form.text  # the form starts from the current body
    response = await edit_from_the_page(client, post_id, "first post")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/#post-{post_id}"
    post = (await client.get(f"/api/posts/{post_id}")).json()
    assert post["body"] == "first post" and post["edited_at"] is not None
    assert "(edited)" in (await client.get("/")).text


async def test_an_empty_edit_shows_a_form_error_and_keeps_the_post(client):
    await register(client)
    await login(client)
    post_id = await post_from_the_form(client, "keep me")
    response = await edit_from_the_page(client, post_id, "   ")
    assert response.status_code == 200
    assert "This field is required." in response.text
    assert (await client.get(f"/api/posts/{post_id}")).json()["body"] == "keep me"


async def test_nobody_edits_someone_elses_post(client):
    bob = await register_api_user(client, "bob")
    created = await client.post("/api/posts", json={"body": "bob's"}, headers=bob.auth)
    post_id = created.json()["id"]
    await register(client)
    await login(client)
    assert f'href="/post/{post_id}/edit"' not in (await client.get("/")).text
    assert (await client.get(f"/post/{post_id}/edit")).status_code == 403
    home = await client.get("/")
    forged = await client.post(
        f"/post/{post_id}/edit", data={"csrf_token": csrf_token(home.text), "body": "mine now"}
    )
    assert forged.status_code == 403
    assert (await client.get(f"/api/posts/{post_id}")).json()["body"] == "bob's"
    assert (await client.get("/post/999999/edit")).status_code == 404
