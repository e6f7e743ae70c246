"""Load shedding: while the event loop lags, new requests get a quick 503, and then recover."""

import asyncio
import time

import httpx
import pytest
from support.databases import make_settings, reset_schema

from app import create_asgi_app
from app.overload import PROBE_INTERVAL_S


@pytest.fixture
async def shedding_app(database_url):
    asgi_app = create_asgi_app(make_settings(database_url, overload_max_lag_ms=200))
    flask_app = asgi_app.flask_app
    await flask_app.startup()
    await reset_schema(flask_app)
    yield asgi_app
    await flask_app.shutdown()


def stall_the_loop(seconds):
    """What a CPU-bound burst does to the loop: nothing else runs for a while."""
    time.sleep(seconds)


async def until(condition, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the load probe never caught up"
        await asyncio.sleep(0.005)


async def wait_for_the_probe():
    await asyncio.sleep(PROBE_INTERVAL_S * 3)


async def test_a_lagging_loop_answers_503_with_retry_after_then_recovers(shedding_app):
    transport = httpx.ASGITransport(app=shedding_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/api/posts")).status_code == 200
        await wait_for_the_probe()
        stall_the_loop(0.4)
        await until(lambda: shedding_app.shedding.lag.seconds > 0.2)  # the probe has seen it
        api, page, health = await asyncio.gather(
            client.get("/api/posts"), client.get("/"), client.get("/healthz")
        )
        assert api.status_code == 503 and api.headers["Retry-After"] == "1"
        assert api.headers["Content-Type"] == "application/problem+json"
        assert api.json()["status"] == 503 and api.json()["title"] == "Service Unavailable"
        assert api.json()["request_id"] == api.headers["X-Request-ID"]  # shed ones too
        assert page.status_code == 503 and "Too busy" in page.text
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        assert health.status_code == 200, "the platform's probe is never shed"
        await until(lambda: shedding_app.shedding.lag.seconds < 0.2)
        assert (await client.get("/api/posts")).status_code == 200


async def test_a_burst_of_ordinary_concurrency_is_not_overload(shedding_app):
    transport = httpx.ASGITransport(app=shedding_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await wait_for_the_probe()
        for _ in range(3):
            responses = await asyncio.gather(*(client.get("/api/posts") for _ in range(50)))
            assert {r.status_code for r in responses} == {200}
            await wait_for_the_probe()
