"""API bearer tokens: opaque random strings, stored only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..models import Token, User, utc_now
from .prepared import Prepared

MAX_LIVE_TOKENS = 10


@dataclass(frozen=True, slots=True)
class UserRef:
    """Who a valid token or browser session speaks for."""

    id: int
    username: str


def digest(token: str) -> str:
    """What is stored of a secret handed to a client: its SHA-256, never the secret."""
    return hashlib.sha256(token.encode()).hexdigest()


_user_for_token = Prepared(
    select(User.id, User.username)
    .join(Token, Token.user_id == User.id)
    .where(Token.token_hash == bindparam("token_hash"), Token.expires_at > bindparam("now"))
)


async def issue_token(
    conn: AsyncConnection, user_id: int, lifetime: timedelta, *, keep: int = MAX_LIVE_TOKENS
) -> tuple[str, datetime]:
    """Create a token for ``user_id``; return it (shown once, never stored) and its expiry.

    Expired tokens are purged on the way, and the user's oldest live tokens beyond ``keep``
    are revoked, so tokens cannot pile up however often a client signs in.
    """
    token = secrets.token_urlsafe(32)
    now = utc_now()
    await conn.execute(delete(Token).where(Token.expires_at <= now))
    newest = (
        select(Token.id)
        .where(Token.user_id == user_id)
        .order_by(Token.id.desc())
        .limit(keep - 1)
        .scalar_subquery()
    )
    await conn.execute(delete(Token).where(Token.user_id == user_id, Token.id.not_in(newest)))
    await conn.execute(
        insert(Token).values(token_hash=digest(token), user_id=user_id, expires_at=now + lifetime)
    )
    return token, now + lifetime


async def find_token_user(conn: AsyncConnection, token: str) -> UserRef | None:
    """The user of an unexpired ``token``, or None."""
    params = {"token_hash": digest(token), "now": utc_now()}
    row = await _user_for_token.first(conn, params)
    return UserRef(row[0], row[1]) if row is not None else None


_revoke_live = (
    delete(Token)
    .where(Token.token_hash == bindparam("token_hash"), Token.expires_at > bindparam("now"))
    .returning(Token.id)
)


async def revoke_live_token(conn: AsyncConnection, token_hash: str) -> int | None:
    """Revoke the live token whose digest is ``token_hash``: its id, or None if there is none."""
    params = {"token_hash": token_hash, "now": utc_now()}
    return (await conn.execute(_revoke_live, params)).scalar()


async def revoke_all_tokens(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(delete(Token).where(Token.user_id == user_id))
