"""What every peer shares: where the database is, the pool size, and the API's small codecs.

Kept apart so that each peer file shows only its framework's way of doing the same work.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime

POST_BODY_MAX = 280
DEFAULT_LIMIT, MAX_LIMIT = 20, 100


def database_url(driver: str) -> str:
    """DATABASE_URL (``postgresql://...``) spelled for ``driver``, e.g. ``asyncpg``."""
    url = os.environ["DATABASE_URL"]
    _, rest = url.split("://", 1)
    return f"postgresql+{driver}://{rest}" if driver else f"postgresql://{rest}"


def pool_size() -> int:
    return int(os.environ.get("DB_POOL_SIZE", "20"))


def encode_cursor(post_id: int) -> str:
    """The post id in base 36, as the app writes its cursors."""
    digits = ""
    while post_id:
        post_id, digit = divmod(post_id, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
    return digits or "0"


def decode_cursor(cursor: str) -> int | None:
    """The id a cursor stands for (None past every id); ValueError if it is not base 36."""
    if not cursor.isascii() or not cursor.isalnum() or cursor != cursor.lower() or len(cursor) > 7:
        raise ValueError("not a cursor")
    post_id = int(cursor, 36)
    return post_id if post_id < 2**31 else None


def parse_page_query(limit: str | None, cursor: str | None) -> tuple[int, int | None]:
    """``(limit, before)`` from the query string; ValueError when either is out of contract."""
    size = DEFAULT_LIMIT if limit is None else int(limit)
    if not 1 <= size <= MAX_LIMIT:
        raise ValueError("limit out of range")
    return size, (decode_cursor(cursor) if cursor is not None else None)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def clean_body(body: object) -> str | None:
    """The post body exactly as sent, or None if it breaks the contract (blank, a NUL, too
    long): the same rules as the app's."""
    if not isinstance(body, str) or not body.strip() or "\x00" in body:
        return None
    return body if len(body) <= POST_BODY_MAX else None


def iso_utc(moment: datetime) -> str:
    """``2026-11-24T07:20:30.123456Z``, as pydantic writes a UTC datetime."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
