"""FastAPI as a performance-minded user writes it, on our app's data layer: SQLAlchemy Core on
an autocommit engine, statements built once, one pooled connection per request (the token
check and the insert share it), dataclasses serialised by pydantic-core straight to bytes.

This is the peer that isolates framework and bridge cost: the database work is ours, so the
difference between it and our app is FastAPI + Starlette against Flask + the greenlet bridge.

Serve: ``uvicorn fastapi_fast:app --app-dir bench/peers`` with DATABASE_URL set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from contract import (
    POST_BODY_MAX,
    bearer_token,
    clean_body,
    database_url,
    decode_cursor,
    encode_cursor,
    pool_size,
    token_digest,
)
from fastapi import FastAPI, Header, Query, Response
from models import Post, Token, User
from pydantic import AfterValidator, BaseModel, Field, TypeAdapter
from sqlalchemy import Integer, bindparam, func, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

posts, tokens, users = Post.__table__, Token.__table__, User.__table__

JSON = "application/json"


@dataclass(slots=True)
class PostOut:
    id: int
    body: str
    author: str
    created_at: datetime
    edited_at: datetime | None


@dataclass(slots=True)
class PostPage:
    items: list[PostOut]
    next_cursor: str | None


def _kept_as_sent(body: str) -> str:
    if clean_body(body) is None:
        raise ValueError("blank, or with a NUL")
    return body


class PostIn(BaseModel):
    body: Annotated[
        str, Field(min_length=1, max_length=POST_BODY_MAX), AfterValidator(_kept_as_sent)
    ]


_post_json = TypeAdapter(PostOut).dump_json
_page_json = TypeAdapter(PostPage).dump_json

_columns = (posts.c.id, posts.c.body, users.c.username, posts.c.created_at, posts.c.edited_at)
_joined = select(*_columns).join(users, users.c.id == posts.c.author_id)
# The page size written into the SQL (one prepared statement per size), as our app does.
_limit = bindparam("limit", type_=Integer, literal_execute=True)
NEWEST = _joined.order_by(posts.c.id.desc()).limit(_limit)
NEWEST_BEFORE = _joined.where(posts.c.id < bindparam("before")).order_by(posts.c.id.desc())
NEWEST_BEFORE = NEWEST_BEFORE.limit(_limit)
BY_ID = _joined.where(posts.c.id == bindparam("post_id"))
TOKEN_USER = (
    select(users.c.id, users.c.username)
    .join(tokens, tokens.c.user_id == users.c.id)
    .where(tokens.c.token_hash == bindparam("token_hash"), tokens.c.expires_at > func.now())
)
INSERT = (
    insert(posts)
    .values(body=bindparam("body"), author_id=bindparam("author_id"))
    .returning(posts.c.id, posts.c.created_at)
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global engine
    engine = create_async_engine(
        database_url("asyncpg"),
        pool_size=pool_size(),
        max_overflow=0,
        isolation_level="AUTOCOMMIT",
    )
    yield
    await engine.dispose()


engine = None  # made in the lifespan, on the server's loop
app = FastAPI(lifespan=lifespan)


def problem(status: int) -> Response:
    return Response(b'{"status":%d}' % status, status, media_type="application/problem+json")


@app.get("/api/posts")
async def list_posts(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    before = None
    if cursor is not None:
        try:
            before = decode_cursor(cursor)
        except ValueError:
            return problem(422)
    statement = NEWEST if before is None else NEWEST_BEFORE
    async with engine.connect() as conn:  # type: ignore[union-attr]
        rows = (await conn.execute(statement, {"limit": limit + 1, "before": before})).all()
    items = [PostOut(*row) for row in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Response(_page_json(PostPage(items, next_cursor)), media_type=JSON)


@app.post("/api/posts", status_code=201)
async def create_post(
    payload: PostIn, authorization: Annotated[str | None, Header()] = None
) -> Response:
    token = bearer_token(authorization)
    if token is None:
        return problem(401)
    async with engine.connect() as conn:  # type: ignore[union-attr]
        user = (await conn.execute(TOKEN_USER, {"token_hash": token_digest(token)})).first()
        if user is None:
            return problem(401)
        params = {"body": payload.body, "author_id": user.id}
        post_id, created_at = (await conn.execute(INSERT, params)).one()
    post = PostOut(post_id, payload.body, user.username, created_at, None)
    headers = {"Location": f"/api/posts/{post_id}"}
    return Response(_post_json(post), 201, headers, media_type=JSON)


@app.get("/api/posts/{post_id}")
async def get_post(post_id: int) -> Response:
    async with engine.connect() as conn:  # type: ignore[union-attr]
        row = (await conn.execute(BY_ID, {"post_id": post_id})).first()
    return Response(_post_json(PostOut(*row)), media_type=JSON) if row else problem(404)
