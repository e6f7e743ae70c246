"""Posts: newest-first pages (by keyset for the API, by page number for HTML), create, edit,
delete."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Row,
    Select,
    String,
    any_,
    bindparam,
    delete,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from ..models import Post, Token, User, UTCDateTime, utc_now
from ..observability.records import note_user
from .prepared import Prepared
from .users import find_user_by_username


class NotAuthor(Exception):
    """The post exists but belongs to someone else."""


# Every read returns rows of these columns, in this order:
# (id, body, author, created_at, edited_at).
POST_COLUMNS = (
    Post.id,
    Post.body,
    User.username.label("author"),
    Post.created_at,
    Post.edited_at,
)
# A row as read, or the same values as a view that just wrote them has them.
PostRow = (
    Row[int, str, str, datetime, datetime | None] | tuple[int, str, str, datetime, datetime | None]
)
PostSelect = Select[int, str, str, datetime, datetime | None]


def _posts(*conditions: object) -> PostSelect:
    return select(*POST_COLUMNS).join(User, User.id == Post.author_id).where(*conditions)  # type: ignore[arg-type]


def _newest(*conditions: object) -> PostSelect:
    return _posts(*conditions).order_by(Post.id.desc())


_limited_statements: dict[tuple[int, int], Prepared] = {}


def _limited(statement: PostSelect, limit: int) -> Prepared:
    """``statement`` with its LIMIT written into the SQL, built once per page size.

    Not a parameter: with one there, PostgreSQL plans the statement again on every execution
    (about 0.1 ms, more than the query itself). Not a ``literal_execute`` parameter either:
    SQLAlchemy would then rewrite the compiled SQL on every execution. Written in, each page
    size is one entry in SQLAlchemy's compiled cache and one prepared statement with its plan.
    Page sizes are bounded by validation, so this holds a few hundred statements at most.
    """
    key = (id(statement), limit)
    found = _limited_statements.get(key)
    if found is None:
        limited = statement.limit(literal_column(str(int(limit))))
        found = _limited_statements[key] = Prepared(limited)
    return found


# Built once: SQLAlchemy then finds their compiled SQL in its cache on every request.
_by_id = Prepared(_posts(Post.id == bindparam("post_id")))
# One array parameter, not an expanding IN list: one statement, prepared once, for any count.
_by_ids = Prepared(
    _posts(Post.id == any_(bindparam("post_ids", type_=ARRAY(BigInteger)))).order_by(Post.id)
)
_newest_first = _newest()
_newest_before = _newest(Post.id < bindparam("before"))
_authors_newest = _newest(Post.author_id == bindparam("author_id"))
_authors_newest_before = _newest(
    Post.author_id == bindparam("author_id"), Post.id < bindparam("before")
)
_newest_page = _newest().offset(bindparam("offset"))
_authors_newest_page = _newest(Post.author_id == bindparam("author_id")).offset(bindparam("offset"))
_insert = (
    insert(Post)
    .values(body=bindparam("body"), author_id=bindparam("author_id"))
    .returning(Post.id, Post.created_at)
)
# A write on a bearer token's word: the token's check, the insert and the author's name in one
# statement, one round trip. No row
# back means no live token sent it, and nothing was written.
_token_holder = select(
    bindparam("body", type_=String), Token.user_id, bindparam("created_at", type_=UTCDateTime)
).where(Token.token_hash == bindparam("token_hash"), Token.expires_at > bindparam("now"))
# Written out: SQLAlchemy does not correlate a subquery in RETURNING with the inserted row.
_username_of_author = literal_column(
    "(SELECT users.username FROM users WHERE users.id = posts.author_id)", String
).label("author")
_insert_for_token = Prepared(
    insert(Post)
    .from_select(["body", "author_id", "created_at"], _token_holder)
    .returning(Post.id, Post.created_at, _username_of_author, Post.author_id)
)
_delete = (
    delete(Post)
    .where(Post.id == bindparam("post_id"), Post.author_id == bindparam("author_id"))
    .returning(Post.id)
)
_author_of = select(Post.author_id).where(Post.id == bindparam("post_id"))
_oldest_after = _posts(Post.id > bindparam("after")).order_by(Post.id)

_edit = (
    update(Post)
    .where(Post.id == bindparam("post_id"), Post.author_id == bindparam("editor_id"))
    .values(body=bindparam("new_body"), edited_at=bindparam("edit_time"))
    .returning(Post.id, Post.created_at)
)


async def find_post(conn: AsyncConnection, post_id: int) -> PostRow | None:
    return await _by_id.first(conn, {"post_id": post_id})  # type: ignore[no-any-return]


async def find_posts(conn: AsyncConnection, post_ids: Sequence[int]) -> Sequence[PostRow]:
    """The posts among ``post_ids`` that exist, oldest first, in one query (PostgreSQL)."""
    return await _by_ids.rows(conn, {"post_ids": list(post_ids)})


async def select_posts_older(
    conn: AsyncConnection, *, limit: int, before: int | None = None, author_id: int | None = None
) -> Sequence[PostRow]:
    """Up to ``limit`` posts, newest first, older than the post ``before`` if given."""
    params = {"before": before, "author_id": author_id}
    if author_id is None:
        statement = _newest_first if before is None else _newest_before
    else:
        statement = _authors_newest if before is None else _authors_newest_before
    return await _limited(statement, limit).rows(conn, params)


async def select_user_posts_older(
    conn: AsyncConnection, username: str, *, limit: int, before: int | None = None
) -> Sequence[PostRow] | None:
    """``select_posts_older`` for the user ``username``, or None if there is no such user."""
    user = await find_user_by_username(conn, username)
    if user is None:
        return None
    return await select_posts_older(conn, limit=limit, before=before, author_id=user.id)


async def select_posts_newer(conn: AsyncConnection, *, after: int, limit: int) -> Sequence[PostRow]:
    """Up to ``limit`` posts newer than the post ``after``, oldest first."""
    return await _limited(_oldest_after, limit).rows(conn, {"after": after})


async def select_posts_page(
    conn: AsyncConnection, *, page: int, per_page: int, author_id: int | None = None
) -> tuple[Sequence[PostRow], bool]:
    """Page ``page`` (from 1) of posts, newest first, and whether an older page exists."""
    params = {"offset": (page - 1) * per_page, "author_id": author_id}
    statement = _newest_page if author_id is None else _authors_newest_page
    posts = await _limited(statement, per_page + 1).rows(conn, params)
    return posts[:per_page], len(posts) > per_page


NewRow = tuple[int, str, str, datetime, datetime | None]


async def create_post(conn: AsyncConnection, *, author_id: int, author: str, body: str) -> NewRow:
    """Insert a post by ``author_id`` (whose username is ``author``); return it as a read does."""
    params = {"body": body, "author_id": author_id}
    post_id, created_at = (await conn.execute(_insert, params)).one()
    return post_id, body, author, created_at, None


async def edit_post(
    conn: AsyncConnection, *, post_id: int, author_id: int, author: str, body: str
) -> NewRow | None:
    """Replace the body of the post if ``author_id`` (named ``author``) wrote it; return it as a
    read does, None if there is no such post; ``NotAuthor`` if someone else wrote it."""
    now = utc_now()
    params = {"post_id": post_id, "editor_id": author_id, "new_body": body, "edit_time": now}
    row = (await conn.execute(_edit, params)).first()
    if row is not None:
        return post_id, body, author, row[1], now
    if await conn.scalar(_author_of, {"post_id": post_id}) is not None:
        raise NotAuthor(post_id)
    return None


async def create_post_for_token(
    conn: AsyncConnection, *, token_hash: str, body: str
) -> NewRow | None:
    """Insert a post by the user of the live token whose digest is ``token_hash``, and return
    it as a read does; None, with nothing written, if there is no such token."""
    now = utc_now()
    params = {"body": body, "token_hash": token_hash, "now": now, "created_at": now}
    row = await _insert_for_token.first(conn, params)
    if row is None:
        return None
    post_id, created_at, author, author_id = row
    note_user(author_id)  # the token's user, for the request's log line
    return post_id, body, author, created_at, None


async def delete_post(conn: AsyncConnection, *, post_id: int, author_id: int) -> bool:
    """Delete the post if ``author_id`` wrote it: True if deleted, False if there is no such
    post; ``NotAuthor`` if someone else wrote it."""
    params = {"post_id": post_id, "author_id": author_id}
    if (await conn.execute(_delete, params)).first() is not None:
        return True
    if await conn.scalar(_author_of, {"post_id": post_id}) is not None:
        raise NotAuthor(post_id)
    return False
