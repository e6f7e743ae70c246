"""The hot statements, compiled once and run straight on asyncpg where that is safe.

A statement through SQLAlchemy's ``AsyncConnection.execute`` costs about 95 µs of CPU beyond
what asyncpg itself needs (a greenlet per call, the cursor adapter, result processing): on a
one-row read that is a sixth of the whole request. For the few statements every request runs,
the SQL SQLAlchemy compiles (once per dialect) goes to the driver's own prepared-statement
cache instead. Everything else about the connection stays SQLAlchemy's: the pool, the turn,
the deadline, invalidation. On SQLite, and behind PgBouncer (where a statement must run in the
block's transaction), the same statements go through SQLAlchemy as usual.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

from ..database import DIRECT_DRIVER
from ..observability.tracing import statement_name, tracing


class Prepared:
    """One statement; ``rows`` and ``first`` run it with named parameters.

    On the direct path parameters go to asyncpg as given, without SQLAlchemy's bind processing
    or Python-side column defaults: a statement here takes strings, numbers and timezone-aware
    datetimes, and names every value it inserts.
    """

    __slots__ = ("_fixed", "_names", "_sql", "statement")

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._sql: str | None = None
        self._names: tuple[str, ...] = ()
        self._fixed: dict[str, Any] = {}  # values written into the statement, as literal()

    async def rows(self, conn: AsyncConnection, params: Mapping[str, Any]) -> Sequence[Any]:
        driver = _direct_driver(conn)
        if driver is None:
            return (await conn.execute(self.statement, params)).all()
        sql = self._sql or self._compile(conn)
        fixed = self._fixed
        arguments = [params[name] if name not in fixed else fixed[name] for name in self._names]
        try:
            if tracing.enabled:
                with tracing.span(statement_name(sql), **{"db.query.text": sql}):
                    return await driver.fetch(sql, *arguments)  # type: ignore[no-any-return]
            return await driver.fetch(sql, *arguments)  # type: ignore[no-any-return]
        except asyncpg.InterfaceError as failure:  # the connection is closed or busy
            raise InterfaceError(sql, arguments, failure) from failure
        except asyncpg.PostgresError as failure:  # errors.py sorts these by SQLSTATE
            raise DBAPIError(sql, arguments, failure) from failure

    async def first(self, conn: AsyncConnection, params: Mapping[str, Any]) -> Any:
        rows = await self.rows(conn, params)
        return rows[0] if rows else None

    def _compile(self, conn: AsyncConnection) -> str:
        statement = cast(ClauseElement, self.statement)
        compiled = cast(SQLCompiler, statement.compile(dialect=conn.dialect))
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("a prepared statement needs its SQL fixed at compile time")
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise ValueError("a prepared statement names every value it writes")
        names = tuple(compiled.positiontup or ())
        binds = compiled.binds  # by the names in the SQL, anonymous ones rendered
        fixed = [name for name in names if not binds[name].required]
        self._fixed = {name: binds[name].effective_value for name in fixed}
        self._names, self._sql = names, compiled.string
        return self._sql


def _direct_driver(conn: AsyncConnection) -> Any:
    """The connection's asyncpg connection, if a statement may go to it straight: not inside
    ``db.begin()``, whose transaction SQLAlchemy opens only at its first own statement."""
    sync = conn.sync_connection
    driver = sync.info.get(DIRECT_DRIVER)  # type: ignore[union-attr]
    if driver is None or "isolation_level" in sync.get_execution_options():  # type: ignore[union-attr]
        return None
    return driver
