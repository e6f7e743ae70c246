"""API bearer tokens: opaque random strings, stored only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Row, bindparam, delete, insert, or_, select, update
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


@dataclass(frozen=True, slots=True)
class NewToken:
    id: int
    secret: str  # shown to the client once; only its digest is stored
    name: str | None
    expires_at: datetime


async def issue_token(
    conn: AsyncConnection,
    user_id: int,
    lifetime: timedelta,
    *,
    name: str | None = None,
    keep: int = MAX_LIVE_TOKENS,
) -> NewToken:
    """Create a token for ``user_id``, labelled ``name`` if given.

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
    token_id = await conn.scalar(
        insert(Token)
        .values(
            token_hash=digest(token),
            user_id=user_id,
            name=name,
            created_at=now,
            expires_at=now + lifetime,
        )
        .returning(Token.id)
    )
    return NewToken(token_id, token, name, now + lifetime)  # type: ignore[arg-type]


async def find_token_user(conn: AsyncConnection, token_hash: str) -> UserRef | None:
    """The user of the unexpired token whose digest is ``token_hash``, or None."""
    params = {"token_hash": token_hash, "now": utc_now()}
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


async def revoke_token_by_id(conn: AsyncConnection, *, user_id: int, token_id: int) -> bool:
    """Revoke ``user_id``'s live token ``token_id``: False if they have no such live token."""
    statement = (
        delete(Token)
        .where(Token.id == token_id, Token.user_id == user_id, Token.expires_at > utc_now())
        .returning(Token.id)
    )
    return (await conn.execute(statement)).first() is not None


_live_tokens = (
    select(
        Token.id,
        Token.name,
        Token.created_at,
        Token.last_used_at,
        Token.expires_at,
        Token.token_hash,
    )
    .where(Token.user_id == bindparam("user_id"), Token.expires_at > bindparam("now"))
    .order_by(Token.id.desc())
)


LiveToken = Row[int, str | None, datetime, datetime | None, datetime, str]


async def list_live_tokens(conn: AsyncConnection, user_id: int) -> Sequence[LiveToken]:
    """``user_id``'s live tokens, newest first: (id, name, created_at, last_used_at,
    expires_at, token_hash)."""
    result = await conn.execute(_live_tokens, {"user_id": user_id, "now": utc_now()})
    return result.all()


_record_use = (
    update(Token)
    .where(
        Token.token_hash == bindparam("used_hash"),
        or_(Token.last_used_at.is_(None), Token.last_used_at < bindparam("used_at")),
    )
    .values(last_used_at=bindparam("used_at"))
)


async def record_token_uses(conn: AsyncConnection, uses: Mapping[str, datetime]) -> None:
    """Write when each token (by digest) was last used, in one batch; never moves one back."""
    if uses:
        params = [{"used_hash": h, "used_at": at} for h, at in uses.items()]
        await conn.execute(_record_use, params)


async def revoke_all_tokens(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(delete(Token).where(Token.user_id == user_id))
