"""Every API error is problem+json, whatever went wrong; HTML pages get HTML."""

import httpx
import pytest
from flask_greenlet import ASGIApp
from support.databases import make_settings

from app import create_app
from app.api import bp as api_bp
from app.database import db


@pytest.fixture
def failing_route(app):
    @app.get("/api/_raise")
    async def explode():
        raise RuntimeError("secret internals")

    @app.get("/_raise")
    async def explode_page():
        raise RuntimeError("secret internals")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/nothing-here", 404),
        ("PUT", "/api/posts", 405),
        ("PATCH", "/api/users/alice", 405),
        ("GET", "/api", 404),
    ],
)
async def test_routing_errors_under_api_are_problem_json(client, method, path, status):
    response = await client.request(method, path)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["title"]
    assert "<html" not in response.text.lower()


async def test_405_says_which_methods_are_allowed(client):
    response = await client.put("/api/posts")
    assert "GET" in response.headers["Allow"] and "POST" in response.headers["Allow"]


async def test_an_oversized_body_is_a_413_problem(client, alice):
    response = await client.post(
        "/api/posts",
        content=b"x" * (128 * 1024),
        headers={**alice.auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"


async def test_an_unexpected_error_is_a_500_problem_without_internals(client, failing_route):
    response = await client.get("/api/_raise")
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "secret internals" not in response.text and "Traceback" not in response.text


async def test_an_unexpected_error_on_a_page_is_an_html_500(client, failing_route):
    response = await client.get("/_raise")
    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/html")
    assert "secret internals" not in response.text


async def test_unknown_pages_are_html_404s(client):
    response = await client.get("/no/such/page")
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")


def test_the_api_never_uses_csrf_cookies_or_sessions(app):
    from app import csrf

    assert api_bp.name in {bp.name for bp in csrf._exempt_blueprints}


async def test_a_request_that_waits_too_long_for_a_connection_gets_a_503(database_url):
    app = create_app(
        make_settings(database_url, db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.2)
    )
    await app.startup()
    transport = httpx.ASGITransport(app=ASGIApp(app))
    client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    with app.app_context():
        async with db.connect(), client:  # the test holds the only connection
            api = await client.get("/api/posts")
            page = await client.get("/")
    await app.shutdown()
    assert api.status_code == page.status_code == 503
    assert api.headers["Content-Type"] == "application/problem+json"
    assert api.headers["Retry-After"] == "1"
    assert page.headers["Content-Type"].startswith("text/html")
