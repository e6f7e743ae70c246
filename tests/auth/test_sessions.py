"""Browser sessions end on the server: a replayed cookie is signed out, sign-ins do not slide."""

from datetime import timedelta

import httpx
from flask_greenlet import ASGIApp
from sqlalchemy import select, update
from support.accounts import PASSWORD, csrf_token, login, register

from app.database import db
from app.models import BrowserSession, utc_now

NEW_PASSWORD = "a much newer pass phrase"


def replay(app, cookies):
    """Another client that presents an old copy of the cookies, as a thief would."""
    transport = httpx.ASGITransport(app=ASGIApp(app))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", cookies=cookies)


async def signed_in_as(client, name="erin"):
    page = await client.get("/")
    return f">{name}</a>" in page.text and "Sign out" in page.text


async def can_post(client, token):
    response = await client.post("/", data={"csrf_token": token, "body": "replayed"})
    return response.status_code == 302 and "/auth/login" not in response.headers["Location"]


async def test_a_cookie_captured_before_sign_out_is_signed_out_after(client, app):
    await register(client)
    await login(client)
    home = await client.get("/")
    captured, captured_csrf = dict(client.cookies), csrf_token(home.text)
    async with replay(app, captured) as before_sign_out:
        assert await signed_in_as(before_sign_out), "the replay itself must work"
    await client.post("/auth/logout", data={"csrf_token": captured_csrf})
    async with replay(app, captured) as thief:
        assert not await signed_in_as(thief)
        assert not await can_post(thief, captured_csrf)
    assert "replayed" not in (await client.get("/")).text


async def test_every_sign_in_starts_a_new_session(client):
    await register(client)
    await client.get("/auth/login")
    before = client.cookies.get("session")
    await login(client)
    after = client.cookies.get("session")
    assert before != after
    await client.post("/auth/logout", data={"csrf_token": csrf_token((await client.get("/")).text)})
    await login(client)
    assert client.cookies.get("session") != after


async def test_without_remember_me_the_cookie_ends_with_the_browser(client):
    await register(client)
    response = await login(client)
    cookie = response.headers["Set-Cookie"]
    assert "Expires" not in cookie and "Max-Age" not in cookie


async def test_remember_me_lasts_thirty_days_and_does_not_slide(client, app):
    await register(client)
    page = await client.get("/auth/login")
    response = await client.post(
        "/auth/login",
        data={
            "csrf_token": csrf_token(page.text),
            "username": "erin",
            "password": PASSWORD,
            "remember": "y",
        },
    )
    assert "Expires=" in response.headers["Set-Cookie"]
    await client.get("/")  # the first page stores the form's CSRF token in the session
    later = await client.get("/")
    assert "set-cookie" not in later.headers, "a sign-in must not slide on every request"
    with app.app_context():
        async with db.connect() as conn:
            expires_at = await conn.scalar(select(BrowserSession.expires_at))
    assert timedelta(days=29, hours=23) < expires_at - utc_now() <= timedelta(days=30)


async def test_a_session_past_its_server_side_expiry_is_signed_out(client, app):
    await register(client)
    await login(client)
    assert await signed_in_as(client)
    with app.app_context():
        async with db.connect() as conn:
            await conn.execute(update(BrowserSession).values(expires_at=utc_now()))
    assert not await signed_in_as(client)


async def test_sign_out_everywhere_ends_every_browser_of_the_user(client, app):
    await register(client)
    await login(client)
    async with replay(app, {}) as other_device:
        await login(other_device)
        assert await signed_in_as(other_device)
        page = await client.get("/auth/password")
        response = await client.post(
            "/auth/sign-out-everywhere", data={"csrf_token": csrf_token(page.text)}
        )
        assert response.status_code == 302
        assert not await signed_in_as(other_device)
    assert not await signed_in_as(client)


async def test_changing_the_password_signs_out_other_browsers_and_keeps_this_one(client, app):
    await register(client)
    await login(client)
    token = (await client.post("/api/tokens", auth=("erin", PASSWORD))).json()["token"]
    async with replay(app, {}) as other_device:
        await login(other_device)
        page = await client.get("/auth/password")
        response = await client.post(
            "/auth/password",
            data={
                "csrf_token": csrf_token(page.text),
                "current_password": PASSWORD,
                "new_password": NEW_PASSWORD,
                "new_password_again": NEW_PASSWORD,
            },
        )
        assert response.status_code == 302
        assert await signed_in_as(client)
        assert not await signed_in_as(other_device)
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.post("/api/posts", json={"body": "x"}, headers=bearer)).status_code == 401
    assert (await client.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 401
    assert (await client.post("/api/tokens", auth=("erin", NEW_PASSWORD))).status_code == 201


async def test_a_wrong_current_password_changes_nothing(client):
    await register(client)
    await login(client)
    page = await client.get("/auth/password")
    response = await client.post(
        "/auth/password",
        data={
            "csrf_token": csrf_token(page.text),
            "current_password": "not it at all",
            "new_password": NEW_PASSWORD,
            "new_password_again": NEW_PASSWORD,
        },
    )
    assert response.status_code == 200 and "not your current password" in response.text
    assert (await client.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 201


async def test_the_password_page_needs_a_sign_in(client):
    response = await client.get("/auth/password")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


async def test_the_api_changes_a_password_and_revokes_every_token(client, alice):
    other = (await client.post("/api/tokens", auth=("alice", PASSWORD))).json()["token"]
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    response = await client.put("/api/users/me/password", json=body, headers=alice.auth)
    assert response.status_code == 204
    for token in (alice.token, other):
        headers = {"Authorization": f"Bearer {token}"}
        assert (
            await client.post("/api/posts", json={"body": "x"}, headers=headers)
        ).status_code == 401
    assert (await client.post("/api/tokens", auth=("alice", NEW_PASSWORD))).status_code == 201


async def test_the_api_refuses_a_wrong_current_password_or_a_weak_new_one(client, alice):
    wrong = {"current_password": "guess guess", "new_password": NEW_PASSWORD}
    response = await client.put("/api/users/me/password", json=wrong, headers=alice.auth)
    assert response.status_code == 403
    weak = {"current_password": PASSWORD, "new_password": "password123"}
    response = await client.put("/api/users/me/password", json=weak, headers=alice.auth)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "new_password"
    assert (await client.get("/api/posts", headers=alice.auth)).status_code == 200


def test_flask_logins_cookie_hook_runs_on_the_sign_in_pages_only(app):
    # It sets or clears Flask-Login's remember cookie, which only the sign-in views can ask
    # for; app-wide it ran, with nothing to do, on every API request.
    hook = app.login_manager._update_remember_cookie
    assert hook not in app.after_request_funcs[None]
    assert hook in app.after_request_funcs["auth"]
