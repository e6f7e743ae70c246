"""A PostgreSQL of the test's own (initdb, pg_ctl, a free port) restarted and stopped under the
app, and a backend killed mid-write. The shared server is never touched."""

import asyncio

import asyncpg
import httpx
import pytest
from support.accounts import register_api_user
from support.databases import make_settings, reset_schema
from support.processes import throwaway_cluster

from app import create_asgi_app

pytestmark = pytest.mark.processes


@pytest.fixture
def own_cluster():
    with throwaway_cluster() as cluster:
        yield cluster


@pytest.fixture
async def client_on(own_cluster):
    asgi_app = create_asgi_app(make_settings(own_cluster.url, db_query_timeout=2))
    flask_app = asgi_app.flask_app
    await flask_app.startup()
    await reset_schema(flask_app)
    transport = httpx.ASGITransport(app=asgi_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client
    await flask_app.shutdown()


async def statuses(client, path, times):
    return [(await client.get(path)).status_code for _ in range(times)]


async def test_after_a_restart_completes_no_request_sees_an_error(own_cluster, client_on):
    assert await statuses(client_on, "/api/posts", 5) == [200] * 5  # pooled connections now
    await asyncio.to_thread(own_cluster.pg_ctl, "restart", "-m", "fast")
    # Every pooled connection died with the old server; none may reach a request.
    assert await statuses(client_on, "/api/posts", 10) == [200] * 10
    assert await statuses(client_on, "/", 3) == [200] * 3


async def test_while_the_server_is_down_requests_get_503_and_then_recover(own_cluster, client_on):
    assert await statuses(client_on, "/api/posts", 3) == [200] * 3
    await asyncio.to_thread(own_cluster.pg_ctl, "stop", "-m", "fast")
    down = await client_on.get("/api/posts")
    assert down.status_code == 503 and "Retry-After" in down.headers
    assert (await client_on.get("/")).status_code == 503
    assert (await client_on.get("/readyz")).status_code == 503
    assert (await client_on.get("/healthz")).status_code == 200
    await asyncio.to_thread(own_cluster.pg_ctl, "start")
    assert await statuses(client_on, "/api/posts", 5) == [200] * 5


async def test_a_backend_killed_mid_write_leaves_nothing_and_says_retry(own_cluster, client_on):
    user = await register_api_user(client_on, "writer")
    admin = await asyncpg.connect(own_cluster.url.replace("+asyncpg", ""))
    await admin.execute(
        "CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$"
    )
    await admin.execute(
        "CREATE TRIGGER slow_insert BEFORE INSERT ON posts "
        "FOR EACH ROW EXECUTE FUNCTION slow_insert()"
    )
    write = asyncio.ensure_future(
        client_on.post("/api/posts", json={"body": "half-written?"}, headers=user.auth)
    )
    await asyncio.sleep(0.5)  # the insert is now waiting inside the trigger
    killed = await admin.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = 'microblog' AND query LIKE '%INSERT INTO posts%'"
    )
    assert killed == 1
    response = await write
    assert response.status_code == 503 and "Retry-After" in response.headers
    assert await admin.fetchval("SELECT count(*) FROM posts") == 0  # all or nothing: nothing
    await admin.execute("DROP TRIGGER slow_insert ON posts")
    await admin.close()
    again = await client_on.post("/api/posts", json={"body": "retried"}, headers=user.auth)
    assert again.status_code == 201
