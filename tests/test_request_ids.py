"""Every request has an id: the router's X-Request-ID when well formed, else a fresh one,
echoed on the response and carried by every problem document."""

import httpx
import pytest
from support.databases import make_settings, reset_schema

from app import create_asgi_app

HEROKU_STYLE = "b4c8d1e2-4f0a-4b5c-9d7e-0a1b2c3d4e5f"


@pytest.fixture
async def client(database_url):
    served = create_asgi_app(make_settings(database_url))
    await served.flask_app.startup()
    await reset_schema(served.flask_app)
    transport = httpx.ASGITransport(app=served)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client
    await served.flask_app.shutdown()


async def test_a_well_formed_router_id_is_kept_and_echoed(client):
    response = await client.get("/api/posts", headers={"X-Request-ID": HEROKU_STYLE})
    assert response.headers["X-Request-ID"] == HEROKU_STYLE


@pytest.mark.parametrize(
    "sent", ["short", "x" * 129, "has spaces in it", 'quote"s-and-more', "line\\nbreak-here"]
)
async def test_anything_else_is_replaced_by_a_fresh_id(client, sent):
    response = await client.get("/api/posts", headers={"X-Request-ID": sent})
    echoed = response.headers["X-Request-ID"]
    assert echoed != sent and len(echoed) == 32 and int(echoed, 16) >= 0


async def test_every_request_gets_its_own_id(client):
    ids = {(await client.get("/healthz")).headers["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5


async def test_a_problem_document_names_its_request(client):
    missing = await client.get("/api/posts/999999", headers={"X-Request-ID": HEROKU_STYLE})
    assert missing.status_code == 404
    assert missing.json()["request_id"] == HEROKU_STYLE
    unauthorised = await client.post("/api/posts", json={"body": "x"})
    assert unauthorised.json()["request_id"] == unauthorised.headers["X-Request-ID"]
