"""Starlette + sse-starlette + raw asyncpg: the peer for the live timeline's fan-out bench.

The same design as ours: the insert notifies a channel in the same statement, one LISTEN
connection per worker reads the post and hands the encoded event to every subscriber's queue,
and each subscriber's ``EventSourceResponse`` sends from its queue.

Serve: ``uvicorn starlette_sse:app --app-dir bench/peers`` with DATABASE_URL set.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from contract import bearer_token, clean_body, database_url, token_digest
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette_raw import BY_ID, TOKEN_USER, get_post, list_posts, post_json, problem
from starlette_raw import lifespan as raw_lifespan

CHANNEL = "microblog_posts"
INSERT_AND_NOTIFY = """
    WITH inserted AS (
        INSERT INTO posts (body, author_id) VALUES ($1, $2) RETURNING id, created_at
    )
    SELECT id, created_at, pg_notify($3, 'post:' || id) FROM inserted
"""


async def create_post(request: Request) -> JSONResponse:
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        return problem(401)
    payload = await request.json()
    body = clean_body(payload.get("body") if isinstance(payload, dict) else None)
    async with request.app.state.pool.acquire() as conn:
        user = await conn.fetchrow(TOKEN_USER, token_digest(token))
        if user is None:
            return problem(401)
        if body is None:
            return problem(422)
        post_id, created_at, _ = await conn.fetchrow(INSERT_AND_NOTIFY, body, user["id"], CHANNEL)
    post = {
        "id": post_id, "body": body, "author": user["username"], "created_at": created_at,
        "edited_at": None,
    }  # fmt: skip
    return JSONResponse(post_json(post), 201)


async def stream_posts(request: Request) -> EventSourceResponse:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1024)
    subscribers: set[asyncio.Queue[dict[str, Any]]] = request.app.state.subscribers

    async def events() -> AsyncIterator[dict[str, Any]]:
        subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            subscribers.discard(queue)

    return EventSourceResponse(events(), ping=15)


async def listen(app: Starlette, connection: asyncpg.Connection) -> None:
    async def publish(post_id: int) -> None:
        row = await app.state.pool.fetchrow(BY_ID, post_id)
        event = {"id": str(post_id), "event": "post", "data": json.dumps(post_json(row))}
        for queue in list(app.state.subscribers):
            if not queue.full():
                queue.put_nowait(event)

    def notified(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
        asyncio.get_running_loop().create_task(publish(int(payload.partition(":")[2])))

    await connection.add_listener(CHANNEL, notified)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with raw_lifespan(app):  # the pool
        app.state.subscribers = set()
        listener = await asyncpg.connect(database_url(""))
        await listen(app, listener)
        yield
        await listener.close()


app = Starlette(
    routes=[
        Route("/api/posts", list_posts, methods=["GET"]),
        Route("/api/posts", create_post, methods=["POST"]),
        Route("/api/posts/stream", stream_posts, methods=["GET"]),
        Route("/api/posts/{post_id:int}", get_post, methods=["GET"]),
    ],
    lifespan=lifespan,
)
