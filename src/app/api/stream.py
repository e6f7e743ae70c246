"""API: the live timeline, as Server-Sent Events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from flask import Response, request

from ..database import db
from ..live import Subscription, TooManyStreams, WorkerFull, live
from ..live.events import post_event, retry_hint
from ..live.hub import FellBehind
from ..models import MAX_ID
from ..ratelimit import client_address
from ..store.posts import PostRow, select_posts_newer
from ..store.tokens import UserRef
from . import bp
from .contract import operation
from .problems import APIProblem
from .responses import json_bytes
from .schemas import EventStream, PostPublic, Problem

CATCH_UP_PAGE = 200
RETRY_MS = 2000
CAPPED_RETRY_AFTER_S = 10


def encode_post(row: PostRow) -> bytes:
    """A post row as the same JSON document ``GET /api/posts/<id>`` answers."""
    return json_bytes(PostPublic(*row))


@bp.get("/posts/stream")
@operation(
    auth="bearer-optional", responses={200: EventStream, 422: Problem, 429: Problem}, tag="posts"
)
async def stream_posts(user: UserRef | None) -> Response:
    """New posts (event "post", id = post id), edited ones (event "edit") and deleted ones
    (event "delete") as they happen; send Last-Event-ID to resume after a post."""
    resume_after = _last_event_id()
    try:
        subscription = await live.subscribe(
            address=client_address(), user_id=user.id if user else None
        )
    except WorkerFull:
        raise APIProblem(
            503, "This worker holds all the live streams it can; retry shortly."
        ) from None
    except TooManyStreams:
        raise APIProblem(
            429,
            "You hold as many live streams as one client may; close one first.",
            headers={"Retry-After": str(CAPPED_RETRY_AFTER_S)},
        ) from None
    response = Response(
        _events(subscription, resume_after),  # type: ignore[arg-type]
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.call_on_close(subscription.end)  # even when the stream never started
    return response


def _last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID", request.args.get("last_event_id"))
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or int(raw) > MAX_ID:
        raise APIProblem(422, "Last-Event-ID must be the id of a post.")
    return int(raw)


async def _events(subscription: Subscription, resume_after: int | None) -> AsyncIterator[bytes]:
    hub = subscription.hub
    try:
        yield retry_hint(RETRY_MS)
        caught_up: set[int] = set()
        if resume_after is not None:
            async for chunk, post_ids in _posts_since(resume_after):
                caught_up |= post_ids
                yield chunk
        sequence = subscription.read_up_to
        while True:
            try:
                events = await hub.events_after(sequence)
            except FellBehind:
                return  # too slow to keep up: the client reconnects with Last-Event-ID
            if not events:
                return  # the hub closed: the worker is stopping
            sequence = events[-1].sequence
            # A post read while catching up may be announced again just after: send it once.
            chunk = b"".join(e.encoded for e in events if e.post_id not in caught_up)
            if chunk:
                yield chunk
    finally:
        subscription.end()


async def _posts_since(post_id: int) -> AsyncIterator[tuple[bytes, set[int]]]:
    """The posts after ``post_id``, oldest first, a page (and one short connection) at a time."""
    while True:
        async with db.connect() as conn:
            rows = await select_posts_newer(conn, after=post_id, limit=CATCH_UP_PAGE)
        if not rows:
            return
        yield b"".join(post_event(row[0], encode_post(row)) for row in rows), {r[0] for r in rows}
        post_id = rows[-1][0]
