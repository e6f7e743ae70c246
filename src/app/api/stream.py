"""API: the live timeline, as Server-Sent Events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from flask import Response, request

from ..database import db
from ..live import PostRow, live
from ..live.events import post_event, retry_hint
from ..live.hub import FellBehind, Hub
from ..models import MAX_ID
from ..store.posts import select_posts_newer
from . import bp
from .contract import operation
from .problems import APIProblem
from .responses import json_bytes
from .schemas import EventStream, PostPublic, Problem

CATCH_UP_PAGE = 200
RETRY_MS = 2000


def encode_post(row: PostRow) -> bytes:
    """A post row as the same JSON document ``GET /api/posts/<id>`` answers."""
    return json_bytes(PostPublic(*row))


@bp.get("/posts/stream")
@operation(responses={200: EventStream, 422: Problem}, tag="posts")
async def stream_posts() -> Response:
    """New posts (event "post", id = post id) and deleted ones (event "delete") as they happen;
    send Last-Event-ID to resume after a post."""
    resume_after = _last_event_id()
    hub = live.hub
    if not hub.has_room():
        raise APIProblem(503, "This worker holds all the live streams it can; retry shortly.")
    subscription = _Subscription(hub)
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


class _Subscription:
    """One place among the hub's subscribers, taken now and given back exactly once."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.read_up_to = hub.sequence  # news from here on is for this subscriber
        hub.subscribers += 1
        self._ended = False

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self.hub.subscribers -= 1


async def _events(subscription: _Subscription, resume_after: int | None) -> AsyncIterator[bytes]:
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
