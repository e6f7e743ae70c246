"""Quart + SQLAlchemy AsyncSession (ORM) on asyncpg.

Serve: ``uvicorn quart_app:app --app-dir bench/peers`` with DATABASE_URL set.
"""

from __future__ import annotations

from typing import Any

from contract import (
    bearer_token,
    clean_body,
    database_url,
    encode_cursor,
    iso_utc,
    parse_page_query,
    pool_size,
    token_digest,
)
from models import Post, Token, User
from quart import Quart, abort, g, jsonify, request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

app = Quart(__name__)


@app.before_serving
async def open_engine() -> None:
    app.config["ENGINE"] = create_async_engine(
        database_url("asyncpg"), pool_size=pool_size(), max_overflow=0
    )
    app.config["SESSIONS"] = async_sessionmaker(app.config["ENGINE"], expire_on_commit=False)


@app.after_serving
async def close_engine() -> None:
    await app.config["ENGINE"].dispose()


def session() -> AsyncSession:
    """This request's session, made on first use and closed at teardown."""
    if "session" not in g:
        g.session = app.config["SESSIONS"]()
    return g.session  # type: ignore[no-any-return]


@app.teardown_appcontext
async def close_session(_error: BaseException | None) -> None:
    if (db_session := g.pop("session", None)) is not None:
        await db_session.close()


def post_json(post: Post, author: str) -> dict[str, Any]:
    return {
        "id": post.id,
        "body": post.body,
        "author": author,
        "created_at": iso_utc(post.created_at),
        "edited_at": None if post.edited_at is None else iso_utc(post.edited_at),
    }


def newest_posts():  # type: ignore[no-untyped-def]
    return (
        select(Post, User.username).join(User, Post.author_id == User.id).order_by(Post.id.desc())
    )


@app.get("/api/posts")
async def list_posts():  # type: ignore[no-untyped-def]
    try:
        limit, before = parse_page_query(request.args.get("limit"), request.args.get("cursor"))
    except ValueError:
        abort(422)
    statement = newest_posts().limit(limit + 1)
    if before is not None:
        statement = statement.where(Post.id < before)
    rows = (await session().execute(statement)).all()
    items = [post_json(post, author) for post, author in rows[:limit]]
    next_cursor = encode_cursor(items[-1]["id"]) if len(rows) > limit else None
    return jsonify(items=items, next_cursor=next_cursor)


@app.post("/api/posts")
async def create_post():  # type: ignore[no-untyped-def]
    token = bearer_token(request.headers.get("Authorization"))
    user = None
    if token is not None:
        user = await session().scalar(
            select(User)
            .join(Token, Token.user_id == User.id)
            .where(Token.token_hash == token_digest(token), Token.expires_at > func.now())
        )
    if user is None:
        abort(401)
    payload = await request.get_json(silent=True)
    body = clean_body(payload.get("body") if isinstance(payload, dict) else None)
    if body is None:
        abort(422)
    post = Post(body=body, author_id=user.id)
    session().add(post)
    await session().commit()
    return post_json(post, user.username), 201, {"Location": f"/api/posts/{post.id}"}


@app.get("/api/posts/<int:post_id>")
async def get_post(post_id: int):  # type: ignore[no-untyped-def]
    row = (await session().execute(newest_posts().where(Post.id == post_id))).first()
    if row is None:
        abort(404)
    return post_json(*row)
