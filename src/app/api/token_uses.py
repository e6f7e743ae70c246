"""When each bearer token was last used, written in batches rather than on every request.

A request that presents a token notes it here (a dictionary write); once a minute the worker
writes what it noted in one statement. So ``last_used_at`` costs the hot path nothing, is at
most a minute late, and a worker that dies loses at most its last minute of it. ``GET
/api/tokens`` adds what this worker has not written yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from flask import current_app
from flask_greenlet import AsyncFlask

from ..database import db
from ..models import utc_now
from ..store.tokens import record_token_uses

log = logging.getLogger(__name__)

WRITE_EVERY_S = 60.0
MOST_NOTED = 100_000  # beyond this, new tokens wait for the next write: memory stays bounded


class TokenUses:
    """The Flask extension; each app keeps its own notebook (``app.extensions``)."""

    def init_app(self, app: AsyncFlask) -> None:
        notebook = app.extensions["token_uses"] = Notebook()
        app.before_serving(notebook.start)
        app.after_serving(notebook.stop)

    def note(self, token_hash: str) -> None:
        _notebook().note(token_hash)

    def unwritten(self, token_hash: str) -> datetime | None:
        return _notebook().noted.get(token_hash)

    async def write(self) -> None:
        await _notebook().write()


class Notebook:
    def __init__(self) -> None:
        self.noted: dict[str, datetime] = {}
        self._writer: asyncio.Task[None] | None = None

    def note(self, token_hash: str) -> None:
        if len(self.noted) < MOST_NOTED or token_hash in self.noted:
            self.noted[token_hash] = utc_now()

    async def write(self) -> None:
        """Write what was noted; on failure keep it for the next turn."""
        noted, self.noted = self.noted, {}
        if not noted:
            return
        try:
            async with db.begin() as conn:
                await record_token_uses(conn, noted)
        except Exception as exc:  # the database is down or busy: try again next turn
            log.warning("token last uses not written (%d kept for later): %r", len(noted), exc)
            for token_hash, used_at in noted.items():
                self.noted.setdefault(token_hash, used_at)

    async def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_forever())

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        await self.write()

    async def _write_forever(self) -> None:
        while True:
            await asyncio.sleep(WRITE_EVERY_S)
            await self.write()


def _notebook() -> Notebook:
    return current_app.extensions["token_uses"]  # type: ignore[no-any-return]


token_uses = TokenUses()
