"""Fixtures: every test gets a fresh app on a fresh schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from flask_greenlet import ASGIApp, AsyncFlask
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app import create_app
from app.config import Settings
from app.database import db
from app.database_url import normalize_database_url
from app.models import Base

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/microblog_test"
TEST_SECRET = "test-secret-key-that-is-long-enough-for-production-checks"
PASSWORD = "correct horse battery"


def postgres_url() -> str:
    return normalize_database_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_POSTGRES_URL))


async def _ensure_postgres_database(url: str) -> None:
    """Create the test database if it is missing (connecting through the maintenance db)."""
    parsed = make_url(url)
    admin = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database="postgres",
        timeout=5,
    )
    try:
        exists = await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", parsed.database
        )
        if not exists:
            await admin.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def postgres_available() -> str:
    """The PostgreSQL test URL; CI fails without the server, elsewhere its tests are skipped."""
    url = postgres_url()
    try:
        asyncio.run(_ensure_postgres_database(url))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        message = f"PostgreSQL at {make_url(url).render_as_string()} is unreachable: {exc!r}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(params=["sqlite", "postgresql", "pgbouncer"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
    if request.param == "pgbouncer":
        return request.getfixturevalue("pgbouncer_url")  # type: ignore[no-any-return]
    return request.getfixturevalue("postgres_available")  # type: ignore[no-any-return]


# Through PgBouncer, the API suite runs a third time (test_api_*.py); elsewhere it adds nothing.
PGBOUNCER_SUITES = ("test_api_",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        through_pooler = "[pgbouncer" in item.nodeid
        if through_pooler and not Path(str(item.fspath)).name.startswith(PGBOUNCER_SUITES):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def pgbouncer_url(postgres_available: str) -> Any:
    """A real PgBouncer in transaction pooling mode in front of the test database, as managed
    PostgreSQL offers (Supabase's and Neon's poolers); the URL says ``pgbouncer=true``."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        message = "PgBouncer is not installed (apt-get install pgbouncer)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = make_url(postgres_available)
    # A folder of its own: PgBouncer refuses to run as root and runs as postgres here.
    folder = Path(tempfile.mkdtemp(prefix="microblog-pgbouncer-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    port = free_port()
    (folder / "users.txt").write_text(f'"{server.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.host} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        "pool_mode = transaction\nmax_client_conn = 500\ndefault_pool_size = 20\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
    )
    as_postgres = ["-u", "postgres"] if os.geteuid() == 0 else []
    process = subprocess.Popen([binary, *as_postgres, str(folder / "pgbouncer.ini")])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield server.set(port=port, query={"pgbouncer": "true"}).render_as_string(hide_password=False)
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(folder, ignore_errors=True)


async def fresh_database(server_url: str, name: str, *, create: bool = True) -> str:
    """Drop the database ``name`` on the test server (and make it anew); its URL."""
    url = make_url(server_url)
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database="postgres"
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return url.set(database=name).render_as_string(hide_password=False)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "app_env": "test",
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "db_pool_size": 20,
        "db_max_overflow": 0,
    }
    return Settings(**(values | overrides))


async def reset_schema(app: AsyncFlask) -> None:
    """Drop and recreate every table, so no test sees another's rows."""
    with app.app_context():
        async with db.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
            await conn.run_sync(Base.metadata.create_all)


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[AsyncFlask]:
    flask_app = create_app(make_settings(database_url))
    flask_app.config["WTF_CSRF_ENABLED"] = True
    await flask_app.startup()
    await reset_schema(flask_app)
    yield flask_app
    await flask_app.shutdown()


@pytest.fixture
async def client(app: AsyncFlask) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=ASGIApp(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


class ApiUser:
    """A registered user with a bearer token, for API tests."""

    def __init__(self, username: str, token: str) -> None:
        self.username, self.token = username, token

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def register_api_user(client: httpx.AsyncClient, username: str) -> ApiUser:
    response = await client.post(
        "/api/users",
        json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    response = await client.post("/api/tokens", auth=(username, PASSWORD))
    assert response.status_code == 201, response.text
    return ApiUser(username, response.json()["token"])


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> ApiUser:
    return await register_api_user(client, "alice")


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> ApiUser:
    return await register_api_user(client, "bob")


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # type: ignore[no-any-return]


@asynccontextmanager
async def uvicorn_serving(
    database_url: str,
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    fresh_schema: bool = True,
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real uvicorn serving ``asgi:app`` in production mode on a fresh schema (unless
    another instance shares it), on a free port; yields its base URL and process, and ends it
    however the block ends."""
    if fresh_schema:
        app = create_app(make_settings(database_url))
        await app.startup()
        await reset_schema(app)
        await app.shutdown()
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET,
        "APP_ENV": "production",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        **(env or {}),
    }
    command = [sys.executable, "-m", "uvicorn", "asgi:app", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning", *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: --workers children end with it
    )
    scheme = "https" if "--ssl-certfile" in args else "http"
    base_url = f"{scheme}://127.0.0.1:{port}"
    try:
        await wait_until_up(base_url, process)
        yield base_url, process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


async def wait_until_up(
    base_url: str, process: subprocess.Popen[bytes], timeout: float = 15.0
) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(verify=False) as client:  # noqa: S501 (tests' own certificates)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"uvicorn exited: {output}")
            try:
                if (await client.get(f"{base_url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    pytest.fail("uvicorn did not come up")
