"""Redis over TLS, as managed services hand it out: a real redis-server speaking only TLS with
a self-signed certificate. Verified by default; REDIS_TLS_VERIFY=none or REDIS_TLS_CA_FILE make
it work, and the counters land there; a failure at startup is said at once, and on /readyz."""

import logging
import secrets

import httpx
import pytest
from flask_greenlet import ASGIApp
from support.accounts import PASSWORD, register
from support.databases import make_settings, reset_schema
from support.processes import redis_over_tls

from app import create_app
from app.redis_connection import redis_client

pytestmark = pytest.mark.processes


@pytest.fixture
def tls_redis(tmp_path):
    with redis_over_tls(tmp_path) as (url, cert):
        yield url, cert


async def serving(tmp_path, **overrides):
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'tls.sqlite3'}", **overrides)
    app = create_app(settings)
    await app.startup()
    await reset_schema(app)
    transport = httpx.ASGITransport(app=ASGIApp(app), client=("10.0.0.1", 4000))
    return app, httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def counters_in(url, cert, prefix):
    redis = redis_client(url, ca_file=str(cert))
    try:
        return {
            key.decode(): int(await redis.get(key)) async for key in redis.scan_iter(f"{prefix}*")
        }
    finally:
        await redis.aclose()


@pytest.mark.parametrize("trust", ["REDIS_TLS_VERIFY=none", "REDIS_TLS_CA_FILE"])
async def test_counters_land_in_a_redis_over_tls(trust, tls_redis, tmp_path, caplog):
    url, cert = tls_redis
    prefix = f"tls:{secrets.token_hex(4)}:"
    relaxed = (
        {"redis_tls_verify": "none"}
        if trust == "REDIS_TLS_VERIFY=none"
        else {"redis_tls_ca_file": str(cert)}
    )
    app, client = await serving(tmp_path, redis_url=url, rate_limit_prefix=prefix, **relaxed)
    caplog.set_level(logging.WARNING, logger="app.ratelimit")
    async with client:
        await register(client)
        for _ in range(3):
            assert (await client.post("/api/tokens", auth=("erin", "nope"))).status_code == 401
        assert (await client.get("/readyz")).json() == {"status": "ok"}
    await app.shutdown()
    counters = await counters_in(url, cert, prefix)
    assert counters[f"{prefix}sign-in-account:erin"] == 3
    assert "rate limits are off" not in caplog.text.lower()


async def test_a_self_signed_certificate_is_refused_by_default_and_said_at_startup(
    tls_redis, tmp_path, caplog
):
    url, cert = tls_redis
    caplog.set_level(logging.WARNING, logger="app.ratelimit")
    prefix = f"tls:{secrets.token_hex(4)}:"
    app, client = await serving(tmp_path, redis_url=url, rate_limit_prefix=prefix)
    startup_lines = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(startup_lines) == 1  # at once, before any request
    assert "RATE LIMITS ARE OFF" in startup_lines[0].getMessage()
    assert "REDIS_TLS_VERIFY=none" in startup_lines[0].getMessage()
    assert url.split("/0")[0] in startup_lines[0].getMessage()
    async with client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200  # the database is fine; the limits fail open...
        assert ready.json()["rate_limits"].startswith("off: its TLS certificate was refused")
        await register(client)
        assert (await client.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 201
    await app.shutdown()
    assert await counters_in(url, cert, prefix) == {}  # nothing was counted
