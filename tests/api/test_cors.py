"""CORS_ORIGINS: exact origins may call the API from a browser, without credentials; the pages
are never opened to another origin. In process here; test_cors_browser.py does it in Chromium."""

import httpx
import pytest
from flask_greenlet import ASGIApp
from pydantic import ValidationError
from support.databases import make_settings, reset_schema

from app import create_app
from app.config import Settings

ALLOWED = "https://app.example.com"


@pytest.fixture
async def cors_client(database_url):
    app = create_app(make_settings(database_url, cors_origins=f"{ALLOWED}, http://127.0.0.1:9"))
    await app.startup()
    await reset_schema(app)
    transport = httpx.ASGITransport(app=ASGIApp(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await app.shutdown()


def preflight(origin, method="POST", headers="authorization, content-type, idempotency-key"):
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_an_allowed_origin_gets_its_preflight_answered(cors_client):
    response = await cors_client.options("/api/posts", headers=preflight(ALLOWED))
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert {"authorization", "content-type", "idempotency-key"} <= set(allowed.split(", "))
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Origin" in response.headers["Vary"]


async def test_an_allowed_origin_reads_answers_and_their_headers(cors_client):
    response = await cors_client.get("/api/posts", headers={"Origin": ALLOWED})
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    exposed = response.headers["Access-Control-Expose-Headers"].lower()
    assert {"etag", "location", "ratelimit", "retry-after", "x-request-id"} <= set(
        exposed.split(", ")
    )
    problem = await cors_client.post("/api/posts", json={}, headers={"Origin": ALLOWED})
    assert problem.status_code == 401  # errors are readable too
    assert problem.headers["Access-Control-Allow-Origin"] == ALLOWED


async def test_other_origins_and_pages_get_nothing(cors_client):
    for origin in ["https://evil.example", "https://app.example.com.evil.example", "null"]:
        response = await cors_client.options("/api/posts", headers=preflight(origin))
        assert "Access-Control-Allow-Origin" not in response.headers, origin
    for path in ["/", "/auth/login"]:
        page = await cors_client.get(path, headers={"Origin": ALLOWED})
        assert "Access-Control-Allow-Origin" not in page.headers, path


async def test_without_cors_origins_no_origin_is_allowed(client):
    response = await client.options("/api/posts", headers=preflight(ALLOWED))
    assert "Access-Control-Allow-Origin" not in response.headers
    assert (
        "Access-Control-Allow-Origin"
        not in (await client.get("/api/posts", headers={"Origin": ALLOWED})).headers
    )


@pytest.mark.parametrize(
    "origins", ["*", "https://app.example.com/", "app.example.com", "https://*.example.com"]
)
def test_cors_origins_takes_only_exact_origins(tmp_path, origins):
    with pytest.raises(ValidationError, match="exact origins"):
        Settings(app_env="test", instance_path=tmp_path, cors_origins=origins)
