"""What an app sends its database, seen from SQLAlchemy's side and from asyncpg's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from flask_greenlet import AsyncFlask
from sqlalchemy import event


@dataclass
class Traffic:
    checkouts: int = 0
    through_sqlalchemy: list[str] = field(default_factory=list)
    straight_to_asyncpg: list[str] = field(default_factory=list)

    @property
    def statements(self) -> list[str]:
        return self.through_sqlalchemy + self.straight_to_asyncpg

    @property
    def work(self) -> list[str]:
        """The statements, without the transaction control around them."""
        return [sql for sql in self.statements if not sql.startswith(("BEGIN", "COMMIT"))]


@asynccontextmanager
async def database_traffic(app: AsyncFlask) -> AsyncIterator[Traffic]:
    """Connection checkouts, and the SQL sent through SQLAlchemy's cursor or straight to the
    asyncpg connection (see app/store/prepared.py), while the block runs."""
    engine = app.extensions["database"].engine.sync_engine
    seen = Traffic()
    watched: list[Any] = []

    def logged_by_asyncpg(record: Any) -> None:
        seen.straight_to_asyncpg.append(record.query)

    def checked_out(dbapi_connection: Any, *_: Any) -> None:
        seen.checkouts += 1
        driver = getattr(dbapi_connection, "driver_connection", None)
        if hasattr(driver, "add_query_logger"):
            driver.add_query_logger(logged_by_asyncpg)
            watched.append(driver)

    def executed(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.through_sqlalchemy.append(statement)

    event.listen(engine, "checkout", checked_out)
    event.listen(engine, "before_cursor_execute", executed)
    try:
        yield seen
        for _ in range(3):  # asyncpg calls its query loggers soon, not at once
            await asyncio.sleep(0)
    finally:
        event.remove(engine, "checkout", checked_out)
        event.remove(engine, "before_cursor_execute", executed)
        for driver in watched:
            driver.remove_query_logger(logged_by_asyncpg)
