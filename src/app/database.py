"""The database lifecycle: one async engine per serving event loop, made at startup and disposed
at shutdown, and the two ways views reach it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from flask import current_app, request
from flask_greenlet import AsyncFlask
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from .config import PROBE_EVERY_S, Settings
from .database_url import asyncpg_connect_args, hide_password
from .observability.metrics import metrics
from .observability.records import note_database_turn
from .observability.tracing import statement_name, tracing
from .replica import ReplicaLag

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

Result = TypeVar("Result")

log = logging.getLogger(__name__)

# A pooled connection's info holds its asyncpg connection under this key when statements may
# go straight to the driver (autocommit, no pooler in front): see store/prepared.py.
DIRECT_DRIVER = "asyncpg_direct"

# Pooled connections are in autocommit mode (see Database.connect); begin() switches one to this.
TRANSACTION_ISOLATION = {"postgresql": "READ COMMITTED", "sqlite": "SERIALIZABLE"}


def make_engine(
    settings: Settings, *, pooled: bool = True, replica: bool = False, **options: Any
) -> AsyncEngine:
    """The async engine that ``settings`` describe (no connection is opened yet): the
    primary's, or with ``replica=True`` the read replica's.

    ``pooled=False`` keeps no connection once it is closed: for one-off work such as the
    release phase's migrations, which must leave nothing open behind them.
    """
    url = make_url(settings.database_replica_url if replica else settings.database_url)
    url_options = settings.database_replica_options if replica else settings.database_options
    pool_size, max_overflow = settings.connection_budget
    pool: dict[str, Any] = {"poolclass": NullPool}
    if pooled:
        pool = {"pool_size": pool_size, "max_overflow": max_overflow}
    if url.get_backend_name() == "sqlite":
        _create_parent_folder(url.database)
        engine = create_async_engine(url, **pool, **options)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        if tracing.enabled:
            _trace_statements(engine)
        return engine
    engine = create_async_engine(
        url,
        **pool,
        **({"pool_timeout": settings.db_pool_timeout} if pooled else {}),
        # A frozen or unreachable server fails a request within DB_QUERY_TIMEOUT (then 503),
        # whether it was connecting or already holding a connection mid-query.
        connect_args=asyncpg_connect_args(
            url_options,
            timeout=settings.db_query_timeout,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        ),
        **options,
    )
    if tracing.enabled:
        _trace_statements(engine)
    event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    event.listen(engine.sync_engine, "invalidate", _drop_the_socket)
    return engine


def _trace_statements(engine: AsyncEngine) -> None:
    """A child span for each statement SQLAlchemy runs (store/prepared.py traces its own)."""

    def begin(_conn: Any, _cursor: Any, sql: str, _params: Any, context: Any, _many: Any) -> None:
        context.traced = tracing.start_child(statement_name(sql), **{"db.query.text": sql})

    def end(_conn: Any, _cursor: Any, _sql: str, _params: Any, context: Any, _many: Any) -> None:
        context.traced.end()

    def fail(exception_context: Any) -> None:
        span = getattr(exception_context.execution_context, "traced", None)
        if span is not None:
            span.record_exception(exception_context.original_exception)
            span.end()

    event.listen(engine.sync_engine, "before_cursor_execute", begin)
    event.listen(engine.sync_engine, "after_cursor_execute", end)
    event.listen(engine.sync_engine, "handle_error", fail)


def _drop_the_socket(dbapi_connection: Any, _record: Any, _exception: Any) -> None:
    """An invalidated connection is dropped at once (asyncpg's terminate aborts the socket).
    SQLAlchemy would close it politely, up to 2 s, and asyncpg's polite close first waits for
    the server to confirm a cancelled query: on a frozen server, all of that comes before the
    request may answer its 503. The polite close that follows finds it closed, and returns."""
    dbapi_connection._connection.terminate()


def _offer_the_driver(dbapi_connection: Any, record: Any) -> None:
    record.info[DIRECT_DRIVER] = dbapi_connection.driver_connection


def _still_open(conn: AsyncConnection) -> bool:
    """Whether a checked-out connection's driver connection is open (no round trip)."""
    driver = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
    is_closed = getattr(driver, "is_closed", None)  # asyncpg's; aiosqlite's has no such state
    return is_closed is None or not is_closed()


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection the server has closed (a restart, an idle timeout) is swapped for a
    fresh one at checkout, so no request meets it. asyncpg notices the closed socket by
    itself, so this costs no round trip, unlike a ping before every checkout."""
    if dbapi_connection._connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


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
        slot = app.extensions["database"] = _EngineSlot(settings)
        app.before_serving(self._start)
        app.after_serving(self._stop)
        if settings.database_replica_url:
            replica = slot.read_replica = _Replica(settings)
            app.before_serving(replica.start)
            app.after_serving(replica.stop)
            app.after_request(replica.mark_writers)

    def queue_is_full(self, app: AsyncFlask) -> bool:
        """Whether a request arriving now would wait longer than DB_QUEUE_MAX_WAIT for a
        connection: asked at the door, outside any request, so it takes the app."""
        slot: _EngineSlot = app.extensions["database"]
        return slot.expected_wait() > slot.settings.db_queue_max_wait

    def connections_in_use(self, app: AsyncFlask) -> tuple[int, int]:
        """(how many turns this worker has, how many are taken): its share of the pool."""
        slot: _EngineSlot = app.extensions["database"]
        return slot.capacity, slot.capacity - slot.turns._value

    @property
    def engine(self) -> AsyncEngine:
        return _started(_slot())

    def connect(self) -> _TurnConnection:
        """A pooled connection in autocommit mode: each statement is its own transaction.

        Reads and single-statement writes need nothing more, and skip the BEGIN and ROLLBACK
        round trips that a transaction would add to every request.
        """
        slot = _slot()
        return _TurnConnection(slot, _started(slot))

    async def read(
        self,
        query: Callable[..., Awaitable[Result]],
        *args: Any,
        primary_on_miss: bool = False,
        **kwargs: Any,
    ) -> Result:
        """``await query(conn, *args, **kwargs)`` for a read that may be a moment stale: on the
        replica when there is one, it is fresh enough and up, and this client has not just
        written; on the primary otherwise, and whenever the replica fails. With
        ``primary_on_miss``, a ``None`` from the replica is asked of the primary again, so a
        row written a moment ago is always found."""
        slot = _slot()
        replica = slot.read_replica
        if replica is not None and replica.serves_this_request():
            try:
                async with _TurnConnection(replica.slot, replica.engine) as conn:
                    found = await query(conn, *args, **kwargs)
            except BUSY_OR_DOWN as failure:
                if not isinstance(failure, DatabaseBusy) and not database_unavailable(failure):
                    raise
                replica.failed(failure)
            else:
                if found is not None or not primary_on_miss:
                    metrics.read_from("replica")
                    return found
        if replica is not None:
            metrics.read_from("primary")
        async with _TurnConnection(slot, _started(slot)) as conn:
            return await query(conn, *args, **kwargs)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection inside one transaction, committed if the block succeeds."""
        async with self.connect() as conn:
            await conn.execution_options(isolation_level=TRANSACTION_ISOLATION[conn.dialect.name])
            async with conn.begin():
                yield conn

    async def _start(self) -> None:
        slot = _slot()
        slot.engine = _serving_engine(slot)
        settings = slot.settings
        pool_size, max_overflow = settings.connection_budget
        log.info(
            "database %s, pool %s + overflow %s a worker; %s worker(s) hold at most %s of "
            "DB_MAX_CONNECTIONS=%s",
            hide_password(settings.database_url),
            pool_size,
            max_overflow,
            settings.web_concurrency,
            (pool_size + max_overflow) * settings.web_concurrency,
            settings.db_max_connections,
        )

    async def _stop(self) -> None:
        slot = _slot()
        await slot.close_parked()
        if slot.engine is not None:
            await slot.engine.dispose()
            slot.engine = None


def _serving_engine(slot: _EngineSlot) -> AsyncEngine:
    # Behind PgBouncer in transaction mode, a statement and its prepare must share one
    # transaction (the pooler may hand the next transaction to another server), so each
    # connection block is one transaction there, committed when the block succeeds.
    if slot.block_is_transaction:
        return make_engine(slot.settings, replica=slot.replica)
    engine = make_engine(slot.settings, replica=slot.replica, isolation_level="AUTOCOMMIT")
    if engine.dialect.driver == "asyncpg":
        event.listen(engine.sync_engine, "connect", _offer_the_driver)
    return engine


class _EngineSlot:
    def __init__(self, settings: Settings, *, replica: bool = False) -> None:
        self.settings, self.replica = settings, replica
        self.engine: AsyncEngine | None = None
        self.read_replica: _Replica | None = None  # the primary's, when there is one
        # Requests take turns for a pooled connection first come, first served. The pool's own
        # queue lets a newcomer grab a connection that a waiting request was about to get,
        # which starves some requests for hundreds of milliseconds under load.
        options = settings.database_replica_options if replica else settings.database_options
        self.block_is_transaction = options.pgbouncer
        self.capacity = sum(settings.connection_budget)
        self.turns = asyncio.Semaphore(self.capacity)
        self.waiting = 0
        self.mean_hold = 0.0  # seconds a request holds its turn, a moving average
        self.down_until = 0.0  # loop time: after a failed connect, others fail fast until then
        # SQLite is a local file: only a server can freeze (DB_QUERY_TIMEOUT is PostgreSQL's).
        self.block_timeout = None if settings.is_sqlite else settings.db_query_timeout
        # Connections kept checked out between turns (see _TurnConnection), at most the pool's
        # size: the overflow a spike opened still goes back to the pool, which closes it.
        self.parked: list[AsyncConnection] = []
        self.park_limit = settings.connection_budget[0]

    async def wait_for_turn(self) -> float:
        """Wait for a turn; return when it began (loop time), to measure how long it is held."""
        loop = asyncio.get_running_loop()
        if self.down_until and loop.time() < self.down_until:
            raise DatabaseDown("the database failed to connect a moment ago")
        if not self.turns.locked():
            await self.turns.acquire()
            metrics.pool_waited(0.0)
            return loop.time()
        asked = loop.time()
        # Under overload, everyone in a first-come queue waits about as long as the queue is,
        # and then times out together. Whoever would wait longer than DB_QUEUE_MAX_WAIT is
        # turned away now, with a quick 503, so the requests let in stay fast.
        expected_wait = self.expected_wait()
        if expected_wait > self.settings.db_queue_max_wait:
            raise DatabaseBusy(expected_wait)
        # Let in on an estimate, a request still never waits longer than DB_QUEUE_MAX_WAIT: its
        # answer would come too late to help anyone, and its turn is better given to the next.
        patience = min(self.settings.db_pool_timeout, self.settings.db_queue_max_wait)
        self.waiting += 1
        try:
            async with asyncio.timeout(patience):
                await self.turns.acquire()
        except TimeoutError:
            raise DatabaseBusy(patience) from None
        finally:
            self.waiting -= 1
        if self.down_until and loop.time() < self.down_until:  # it went down while we waited
            self.turns.release()
            raise DatabaseDown("the database failed to connect a moment ago")
        began = loop.time()
        metrics.pool_waited(began - asked)
        note_database_turn(began - asked, 0.0)
        return began

    def expected_wait(self) -> float:
        """How long a newcomer would wait for a turn, from the queue and the mean hold."""
        if not self.turns.locked():
            return 0.0
        return (self.waiting + 1) * self.mean_hold / self.capacity

    def take_parked(self) -> AsyncConnection | None:
        """A connection the last turns left checked out, if one is still open."""
        parked = self.parked
        while parked:
            conn = parked.pop()
            if _still_open(conn):
                return conn
            # The server closed it while it waited (a restart, an idle timeout), as the pool's
            # checkout check would have found: the pool forgets it, and the turn connects anew.
            conn.sync_connection.invalidate()  # type: ignore[union-attr]
        return None

    async def close_parked(self) -> None:
        parked, self.parked = self.parked, []
        for conn in parked:
            await conn.close()

    def end_turn(self, began: float) -> None:
        held = asyncio.get_running_loop().time() - began
        note_database_turn(0.0, held)
        self.mean_hold += (held - self.mean_hold) * (0.05 if self.mean_hold else 1.0)
        self.turns.release()


class _TurnConnection:
    """``async with``: wait for a turn, then hold a pooled connection until the block ends.

    A block that ends cleanly, outside any transaction and with the engine's own options,
    leaves its connection checked out for the next turn instead of handing it back to the
    pool: the pool's checkout and checkin (a ``Connection``, a greenlet each way, the reset,
    the events, a shielded task) cost more CPU than a one-row read, and the turns already
    bound how many connections a worker holds. Anything else is closed, back to the pool.
    """

    __slots__ = ("_began", "_conn", "_deadline", "_engine", "_slot")

    def __init__(self, slot: _EngineSlot, engine: AsyncEngine) -> None:
        self._slot, self._engine = slot, engine

    async def __aenter__(self) -> AsyncConnection:
        # The wait for a turn has bounds of its own (DB_QUEUE_MAX_WAIT). From the turn on, one
        # deadline for the whole block (the connect, every query): asyncpg's timeouts are per
        # step, and after one runs out the driver waits on the frozen server once more, so
        # they add up to twice DB_QUERY_TIMEOUT and more.
        self._began = await self._slot.wait_for_turn()
        self._deadline = asyncio.timeout(self._slot.block_timeout)
        await self._deadline.__aenter__()
        try:
            self._conn = self._slot.take_parked() or await self._engine.connect().start()
        except BaseException as failure:
            failure = await self._timeout_or(failure)
            if _timed_out(failure):
                # Everyone queued behind a connect that timed out would wait as long and fail
                # alike (a refused connect fails at once, and needs no help).
                self._slot.down_until = asyncio.get_running_loop().time() + DOWN_FOR_S
            self._slot.end_turn(self._began)
            raise failure from None
        return self._conn

    async def _timeout_or(self, failure: BaseException) -> BaseException:
        """``failure``, or a TimeoutError if it is the block's deadline that cut it short."""
        try:
            await self._deadline.__aexit__(type(failure), failure, None)
        except TimeoutError as timed_out:
            return timed_out
        return failure

    async def __aexit__(
        self, exc_type: type[BaseException] | None, failure: BaseException | None, tb: object
    ) -> None:
        try:
            await self._deadline.__aexit__(exc_type, failure, None)
        except TimeoutError as timed_out:  # the deadline cut the block short
            self._give_up_the_connection(timed_out)
            raise
        if failure is not None and database_unavailable(failure):
            self._give_up_the_connection(failure)
            return
        if exc_type is None and self._parkable():
            self._slot.parked.append(self._conn)
            self._slot.end_turn(self._began)
            return
        try:
            if self._slot.block_is_transaction and exc_type is None:
                await self._conn.commit()
            # Shielded, so that a request cancelled while closing (a rollback may wait on the
            # network) still hands its connection back to the pool. The turn is handed over
            # only once the connection is back: handing it over earlier lets a newcomer reach
            # the pool first and wait in its unfair queue, which we measured as a worse p99.
            await asyncio.shield(self._conn.close())
        finally:
            self._slot.end_turn(self._began)

    def _parkable(self) -> bool:
        # Behind PgBouncer each block is a transaction, committed by the close path. A block
        # that set options (begin()'s isolation level) needs the pool's reset on checkin.
        conn, slot = self._conn, self._slot
        return (
            len(slot.parked) < slot.park_limit
            and not slot.block_is_transaction
            and not conn.in_transaction()
            and conn.sync_connection.get_execution_options()  # type: ignore[union-attr]
            is self._engine.sync_engine.get_execution_options()
        )

    def _give_up_the_connection(self, failure: BaseException) -> None:
        # A rollback or a reset on return would wait on the same dead or frozen server, and
        # the 503 with it: the socket is dropped instead (no round trip), the pool forgets it.
        # A query that timed out means the server stopped answering: the requests queued for
        # a turn behind this one would wait as long and fail alike, so they fail at once.
        try:
            if _timed_out(failure):
                self._slot.down_until = asyncio.get_running_loop().time() + DOWN_FOR_S
            self._conn.sync_connection.invalidate(failure)  # type: ignore[union-attr]
        finally:
            self._slot.end_turn(self._began)


DOWN_FOR_S = 1.0
# A client that wrote carries this cookie for REPLICA_READ_YOUR_WRITES_S: its reads go to the
# primary meanwhile. Forging it only sends one's own reads to the primary.
READ_PRIMARY_COOKIE = "read_primary"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _Replica:
    """The read replica of one worker: its engine and pool, and its lag, probed in the
    background (see replica.py)."""

    def __init__(self, settings: Settings) -> None:
        self.slot = _EngineSlot(settings, replica=True)
        self.lag = ReplicaLag(settings.replica_max_lag_s)
        self.window_s = settings.replica_read_your_writes_s
        self._probing: asyncio.Task[None] | None = None
        self._said_not_standby = False

    @property
    def engine(self) -> AsyncEngine:
        return self.slot.engine  # type: ignore[return-value]  # set while serving

    async def start(self) -> None:
        self.slot.engine = _serving_engine(self.slot)
        primary: _EngineSlot = current_app.extensions["database"]
        self._probing = asyncio.get_running_loop().create_task(self._probe_forever(primary))
        log.info(
            "read replica %s: used while it lags at most %s s; a client that wrote reads "
            "from the primary for %s s",
            hide_password(self.slot.settings.database_replica_url),
            self.lag.max_lag_s,
            self.window_s,
        )

    async def stop(self) -> None:
        if self._probing is not None:
            self._probing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probing
        await self.slot.close_parked()
        if self.slot.engine is not None:
            await self.slot.engine.dispose()
            self.slot.engine = None

    def serves_this_request(self) -> bool:
        if READ_PRIMARY_COOKIE in request.cookies:
            return False
        return self.lag.usable(asyncio.get_running_loop().time())

    def failed(self, failure: BaseException) -> None:
        log.warning("read replica failed (%s): reads go to the primary", type(failure).__name__)
        self.lag.went_down(asyncio.get_running_loop().time(), DOWN_FOR_S)

    def mark_writers(self, response: Response) -> Response:
        if request.method in UNSAFE_METHODS and response.status_code < 400:
            response.set_cookie(
                READ_PRIMARY_COOKIE,
                "1",
                max_age=math.ceil(self.window_s),
                secure=current_app.config["SESSION_COOKIE_SECURE"],
                httponly=True,
                samesite="Lax",
            )
        return response

    async def _probe_forever(self, primary: _EngineSlot) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                asked = loop.time()
                async with _TurnConnection(primary, primary.engine) as conn:  # type: ignore[arg-type]
                    written = (await conn.exec_driver_sql(PRIMARY_POSITION)).scalar_one()
                self.lag.primary_was_at(asked, int(written))
                async with _TurnConnection(self.slot, self.engine) as conn:
                    replayed = (await conn.exec_driver_sql(REPLAYED_POSITION)).scalar_one()
                if replayed is None and not self._said_not_standby:
                    self._said_not_standby = True
                    log.error("DATABASE_REPLICA_URL is not a standby: no reads go to it")
                self.lag.replica_replayed(None if replayed is None else int(replayed))
                metrics.replica_lag(self.lag.lag(loop.time()))
            except Exception as failure:  # the probe must outlive any failure (not a cancel)
                log.debug("replica lag probe failed: %s", failure)
            await asyncio.sleep(PROBE_EVERY_S)


PRIMARY_POSITION = "SELECT pg_current_wal_lsn() - '0/0'"
REPLAYED_POSITION = "SELECT pg_last_wal_replay_lsn() - '0/0'"


def _timed_out(failure: BaseException) -> bool:
    """Whether ``failure`` is (or was caused by) a client-side timeout, anywhere in its chain."""
    seen: BaseException | None = failure
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class DatabaseDown(DisconnectionError):
    """A connect failed a moment ago: fail at once rather than wait for the same failure."""


class DatabaseBusy(Exception):
    """No pooled connection came free in time, or none would have: the queue is too long."""


# What a frozen, refused, restarting or overloaded server raises: the handlers in errors.py
# sort them with ``database_unavailable`` into 503s and, for anything else, 500s.
DATABASE_FAILURES: tuple[type[Exception], ...] = (SQLAlchemyError, OSError, TimeoutError)
# What to try again later, or elsewhere: the server failed, or no connection came in time.
BUSY_OR_DOWN: tuple[type[Exception], ...] = (*DATABASE_FAILURES, DatabaseBusy)
_UNAVAILABLE_SQLSTATES = frozenset(
    {
        "57014",  # query_canceled: statement_timeout
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: starting up or shutting down
        "53300",  # too_many_connections
        "08000", "08003", "08006", "08001", "08004",  # connection exceptions
    }
)  # fmt: skip


def database_unavailable(error: BaseException) -> bool:
    """True when ``error`` means the database cannot answer now, rather than a bug or bad data."""
    if isinstance(error, (OSError, TimeoutError, DisconnectionError)):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated or isinstance(error, (OperationalError, InterfaceError)):
            return True
        cause = error.orig
        state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if state in _UNAVAILABLE_SQLSTATES:
            return True
        return any(
            isinstance(inner, (OSError, TimeoutError))
            or getattr(inner, "sqlstate", None) in _UNAVAILABLE_SQLSTATES
            for inner in (getattr(cause, "__cause__", None), getattr(cause, "__context__", None))
        )
    return False


def _slot() -> _EngineSlot:
    return current_app.extensions["database"]  # type: ignore[no-any-return]


def _started(slot: _EngineSlot) -> AsyncEngine:
    if slot.engine is None:
        raise RuntimeError(
            "the database is not started: serve the app through its ASGI "
            "lifespan, or call it from sync code via app.run_coroutine()"
        )
    return slot.engine


db = Database()
