"""API bearer tokens: opaque random strings, stored only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..models import Token, User, utc_now


@dataclass(frozen=True, slots=True)
class TokenUser:
    """Who a valid token speaks for."""

    id: int
    username: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_user_for_token = (
    select(User.id, User.username)
    .join(Token, Token.user_id == User.id)
    .where(Token.token_hash == bindparam("token_hash"), Token.expires_at > bindparam("now"))
)


async def issue_token(
    conn: AsyncConnection, user_id: int, lifetime: timedelta
) -> tuple[str, datetime]:
    """Create a token for ``user_id``; return it (shown once, never stored) and its expiry."""
    token = secrets.token_urlsafe(32)
    expires_at = utc_now() + lifetime
    await conn.execute(
        insert(Token).values(token_hash=_digest(token), user_id=user_id, expires_at=expires_at)
    )
    return token, expires_at


async def find_token_user(conn: AsyncConnection, token: str) -> TokenUser | None:
    """The user of an unexpired ``token``, or None."""
    params = {"token_hash": _digest(token), "now": utc_now()}
    row = (await conn.execute(_user_for_token, params)).first()
    return TokenUser(row.id, row.username) if row is not None else None


async def revoke_token(conn: AsyncConnection, token: str) -> None:
    await conn.execute(delete(Token).where(Token.token_hash == _digest(token)))
