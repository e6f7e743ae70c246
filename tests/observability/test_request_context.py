"""Every log line written while a request runs names it, from whichever layer or thread wrote
it; the access line knows the route template, the status, the time and the user; API answers
say where their time went."""

import logging

import httpx
import pytest
from support.accounts import register_api_user
from support.databases import make_settings, reset_schema

from app import create_asgi_app, passwords

ROUTER_ID = "router-id-0123456789abcdef"


async def served(database_url, **overrides):
    asgi_app = create_asgi_app(make_settings(database_url, **overrides))
    await asgi_app.flask_app.startup()
    await reset_schema(asgi_app.flask_app)
    return asgi_app


@pytest.fixture
async def asgi_app(database_url):
    asgi_app = await served(database_url)
    yield asgi_app
    await asgi_app.flask_app.shutdown()


@pytest.fixture
async def client(asgi_app):
    transport = httpx.ASGITransport(app=asgi_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


def lines_of(caplog, logger):
    return [r for r in caplog.records if r.name.startswith(logger)]


async def test_sql_logged_by_the_database_layer_names_the_request(client, caplog):
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    body = {"username": "dave", "email": "d@example.com", "password": "a long new password"}
    await client.post("/api/users", json=body, headers={"X-Request-ID": ROUTER_ID})
    statements = lines_of(caplog, "sqlalchemy.engine")
    assert statements, "SQLAlchemy logged no statement"
    assert {r.request_id for r in statements} == {ROUTER_ID}


async def test_a_rate_limit_refusal_is_logged_with_the_request_id(database_url, caplog):
    asgi_app = await served(database_url, rate_limit_sign_in_address="1/60")
    caplog.set_level(logging.INFO)
    try:
        transport = httpx.ASGITransport(app=asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.post("/api/tokens", auth=("nobody", "wrong password"))
            refused = await client.post(
                "/api/tokens", auth=("nobody", "x"), headers={"X-Request-ID": ROUTER_ID}
            )
    finally:
        await asgi_app.flask_app.shutdown()
    assert refused.status_code == 429
    [line] = [r for r in caplog.records if "rate limit" in r.getMessage()]
    assert line.request_id == ROUTER_ID


async def test_the_password_threads_log_with_the_request_id(client, caplog, monkeypatch):
    hash_for_real = passwords._hash

    def hash_and_say_so(password):
        logging.getLogger("app.passwords").info("hashing on %s", "a password thread")
        return hash_for_real(password)

    monkeypatch.setattr(passwords, "_hash", hash_and_say_so)
    caplog.set_level(logging.INFO)
    body = {"username": "carol", "email": "c@example.com", "password": "a long new password"}
    created = await client.post("/api/users", json=body, headers={"X-Request-ID": ROUTER_ID})
    assert created.status_code == 201
    [line] = [r for r in caplog.records if "password thread" in r.getMessage()]
    assert line.threadName.startswith("argon2") and line.request_id == ROUTER_ID


async def test_a_sync_view_on_a_worker_thread_logs_with_the_request_id(database_url, caplog):
    asgi_app = create_asgi_app(make_settings(database_url))
    flask_app = asgi_app.flask_app

    @flask_app.get("/sync-view")
    def sync_view():
        logging.getLogger("app.sync").info("from a sync view")
        return "done"

    await flask_app.startup()
    caplog.set_level(logging.INFO)
    try:
        transport = httpx.ASGITransport(app=asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answered = await client.get("/sync-view", headers={"X-Request-ID": ROUTER_ID})
    finally:
        await flask_app.shutdown()
    assert answered.text == "done"
    [line] = [r for r in caplog.records if r.getMessage() == "from a sync view"]
    assert line.threadName != "MainThread" and line.request_id == ROUTER_ID


async def test_one_access_line_a_request_with_the_route_template_and_the_user(client, caplog):
    alice = await register_api_user(client, "alice")
    caplog.set_level(logging.INFO, logger="app.access")
    caplog.clear()
    await client.get("/api/posts/424242?secret=in-the-query", headers=alice.auth)
    [line] = lines_of(caplog, "app.access")
    assert (line.method, line.route, line.status) == ("GET", "/api/posts/<int:post_id>", 404)
    assert line.duration_ms > 0 and line.db_ms >= 0 and line.request_id
    assert "in-the-query" not in line.getMessage() and "424242" not in line.getMessage()


async def test_the_access_line_names_the_signed_in_token_user(client, caplog):
    alice = await register_api_user(client, "alice")
    written = await client.post("/api/posts", json={"body": "hello"}, headers=alice.auth)
    caplog.set_level(logging.INFO, logger="app.access")
    caplog.clear()
    await client.delete(written.headers["Location"], headers=alice.auth)
    [line] = lines_of(caplog, "app.access")
    assert line.user_id is not None and line.status == 204


async def test_api_answers_say_where_their_time_went_and_pages_do_not(client):
    api = await client.get("/api/posts")
    timing = dict(part.strip().split(";dur=") for part in api.headers["Server-Timing"].split(","))
    assert set(timing) == {"db", "app"}
    assert 0 <= float(timing["db"]) <= float(timing["app"])
    page = await client.get("/")
    assert "Server-Timing" not in page.headers


async def test_the_html_error_page_shows_the_request_id(client):
    missing = await client.get("/no/such/page", headers={"X-Request-ID": ROUTER_ID})
    assert missing.status_code == 404 and ROUTER_ID in missing.text
