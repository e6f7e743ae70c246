"""Starlette + a raw asyncpg pool, no ORM: the reference for how fast the same work can go.

Serve: ``uvicorn starlette_raw:app --app-dir bench/peers`` with DATABASE_URL set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
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
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

NEWEST = """
    SELECT p.id, p.body, u.username AS author, p.created_at, p.edited_at
    FROM posts p JOIN users u ON u.id = p.author_id
"""
NEWEST_FIRST = NEWEST + " ORDER BY p.id DESC LIMIT $1"
NEWEST_BEFORE = NEWEST + " WHERE p.id < $2 ORDER BY p.id DESC LIMIT $1"
BY_ID = NEWEST + " WHERE p.id = $1"
TOKEN_USER = """
    SELECT u.id, u.username FROM tokens t JOIN users u ON u.id = t.user_id
    WHERE t.token_hash = $1 AND t.expires_at > now()
"""
INSERT = "INSERT INTO posts (body, author_id) VALUES ($1, $2) RETURNING id, created_at"


def problem(status: int) -> JSONResponse:
    return JSONResponse({"status": status}, status_code=status)


def post_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "body": row["body"],
        "author": row["author"],
        "created_at": iso_utc(row["created_at"]),
        "edited_at": None if row["edited_at"] is None else iso_utc(row["edited_at"]),
    }


async def list_posts(request: Request) -> JSONResponse:
    try:
        limit, before = parse_page_query(
            request.query_params.get("limit"), request.query_params.get("cursor")
        )
    except ValueError:
        return problem(422)
    pool = request.app.state.pool
    if before is None:
        rows = await pool.fetch(NEWEST_FIRST, limit + 1)
    else:
        rows = await pool.fetch(NEWEST_BEFORE, limit + 1, before)
    items = [post_json(row) for row in rows[:limit]]
    next_cursor = encode_cursor(items[-1]["id"]) if len(rows) > limit else None
    return JSONResponse({"items": items, "next_cursor": next_cursor})


async def create_post(request: Request) -> JSONResponse:
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        return problem(401)
    try:
        payload = await request.json()
    except ValueError:
        payload = None
    body = clean_body(payload.get("body") if isinstance(payload, dict) else None)
    # One connection for both statements: the token check and the insert.
    async with request.app.state.pool.acquire() as conn:
        user = await conn.fetchrow(TOKEN_USER, token_digest(token))
        if user is None:
            return problem(401)
        if body is None:
            return problem(422)
        post_id, created_at = await conn.fetchrow(INSERT, body, user["id"])
    post = {
        "id": post_id,
        "body": body,
        "author": user["username"],
        "created_at": created_at,
        "edited_at": None,
    }
    return JSONResponse(post_json(post), 201, {"Location": f"/api/posts/{post_id}"})


async def get_post(request: Request) -> JSONResponse:
    row = await request.app.state.pool.fetchrow(BY_ID, request.path_params["post_id"])
    return JSONResponse(post_json(row)) if row is not None else problem(404)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    size = pool_size()
    app.state.pool = await asyncpg.create_pool(database_url(""), min_size=size, max_size=size)
    yield
    await app.state.pool.close()


app = Starlette(
    routes=[
        Route("/api/posts", list_posts, methods=["GET"]),
        Route("/api/posts", create_post, methods=["POST"]),
        Route("/api/posts/{post_id:int}", get_post, methods=["GET"]),
    ],
    lifespan=lifespan,
)
