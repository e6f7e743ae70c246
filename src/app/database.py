"""The database lifecycle: one async engine per serving event loop, made at startup and disposed
at shutdown, and the two ways views reach it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .bridge import AsyncFlask
from .config import Settings, hide_password

log = logging.getLogger(__name__)


def make_engine(settings: Settings) -> AsyncEngine:
    """The async engine that ``settings`` describe (no connection is opened yet)."""
    url = make_url(settings.database_url)
    options: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        _create_parent_folder(url.database)
        engine = create_async_engine(url, **options)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        return engine
    connect_args: dict[str, Any] = {"server_settings": {"application_name": "microblog"}}
    if settings.db_statement_timeout_ms:
        connect_args["server_settings"]["statement_timeout"] = str(settings.db_statement_timeout_ms)
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_pre_ping=False,  # a failed checkout is retried by the pool's invalidation instead
        connect_args=connect_args,
    )


def _create_parent_folder(database: str | None) -> None:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Database:
    """The Flask extension that owns the app's engine; created once, wired with ``init_app``."""

    def init_app(self, app: AsyncFlask, settings: Settings) -> None:
        app.extensions["database"] = _Engines(settings)
        app.before_serving(self._start)
        app.after_serving(self._stop)

    @property
    def engine(self) -> AsyncEngine:
        return _engines().started().engine

    def connect(self) -> Any:
        """A pooled connection in autocommit mode: each statement is its own transaction.

        Reads and single-statement writes need nothing more, and skip the BEGIN and ROLLBACK
        round trips that a transaction would add to every request.
        """
        return _engines().started().autocommit.connect()

    def begin(self) -> Any:
        """A pooled connection inside one transaction, committed if the block succeeds."""
        return _engines().started().engine.begin()

    async def _start(self) -> None:
        engines = _engines()
        engines.engine = make_engine(engines.settings)
        engines.autocommit = engines.engine.execution_options(isolation_level="AUTOCOMMIT")
        settings = engines.settings
        pool = "n/a (sqlite)" if settings.is_sqlite else str(settings.db_pool_size)
        log.info("database %s, pool size %s", hide_password(settings.database_url), pool)

    async def _stop(self) -> None:
        engines = _engines()
        if engines.engine is not None:
            await engines.engine.dispose()
            engines.engine = engines.autocommit = None


class _Engines:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine: AsyncEngine | None = None
        self.autocommit: AsyncEngine | None = None

    def started(self) -> _StartedEngines:
        if self.engine is None:
            raise RuntimeError(
                "the database is not started: serve the app through its ASGI "
                "lifespan, or call it from sync code via app.run_coroutine()"
            )
        return self  # type: ignore[return-value]


class _StartedEngines(_Engines):
    engine: AsyncEngine
    autocommit: AsyncEngine


def _engines() -> _Engines:
    return current_app.extensions["database"]  # type: ignore[no-any-return]


db = Database()
