"""Users: create, find, and the public profile with its post count."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Row, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..models import Post, User


class UsernameTaken(Exception):
    """Another user already has this username."""


class EmailTaken(Exception):
    """Another user already has this email address."""


class Profile(NamedTuple):
    username: str
    created_at: datetime
    post_count: int


# Names match in any case (the index is on lower(username)); each user keeps the case they chose.
_same_name = func.lower(User.username) == func.lower(bindparam("username"))
_by_username = select(User.id, User.username, User.password_hash, User.created_at).where(_same_name)
_by_id = select(User.id, User.username).where(User.id == bindparam("user_id"))
_profile = select(
    User.username,
    User.created_at,
    select(func.count(Post.id)).where(Post.author_id == User.id).scalar_subquery(),
).where(_same_name)

_own_profile = select(
    User.username,
    User.email,
    User.created_at,
    select(func.count(Post.id)).where(Post.author_id == User.id).scalar_subquery(),
).where(User.id == bindparam("user_id"))


class OwnProfile(NamedTuple):
    username: str
    email: str
    created_at: datetime
    post_count: int


async def find_own_profile(conn: AsyncConnection, user_id: int) -> OwnProfile | None:
    """What a user may see of themselves: their profile and their email address."""
    row = (await conn.execute(_own_profile, {"user_id": user_id})).first()
    return OwnProfile(*row) if row is not None else None


async def create_user(
    conn: AsyncConnection, *, username: str, email: str, password_hash: str
) -> Profile:
    """Insert a user; raise ``UsernameTaken`` or ``EmailTaken`` if either is in use."""
    await refuse_taken(conn, username=username, email=email)
    statement = (
        insert(User)
        .values(username=username, email=email, password_hash=password_hash)
        .returning(User.username, User.created_at)
    )
    try:
        row = (await conn.execute(statement)).one()
    except IntegrityError:
        # Lost a race with a concurrent registration: say which field is now taken.
        await refuse_taken(conn, username=username, email=email)
        raise
    return Profile(row.username, row.created_at, 0)


async def refuse_taken(conn: AsyncConnection, *, username: str, email: str) -> None:
    """Raise ``UsernameTaken`` or ``EmailTaken``; cheap, so it runs before any hashing."""
    if await conn.scalar(select(User.id).where(_same_name), {"username": username}) is not None:
        raise UsernameTaken(username)
    if await conn.scalar(select(User.id).where(User.email == email)) is not None:
        raise EmailTaken(email)


async def find_user_by_username(
    conn: AsyncConnection, username: str
) -> Row[int, str, str, datetime] | None:
    """The user's id, username, password hash and created_at, or None."""
    return (await conn.execute(_by_username, {"username": username})).first()


async def find_user_by_id(conn: AsyncConnection, user_id: int) -> Row[int, str] | None:
    return (await conn.execute(_by_id, {"user_id": user_id})).first()


async def find_profile(conn: AsyncConnection, username: str) -> Profile | None:
    row = (await conn.execute(_profile, {"username": username})).first()
    return Profile(*row) if row is not None else None


async def update_password_hash(conn: AsyncConnection, user_id: int, password_hash: str) -> None:
    await conn.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))


async def replace_password(conn: AsyncConnection, user_id: int, password_hash: str) -> None:
    """A new password ends every browser session and revokes every API token of the user.

    Run it inside ``db.begin()``: all of it happens, or none.
    """
    from .sessions import end_all_sessions
    from .tokens import revoke_all_tokens

    await update_password_hash(conn, user_id, password_hash)
    await end_all_sessions(conn, user_id)
    await revoke_all_tokens(conn, user_id)
