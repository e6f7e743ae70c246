"""Rate limits: per account and per address, 429 with Retry-After, shared through Redis."""

import logging
import os
import secrets

import httpx
import pytest
from conftest import PASSWORD, csrf_token, make_settings, reset_schema
from flask_greenlet import ASGIApp
from test_auth import login, register

from app import create_app

REDIS_URL = "redis://127.0.0.1:6379/0"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


async def started(database_url, **overrides):
    app = create_app(make_settings(database_url, **overrides))
    await app.startup()
    return app


def client_for(app, address="10.0.0.1"):
    transport = httpx.ASGITransport(app=ASGIApp(app), client=(address, 4000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def limited_app(database_url):
    app = await started(database_url)
    await reset_schema(app)
    yield app
    await app.shutdown()


async def test_after_ten_wrong_passwords_even_the_right_one_waits(limited_app):
    async with client_for(limited_app) as client:
        await register(client)
        for _ in range(10):
            wrong = await client.post("/api/tokens", auth=("erin", "wrong guess"))
            assert wrong.status_code == 401
        refused = await client.post("/api/tokens", auth=("ERIN", PASSWORD))
        assert refused.status_code == 429
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert 800 < int(refused.headers["Retry-After"]) <= 900
        page = await login(client)
        assert page.status_code == 429 and "Too many attempts" in page.text
        assert "Retry-After" in page.headers
    async with client_for(limited_app, "10.9.9.9") as elsewhere:
        # The account is locked for everyone, not just for the address that guessed.
        assert (await elsewhere.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 429


async def test_registration_is_limited_per_client_address(database_url):
    app = await started(database_url, rate_limit_register_address="3/3600")
    await reset_schema(app)
    async with client_for(app) as client, client_for(app, "10.0.0.2") as other:
        for n in range(3):
            body = {"username": f"user{n}", "email": f"u{n}@example.com", "password": PASSWORD}
            assert (await client.post("/api/users", json=body)).status_code == 201
        body = {"username": "user9", "email": "u9@example.com", "password": PASSWORD}
        assert (await client.post("/api/users", json=body)).status_code == 429
        page = await register(client, username="formuser")
        assert page.status_code == 429 and "Too many attempts" in page.text
        assert (await client.get("/auth/register")).status_code == 200  # looking is free
        assert (await other.post("/api/users", json=body)).status_code == 201
    await app.shutdown()


async def test_the_address_is_the_one_the_router_saw_not_the_one_the_client_claims(database_url):
    app = await started(database_url, rate_limit_sign_in_address="3/60", trusted_proxy_hops=1)
    await reset_schema(app)
    async with client_for(app, "10.0.0.1") as router:
        statuses = []
        for n in range(4):
            spoofed = {"X-Forwarded-For": f"6.6.6.{n}, 203.0.113.7"}
            response = await router.post("/api/tokens", auth=("x", "y"), headers=spoofed)
            statuses.append(response.status_code)
        assert statuses == [401, 401, 401, 429]
        other = {"X-Forwarded-For": "6.6.6.1, 198.51.100.4"}
        assert (await router.post("/api/tokens", auth=("x", "y"), headers=other)).status_code == 401
    await app.shutdown()


async def test_without_trusted_hops_forwarded_headers_are_ignored(database_url):
    app = await started(database_url, rate_limit_sign_in_address="2/60")
    await reset_schema(app)
    async with client_for(app) as client:
        statuses = [
            (
                await client.post(
                    "/api/tokens", auth=("x", "y"), headers={"X-Forwarded-For": f"6.6.6.{n}"}
                )
            ).status_code
            for n in range(3)
        ]
    assert statuses == [401, 401, 429]
    await app.shutdown()


@pytest.fixture
async def redis_available():
    """Redis for the shared limits; CI fails without it, elsewhere the test is skipped."""
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await redis.ping()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis at {REDIS_URL} is unreachable: {exc!r}")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc!r}")
    finally:
        await redis.aclose()


async def test_two_workers_share_their_limits_through_redis(database_url, redis_available):
    prefix = f"test:{secrets.token_hex(4)}:"
    shared = {"redis_url": REDIS_URL, "rate_limit_prefix": prefix}
    first = await started(database_url, **shared)
    second = await started(database_url, **shared)
    await reset_schema(first)
    async with client_for(first) as one, client_for(second) as two:
        await register(one)
        for attempt in range(10):
            worker = one if attempt % 2 else two
            assert (await worker.post("/api/tokens", auth=("erin", "nope"))).status_code == 401
        assert (await one.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 429
        assert (await two.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 429
    await first.shutdown()
    await second.shutdown()


async def test_with_redis_down_sign_in_still_works_and_says_so(database_url, caplog):
    app = await started(database_url, redis_url="redis://127.0.0.1:9/0")  # nothing listens
    await reset_schema(app)
    caplog.set_level(logging.WARNING, logger="app.ratelimit")
    async with client_for(app) as client:
        await register(client)
        for _ in range(12):
            await client.post("/api/tokens", auth=("erin", "nope"))
        assert (await client.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 201
        assert (await login(client)).status_code == 302
    assert "rate limits are off" in caplog.text
    await app.shutdown()


async def test_a_wrong_current_password_counts_against_the_account(limited_app):
    async with client_for(limited_app) as client:
        await register(client)
        await login(client)
        for _ in range(10):
            page = await client.get("/auth/password")
            await client.post(
                "/auth/password",
                data={
                    "csrf_token": csrf_token(page.text),
                    "current_password": "guessing again",
                    "new_password": "a brand new phrase",
                    "new_password_again": "a brand new phrase",
                },
            )
        assert (await client.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 429


def test_every_state_changing_route_is_limited_or_says_why_not(app):
    for rule in app.url_map.iter_rules():
        if rule.methods & WRITE_METHODS and rule.endpoint != "static":
            view = app.view_functions[rule.endpoint]
            limits = getattr(view, "rate_limits", None)
            exempt = getattr(view, "rate_limit_exempt", None)
            assert limits or exempt, f"{rule.rule} changes state with no rate limit"
            assert not (limits and exempt), rule.rule
