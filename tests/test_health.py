"""GET /healthz and GET /readyz."""

import httpx
from flask_greenlet import ASGIApp
from support.databases import make_settings

from app import create_app

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nothing"


async def test_healthz_and_readyz_answer_200_with_a_database(client):
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ok"}


async def unreachable_client():
    app = create_app(make_settings(UNREACHABLE, readiness_timeout=1.0))
    await app.startup()
    transport = httpx.ASGITransport(app=ASGIApp(app))
    return app, httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_without_a_database_healthz_is_200_and_readyz_is_503():
    app, client = await unreachable_client()
    async with client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
    await app.shutdown()
    assert ready.status_code == 503 and ready.json() == {"status": "unavailable"}
