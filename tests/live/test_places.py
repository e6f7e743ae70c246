"""Live streams shared fairly: a cap per client address and per signed-in user, 429 beyond
it, while other clients still subscribe; shared through Redis by every instance."""

import asyncio
import secrets
import time
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from support.accounts import register_api_user
from support.processes import uvicorn_serving

pytestmark = pytest.mark.processes

OPEN_LIMITS = {"RATE_LIMIT_REGISTER_ADDRESS": "off", "RATE_LIMIT_SIGN_IN_ADDRESS": "off"}


@asynccontextmanager
async def client_from(base_url, address):
    """A client whose connections come from ``address`` (any of 127.0.0.0/8 is loopback)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=10) as client:
        yield client


async def open_stream(stack, client, headers=None):
    """Open a stream and keep it open until ``stack`` closes; its response."""
    response = await stack.enter_async_context(
        client.stream("GET", "/api/posts/stream", headers=headers)
    )
    if response.status_code == 200:
        # Keep the reader: an abandoned one is collected, and closes the stream with it.
        response.lines = response.aiter_lines()
        assert (await anext(response.lines)).startswith("retry:")  # open on the server
    return response


def assert_capped(response):
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) > 0


async def test_one_address_past_its_cap_gets_429_while_another_still_subscribes(tmp_path):
    env = {"LIVE_MAX_STREAMS_PER_ADDRESS": "3"}
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'places.sqlite3'}"
    async with (
        uvicorn_serving(database_url, env=env) as (base_url, _),
        client_from(base_url, "127.0.0.1") as greedy,
        client_from(base_url, "127.0.0.2") as other,
        AsyncExitStack() as streams,
    ):
        opened = [await open_stream(streams, greedy) for _ in range(3)]
        assert [r.status_code for r in opened] == [200] * 3
        assert_capped(await open_stream(streams, greedy))
        assert (await open_stream(streams, other)).status_code == 200


async def test_a_user_past_their_cap_gets_429_from_any_address(tmp_path):
    env = {**OPEN_LIMITS, "LIVE_MAX_STREAMS_PER_USER": "2"}
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'places.sqlite3'}"
    async with uvicorn_serving(database_url, env=env) as (base_url, _):
        async with client_from(base_url, "127.0.0.1") as client:
            alice = await register_api_user(client, "alice")
        async with (
            client_from(base_url, "127.0.0.1") as first,
            client_from(base_url, "127.0.0.2") as second,
            client_from(base_url, "127.0.0.3") as third,
            AsyncExitStack() as streams,
        ):
            assert (await open_stream(streams, first, alice.auth)).status_code == 200
            assert (await open_stream(streams, second, alice.auth)).status_code == 200
            assert_capped(await open_stream(streams, third, alice.auth))
            assert (await open_stream(streams, third)).status_code == 200  # anonymous: room
            forged = await open_stream(streams, third, {"Authorization": "Bearer nope"})
            assert forged.status_code == 401


async def test_every_instance_counts_the_same_places_through_redis(tmp_path):
    env = {
        "LIVE_MAX_STREAMS_PER_ADDRESS": "2",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "RATE_LIMIT_PREFIX": f"test:{secrets.token_hex(4)}:",
    }
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'places.sqlite3'}"
    async with (
        uvicorn_serving(database_url, env=env) as (one, _),
        uvicorn_serving(database_url, env=env, fresh_schema=False) as (two, _),
        client_from(one, "127.0.0.1") as on_one,
        client_from(two, "127.0.0.1") as on_two,
    ):
        async with AsyncExitStack() as first:
            assert (await open_stream(first, on_one)).status_code == 200
            async with AsyncExitStack() as streams:
                assert (await open_stream(streams, on_two)).status_code == 200
                assert_capped(await open_stream(streams, on_one))
                assert_capped(await open_stream(streams, on_two))
        # Both closed: the places come back (once each server notices the disconnect).
        assert await subscribes_within(on_two, seconds=5)


async def subscribes_within(client, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        async with AsyncExitStack() as stack:
            if (await open_stream(stack, client)).status_code == 200:
                return True
        await asyncio.sleep(0.05)
    return False
