"""Idempotency keys: claim one for a write, keep the write's answer with it, find it again.

All of it runs inside the write's transaction (``db.begin()``). A key claimed there is seen by
others only once the write commits, answer and all; a second request with the same key waits
for the first to finish on the key's unique index, and PostgreSQL's ``lock_timeout`` bounds
that wait (the view answers 409 past it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from ..models import IdempotencyKey, utc_now

KEYS = IdempotencyKey.__table__


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """What the first request with a key was answered, and a digest of what it asked."""

    request_digest: str
    status: int
    body: str
    location: str | None


async def claim_key(
    conn: AsyncConnection, *, user_id: int, key: str, request_digest: str, lifetime: timedelta
) -> int | StoredAnswer:
    """The claimed key's row id, for ``keep_answer``; or the answer already stored with it.

    A key past its expiry is claimed afresh, as if it had never been used."""
    now = utc_now()
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    values = {
        "user_id": user_id,
        "key": key,
        "request_digest": request_digest,
        "created_at": now,
        "expires_at": now + lifetime,
    }
    fresh = {**values, "status": None, "response_body": None, "location": None}
    statement = (
        insert(IdempotencyKey)
        .values(values)
        .on_conflict_do_update(
            index_elements=[KEYS.c.user_id, KEYS.c.key],
            set_={name: value for name, value in fresh.items() if name not in ("user_id", "key")},
            where=KEYS.c.expires_at <= now,
        )
        .returning(KEYS.c.id)
    )
    claimed = (await conn.execute(statement)).scalar()
    if claimed is not None:
        return int(claimed)
    return await _stored_answer(conn, user_id, key)


async def _stored_answer(conn: AsyncConnection, user_id: int, key: str) -> StoredAnswer:
    row = (
        await conn.execute(
            select(
                KEYS.c.request_digest, KEYS.c.status, KEYS.c.response_body, KEYS.c.location
            ).where(KEYS.c.user_id == user_id, KEYS.c.key == key)
        )
    ).one()
    return StoredAnswer(row.request_digest, row.status, row.response_body, row.location)


async def keep_answer(
    conn: AsyncConnection, key_id: int, *, status: int, body: str, location: str | None
) -> None:
    await conn.execute(
        update(IdempotencyKey)
        .where(KEYS.c.id == key_id)
        .values(status=status, response_body=body, location=location)
    )


async def purge_expired_keys(conn: AsyncConnection, now: datetime | None = None) -> int:
    """Forget keys past their expiry; how many."""
    result = await conn.execute(
        delete(IdempotencyKey).where(KEYS.c.expires_at <= (now or utc_now()))
    )
    return result.rowcount
