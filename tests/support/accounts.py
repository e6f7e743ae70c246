"""Accounts the tests register and sign in with."""

from __future__ import annotations

import re

import httpx

PASSWORD = "correct horse battery"


class ApiUser:
    """A registered user with a bearer token, for API tests."""

    def __init__(self, username: str, token: str) -> None:
        self.username, self.token = username, token

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def register_api_user(client: httpx.AsyncClient, username: str) -> ApiUser:
    response = await client.post(
        "/api/users",
        json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    response = await client.post("/api/tokens", auth=(username, PASSWORD))
    assert response.status_code == 201, response.text
    return ApiUser(username, response.json()["token"])


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


async def register(
    client: httpx.AsyncClient,
    username: str = "erin",
    password: str = PASSWORD,
    email: str | None = None,
) -> httpx.Response:
    """Register through the browser form, CSRF token and all."""
    page = await client.get("/auth/register")
    return await client.post(
        "/auth/register",
        data={
            "csrf_token": csrf_token(page.text),
            "username": username,
            "email": email or f"{username}@example.com",
            "password": password,
            "password_again": password,
        },
    )


async def login(
    client: httpx.AsyncClient,
    username: str = "erin",
    password: str = PASSWORD,
    next_url: str | None = None,
) -> httpx.Response:
    """Sign in through the browser form."""
    page = await client.get("/auth/login")
    url = "/auth/login" + (f"?next={next_url}" if next_url else "")
    return await client.post(
        url, data={"csrf_token": csrf_token(page.text), "username": username, "password": password}
    )
