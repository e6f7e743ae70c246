"""Browser accounts: register, sign in, sign out; CSRF, one login message, safe redirects."""

import pytest
from support.accounts import PASSWORD, csrf_token, login, register

from app.auth.views import LOGIN_FAILED, local_path_or


async def test_register_then_sign_in_then_sign_out(client):
    registered = await register(client)
    assert registered.status_code == 302 and registered.headers["Location"] == "/auth/login"
    signed_in = await login(client)
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/"
    home = await client.get("/")
    assert "erin" in home.text and "Sign out" in home.text
    signed_out = await client.post("/auth/logout", data={"csrf_token": csrf_token(home.text)})
    assert signed_out.status_code == 302
    assert "Sign in" in (await client.get("/")).text


async def test_forms_without_a_csrf_token_are_refused(client):
    response = await client.post(
        "/auth/register",
        data={
            "username": "mallory",
            "email": "m@example.com",
            "password": PASSWORD,
            "password_again": PASSWORD,
        },
    )
    assert response.status_code == 400
    await register(client)
    page = await client.get("/auth/login")
    response = await client.post("/auth/login", data={"username": "erin", "password": PASSWORD})
    assert response.status_code == 400
    assert csrf_token(page.text)


async def test_unknown_user_and_wrong_password_get_the_same_message(client):
    await register(client)
    wrong = await login(client, password="not the password")
    unknown = await login(client, username="nobody")
    assert wrong.status_code == unknown.status_code == 200
    assert LOGIN_FAILED in wrong.text and LOGIN_FAILED in unknown.text


async def test_registration_errors_are_shown_on_the_form(client):
    await register(client)
    taken = await register(client, email="other@example.com")
    assert "That username is taken." in taken.text
    short = await register(client, username="frank", password="short")
    assert short.status_code == 200 and "Use 8 to 128 characters." in short.text


async def test_passwords_are_stored_as_argon2_hashes(client, app):
    from sqlalchemy import select

    from app.database import db
    from app.models import User

    await register(client)
    with app.app_context():
        async with db.connect() as conn:
            stored = await conn.scalar(select(User.password_hash))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


async def test_next_redirects_only_to_local_paths(client):
    await register(client)
    response = await login(client, next_url="/user/erin")
    assert response.headers["Location"] == "/user/erin"


async def test_next_to_another_site_is_ignored(client):
    await register(client)
    response = await login(client, next_url="https://evil.example/")
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "",
        None,
        "relative/path",
    ],
)
def test_local_path_or_refuses_anything_off_site(target):
    assert local_path_or(target, "/") == "/"


def test_local_path_or_keeps_local_paths():
    assert local_path_or("/user/erin?page=2", "/") == "/user/erin?page=2"


async def test_session_cookie_is_httponly_and_samesite(client):
    await register(client)
    response = await login(client)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
