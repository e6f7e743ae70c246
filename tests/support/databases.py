"""Test databases on a PostgreSQL that other runs may share: each run works in databases of its
own, named from TEST_DATABASE_URL plus a suffix for the run, and drops them at the end."""

from __future__ import annotations

import os
import secrets
from typing import Any

import asyncpg
from flask_greenlet import AsyncFlask
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from app.config import Settings
from app.database import db
from app.database_url import normalize_database_url
from app.models import Base

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/microblog_test"
TEST_SECRET = "test-secret-key-that-is-long-enough-for-production-checks"
# One suffix per run (a fresh process each time), so two runs on one server never meet.
RUN_SUFFIX = f"_{os.getpid()}_{secrets.token_hex(3)}"


def configured_url() -> URL:
    return make_url(
        normalize_database_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_POSTGRES_URL))
    )


def run_database_name(purpose: str = "") -> str:
    """The name of this run's database for ``purpose`` (the main one when empty)."""
    base = configured_url().database or "microblog_test"
    return f"{base}{'_' + purpose if purpose else ''}{RUN_SUFFIX}"


def url_of(server_url: str | URL, name: str) -> str:
    return (
        make_url(str(server_url) if isinstance(server_url, URL) else server_url)
        .set(database=name)
        .render_as_string(hide_password=False)
    )


async def connect_admin(server_url: str | URL) -> asyncpg.Connection:
    url = make_url(str(server_url)) if isinstance(server_url, URL) else make_url(server_url)
    return await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database="postgres",
        timeout=5,
    )


async def fresh_database(server_url: str, purpose: str, *, create: bool = True) -> str:
    """This run's database for ``purpose``, dropped (and made anew); its URL."""
    name = run_database_name(purpose)
    admin = await connect_admin(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return url_of(server_url, name)


async def drop_run_databases(server_url: str) -> list[str]:
    """Drop every database this run made (and only those); their names."""
    admin = await connect_admin(server_url)
    try:
        names = [
            row["datname"]
            for row in await admin.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1",
                f"%{RUN_SUFFIX}",
            )
        ]
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    return names


async def terminate_backends(database_url: str, where: str, *args: Any) -> int:
    """End the backends of this run's database ``database_url`` that match ``where``, by pid;
    how many. Nothing outside that database is touched."""
    url = make_url(database_url)
    admin = await connect_admin(url)
    try:
        pids = [
            row["pid"]
            for row in await admin.fetch(
                f"SELECT pid FROM pg_stat_activity WHERE datname = $1 AND ({where})",  # noqa: S608 (the tests' own clauses)
                url.database,
                *args,
            )
        ]
        return sum([await admin.fetchval("SELECT pg_terminate_backend($1)", pid) for pid in pids])
    finally:
        await admin.close()


async def make_reads_of_posts_slow(database_url: str, seconds: float) -> None:
    """From now on, every new connection to this database reads ``posts`` through a view that
    sleeps ``seconds`` first (the tables must exist)."""
    url = make_url(database_url)
    conn = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(False))
    try:
        await conn.execute("CREATE SCHEMA slow")
        await conn.execute(
            "CREATE VIEW slow.posts AS SELECT * FROM public.posts "  # noqa: S608 (a number)
            f"WHERE (SELECT true FROM pg_sleep({float(seconds)}))"
        )
        await conn.execute(f'ALTER DATABASE "{url.database}" SET search_path = slow, public')
    finally:
        await conn.close()


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
