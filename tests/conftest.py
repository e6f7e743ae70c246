"""Fixtures: every test gets a fresh app on a fresh schema, on SQLite and on PostgreSQL (and,
for the API suite, through PgBouncer). Helpers the tests import live in ``support/``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from flask_greenlet import ASGIApp, AsyncFlask
from support.accounts import ApiUser, register_api_user
from support.databases import (
    configured_url,
    drop_run_databases,
    fresh_database,
    make_settings,
    reset_schema,
)
from support.processes import missing, pgbouncer_in_front_of

from app import create_app

TESTS = Path(__file__).resolve().parent
# Through PgBouncer, the API's resource suites (and the hot statements' own) run a third time;
# elsewhere it adds nothing.
PGBOUNCER_SUITES = {
    TESTS / "api" / name
    for name in (
        "test_posts.py",
        "test_tokens.py",
        "test_users.py",
        "test_idempotency.py",
        "test_caching.py",
        "test_cors.py",
    )
} | {TESTS / "database" / name for name in ("test_hot_statements.py", "test_parked_connections.py")}


@pytest.fixture(scope="session")
def postgres_available() -> Iterator[str]:
    """This run's own PostgreSQL database on the TEST_DATABASE_URL server, dropped (with every
    other database the run made) at the end; CI fails without the server, elsewhere its tests
    are skipped."""
    server = configured_url().render_as_string(hide_password=False)
    try:
        url = asyncio.run(fresh_database(server, ""))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        missing(f"PostgreSQL at {configured_url().render_as_string()} is unreachable: {exc!r}")
    yield url
    asyncio.run(drop_run_databases(server))


ON_POSTGRES = pytest.mark.postgres


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=ON_POSTGRES),
        pytest.param("pgbouncer", marks=ON_POSTGRES),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
    url: str = request.getfixturevalue(
        "pgbouncer_url" if request.param == "pgbouncer" else "postgres_available"
    )
    return url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        path = Path(str(item.fspath))
        if "[pgbouncer" in item.nodeid and path not in PGBOUNCER_SUITES:
            dropped.append(item)
            continue
        if "postgres_available" in getattr(item, "fixturenames", ()):
            item.add_marker(ON_POSTGRES)
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def pgbouncer_url(postgres_available: str) -> Iterator[str]:
    with pgbouncer_in_front_of(postgres_available) as url:
        yield url


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


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> ApiUser:
    return await register_api_user(client, "alice")


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> ApiUser:
    return await register_api_user(client, "bob")
