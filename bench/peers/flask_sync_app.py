"""Classic sync Flask + SQLAlchemy (sync ORM Session) on psycopg 3.

Serve: ``gunicorn -k gthread --threads 32 -w 1 --chdir bench/peers 'flask_sync_app:create_app()'``
with DATABASE_URL set.
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
from flask import Flask, abort, current_app, g, jsonify, request
from models import Post, Token, User
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker


def create_app() -> Flask:
    app = Flask(__name__)
    engine = create_engine(database_url("psycopg"), pool_size=pool_size(), max_overflow=0)
    app.extensions["sessions"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(close_session)
    app.add_url_rule("/api/posts", view_func=list_posts, methods=["GET"])
    app.add_url_rule("/api/posts", view_func=create_post, methods=["POST"])
    app.add_url_rule("/api/posts/<int:post_id>", view_func=get_post, methods=["GET"])
    return app


def session() -> Session:
    """This request's session, made on first use and closed at teardown."""
    if "session" not in g:
        g.session = current_app.extensions["sessions"]()
    return g.session  # type: ignore[no-any-return]


def close_session(_error: BaseException | None) -> None:
    if (db_session := g.pop("session", None)) is not None:
        db_session.close()


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


def list_posts():  # type: ignore[no-untyped-def]
    try:
        limit, before = parse_page_query(request.args.get("limit"), request.args.get("cursor"))
    except ValueError:
        abort(422)
    statement = newest_posts().limit(limit + 1)
    if before is not None:
        statement = statement.where(Post.id < before)
    rows = session().execute(statement).all()
    items = [post_json(post, author) for post, author in rows[:limit]]
    next_cursor = encode_cursor(items[-1]["id"]) if len(rows) > limit else None
    return jsonify(items=items, next_cursor=next_cursor)


def create_post():  # type: ignore[no-untyped-def]
    token = bearer_token(request.headers.get("Authorization"))
    user = None
    if token is not None:
        user = session().scalar(
            select(User)
            .join(Token, Token.user_id == User.id)
            .where(Token.token_hash == token_digest(token), Token.expires_at > func.now())
        )
    if user is None:
        abort(401)
    payload = request.get_json(silent=True)
    body = clean_body(payload.get("body") if isinstance(payload, dict) else None)
    if body is None:
        abort(422)
    post = Post(body=body, author_id=user.id)
    session().add(post)
    session().commit()
    return post_json(post, user.username), 201, {"Location": f"/api/posts/{post.id}"}


def get_post(post_id: int):  # type: ignore[no-untyped-def]
    row = session().execute(newest_posts().where(Post.id == post_id)).first()
    if row is None:
        abort(404)
    return post_json(*row)
