"""One PostgreSQL connection per worker that LISTENs for new, edited and deleted posts, and
sends this worker's own announcements (``announcer.py``).

Every worker of every instance hears each announcement on its one listening connection and fans
it out to its own subscribers. When the connection drops, the listener reconnects and first
publishes what it missed, read from the table, so no subscriber sees a gap.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import asyncpg

from ..observability.metrics import metrics
from .announcer import parse_announcements

log = logging.getLogger(__name__)

# The channel on which every worker's live timeline hears of new, edited and deleted posts.
LIVE_CHANNEL = "microblog_posts"
# The payload goes in the SQL: a query without parameters is one message, not a prepare, bind
# and execute. It is only ever our own "kind:digits" entries, which never hold a quote.
SAFE_PAYLOAD = re.compile(r"[a-z0-9: ]+")

Connect = Callable[[], Awaitable[asyncpg.Connection]]
# ("post", "edit" or "delete", post id) -> work to do on the loop, if any
OnNotice = Callable[[str, int], Coroutine[Any, Any, None] | None]
CatchUp = Callable[[], Awaitable[None]]


class Listener:
    def __init__(self, connect: Connect, on_notice: OnNotice, catch_up: CatchUp) -> None:
        self._connect, self._on_notice, self._catch_up = connect, on_notice, catch_up
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._connection: asyncpg.Connection | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, *self._pending, return_exceptions=True)
            self._task = None

    async def _listen_forever(self) -> None:
        delay = 0.5
        first = True
        while True:
            try:
                connection = await self._connect()
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("live timeline: cannot listen (%r); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
                continue
            delay = 0.5
            try:
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
                await connection.add_listener(LIVE_CHANNEL, self._notified)
                if not first:
                    metrics.listener_reconnected()
                    await self._catch_up()  # what was written while nobody here listened
                first = False
                self._connection = connection
                self.connected.set()
                await lost.wait()
                log.warning("live timeline: the listening connection was lost; reconnecting")
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("live timeline: listening failed (%r); reconnecting", exc)
            finally:
                self.connected.clear()
                self._connection = None
                connection.terminate()

    async def notify(self, payload: str, *, limit_s: float) -> None:
        """Send ``payload`` to every listening worker, this one included, once connected."""
        await self.connected.wait()
        if self._connection is None:
            raise ConnectionError("the listening connection is being replaced")
        if not SAFE_PAYLOAD.fullmatch(payload):
            raise ValueError(f"not an announcement: {payload[:40]!r}")
        await self._connection.execute(f"NOTIFY {LIVE_CHANNEL}, '{payload}'", timeout=limit_s)

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        for kind, post_id in parse_announcements(payload):
            work = self._on_notice(kind, post_id)
            if work is not None:
                task = asyncio.get_running_loop().create_task(work)
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
