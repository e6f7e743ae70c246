"""The tables, as typed SQLAlchemy 2 models. Rows are never serialised as they are: see schemas."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

USERNAME_MIN, USERNAME_MAX = 3, 32
USERNAME_PATTERN = r"^[A-Za-z0-9_]+$"  # unique without regard to case
EMAIL_MAX = 254
POST_BODY_MAX = 280
MAX_ID = 2**31 - 1  # ids are 32-bit integers in both databases
TOKEN_NAME_MAX = 64

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def is_username(value: str) -> bool:
    """Whether ``value`` could name a user: anything else needs no database lookup."""
    return (
        USERNAME_MIN <= len(value) <= USERNAME_MAX and re.match(USERNAME_PATTERN, value) is not None
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC timestamp column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utc_now, server_default=func.now()
    )


# Alice and alice are one user: names are unique, and looked up, in lower case.
Index("uq_users_username_lower", func.lower(User.username), unique=True)


class Post(Base):
    """A post. Ids grow with time, so ``id DESC`` is newest first and a stable keyset."""

    __tablename__ = "posts"
    __table_args__ = (Index("ix_posts_author_id_id", "author_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(POST_BODY_MAX))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utc_now, server_default=func.now()
    )
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None until edited


class Token(Base):
    """An API bearer token; only the SHA-256 of the token is stored."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utc_now, server_default=func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    name: Mapped[str | None] = mapped_column(String(TOKEN_NAME_MAX))  # the client's label
    # Written a minute late at most, in batches: see api/token_uses.py.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BrowserSession(Base):
    """A signed-in browser. The cookie carries a random id, stored here only as its SHA-256;
    deleting the row signs that browser out, whatever cookie it still holds."""

    __tablename__ = "browser_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utc_now, server_default=func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


IDEMPOTENCY_KEY_MAX = 255


class IdempotencyKey(Base):
    """A write sent with ``Idempotency-Key``, and the answer it got: a repeat of the same key
    by the same user gets that answer again instead of writing twice. Stored in the write's
    own transaction, so there is never a post without its key or a key without its post."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_id_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(IDEMPOTENCY_KEY_MAX))
    request_digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of what was asked
    status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
