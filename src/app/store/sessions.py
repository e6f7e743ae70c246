"""Browser sessions on the server: a row per signed-in browser, so signing out is real."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..models import BrowserSession, User, utc_now
from .prepared import Prepared
from .tokens import UserRef, digest

_user_for_session = Prepared(
    select(User.id, User.username)
    .join(BrowserSession, BrowserSession.user_id == User.id)
    .where(
        BrowserSession.token_hash == bindparam("token_hash"),
        BrowserSession.expires_at > bindparam("now"),
    )
)


async def start_session(
    conn: AsyncConnection, user_id: int, *, lifetime: timedelta, remember: bool
) -> str:
    """A new session for ``user_id``; the returned secret goes in the signed cookie only."""
    token = secrets.token_urlsafe(32)
    now = utc_now()
    await conn.execute(delete(BrowserSession).where(BrowserSession.expires_at <= now))
    await conn.execute(
        insert(BrowserSession).values(
            token_hash=digest(token), user_id=user_id, remember=remember, expires_at=now + lifetime
        )
    )
    return token


async def find_session_user(conn: AsyncConnection, token: str) -> UserRef | None:
    """Who an unexpired, not-ended session belongs to, or None."""
    params = {"token_hash": digest(token), "now": utc_now()}
    row = await _user_for_session.first(conn, params)
    return UserRef(row[0], row[1]) if row is not None else None


async def end_session(conn: AsyncConnection, token: str) -> None:
    await conn.execute(delete(BrowserSession).where(BrowserSession.token_hash == digest(token)))


async def end_all_sessions(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(delete(BrowserSession).where(BrowserSession.user_id == user_id))
