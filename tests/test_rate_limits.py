"""Rate limits: per account and per address, 429 with Retry-After, shared through Redis."""

import asyncio
import logging
import os
import secrets

import httpx
import pytest
from flask_greenlet import ASGIApp
from support.accounts import PASSWORD, csrf_token, login, register
from support.databases import make_settings, reset_schema

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


async def wrong_passwords(client, times, username="erin"):
    for _ in range(times):
        assert (await client.post("/api/tokens", auth=(username, "wrong guess"))).status_code == 401


async def test_past_five_failures_one_address_waits_twice_as_long_each_time(limited_app):
    async with client_for(limited_app) as client:
        await register(client)
        await wrong_passwords(client, 5)
        refused = await client.post("/api/tokens", auth=("ERIN", PASSWORD))
        assert refused.status_code == 429  # even the right password waits, from here
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert refused.headers["Retry-After"] == "2"
        page = await login(client)
        assert page.status_code == 429 and "Too many attempts" in page.text
        await asyncio.sleep(2.1)
        await wrong_passwords(client, 1)
        assert (await client.post("/api/tokens", auth=("erin", "x"))).headers["Retry-After"] == "4"
    async with client_for(limited_app, "10.9.9.9") as elsewhere:
        assert (await elsewhere.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 201


async def test_an_unknown_account_is_throttled_alike(limited_app):
    async with client_for(limited_app) as client:
        await wrong_passwords(client, 5, username="nobody")
        assert (await client.post("/api/tokens", auth=("nobody", "x"))).status_code == 429


async def test_a_right_password_starts_the_pair_afresh(limited_app):
    async with client_for(limited_app) as client:
        await register(client)
        await wrong_passwords(client, 4)
        assert (await client.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 201
        await wrong_passwords(client, 4)  # no wait: the count began again
        assert (await client.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 201


async def test_an_attack_from_many_addresses_slows_strangers_but_not_the_owner(database_url):
    app = await started(
        database_url, rate_limit_sign_in_account="20/900", rate_limit_sign_in_address="off"
    )
    await reset_schema(app)
    async with client_for(app, "10.0.0.1") as owner:
        await register(owner)
        assert (await owner.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 201
    guesses = []
    for n in range(6):  # an attacker with six addresses, four guesses each
        async with client_for(app, f"192.0.2.{n}") as attacker:
            for _ in range(4):
                answer = await attacker.post("/api/tokens", auth=("erin", "wrong guess"))
                guesses.append(answer.status_code)
    assert guesses == [401] * 20 + [429] * 4  # past 20 failures, strangers wait
    async with client_for(app, "198.51.100.7") as stranger:
        slowed = await stranger.post("/api/tokens", auth=("erin", PASSWORD))
        assert slowed.status_code == 429
        assert int(slowed.headers["Retry-After"]) <= 60  # slowed, not locked
    async with client_for(app, "10.0.0.1") as owner:
        for _ in range(3):  # the owner's usual address keeps working throughout
            assert (await owner.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 201
        assert (await login(owner)).status_code == 302
    await app.shutdown()


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
        for attempt in range(5):
            worker = one if attempt % 2 else two
            assert (await worker.post("/api/tokens", auth=("erin", "nope"))).status_code == 401
        assert (await one.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 429
        assert (await two.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 429
    await first.shutdown()
    await second.shutdown()


async def token_for(client, username="erin"):
    response = await client.post("/api/tokens", auth=(username, PASSWORD))
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def test_api_writes_are_limited_per_token_and_say_where_the_client_stands(database_url):
    app = await started(database_url, rate_limit_api_write="3/60")
    await reset_schema(app)
    async with client_for(app) as client:
        await register(client)
        first, second = await token_for(client), await token_for(client)
        answers = [
            await client.post("/api/posts", json={"body": "hi"}, headers=first) for _ in range(4)
        ]
        assert [a.status_code for a in answers] == [201, 201, 201, 429]
        assert {a.headers["RateLimit-Policy"] for a in answers} == {'"api-write";q=3;w=60'}
        remaining = [a.headers["RateLimit"].split(";")[1] for a in answers]
        assert remaining == ["r=2", "r=1", "r=0", "r=0"]
        refused = answers[-1]
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert (await client.delete("/api/posts/1", headers=first)).status_code == 429
        assert (
            await client.post("/api/posts", json={"body": "hi"}, headers=second)
        ).status_code == 201
        listed = await client.get("/api/posts")
        assert len(listed.json()["items"]) == 4  # the refused writes wrote nothing
        assert "RateLimit" not in listed.headers  # reads are not limited
    await app.shutdown()


async def test_sign_in_answers_show_the_address_limit(database_url):
    app = await started(database_url, rate_limit_sign_in_address="5/60")
    await reset_schema(app)
    async with client_for(app) as client:
        response = await client.post("/api/tokens", auth=("nobody", "wrong"))
        assert response.status_code == 401
        assert response.headers["RateLimit-Policy"] == '"sign-in-address";q=5;w=60'
        assert response.headers["RateLimit"].startswith('"sign-in-address";r=4;t=')
    await app.shutdown()


async def test_the_write_limit_is_shared_through_redis(database_url, redis_available):
    shared = {
        "redis_url": REDIS_URL,
        "rate_limit_prefix": f"test:{secrets.token_hex(4)}:",
        "rate_limit_api_write": "2/60",
    }
    first = await started(database_url, **shared)
    second = await started(database_url, **shared)
    await reset_schema(first)
    async with client_for(first) as one, client_for(second) as two:
        await register(one)
        token = await token_for(one)
        statuses = [
            (await worker.post("/api/posts", json={"body": "x"}, headers=token)).status_code
            for worker in (one, two, one, two)
        ]
        assert statuses == [201, 201, 429, 429]
    await first.shutdown()
    await second.shutdown()


async def test_with_redis_down_sign_in_still_works_and_says_so(database_url, caplog):
    caplog.set_level(logging.WARNING, logger="app.ratelimit")
    app = await started(database_url, redis_url="redis://127.0.0.1:9/0")  # nothing listens
    await reset_schema(app)
    assert "RATE LIMITS ARE OFF: Redis at redis://127.0.0.1:9 failed at startup" in caplog.text
    async with client_for(app) as client:
        await register(client)
        for _ in range(12):
            await client.post("/api/tokens", auth=("erin", "nope"))
        assert (await client.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 201
        assert (await login(client)).status_code == 302
        assert (await client.get("/readyz")).json()["rate_limits"].startswith("off: ")
    await app.shutdown()


async def test_a_wrong_current_password_counts_like_a_failed_sign_in(limited_app):
    async with client_for(limited_app) as client:
        await register(client)
        await login(client)
        for _ in range(5):
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
