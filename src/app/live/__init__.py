"""The live timeline: new and deleted posts, pushed to every subscriber on every worker.

On PostgreSQL, the views announce each write once it has committed (``announcer.py``), each
worker's one listening connection carries the announcements of every worker of every instance,
and fans them out to its own subscribers (``listener.py``, ``hub.py``). On SQLite, a single
process, the views that write publish in-process instead. ``api/stream.py`` serves it as
Server-Sent Events.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any

import asyncpg
from flask import current_app
from flask_greenlet import AsyncFlask
from sqlalchemy.engine import make_url

from ..config import Settings
from ..database import BUSY_OR_DOWN, db
from ..database_url import DatabaseOptions, asyncpg_connect_args
from ..draining import drain
from ..redis_connection import redis_client
from ..store.posts import PostRow, find_posts, select_posts_newer
from .announcer import Announcer, RecentIds
from .events import HEARTBEAT, delete_event, edit_event, post_event
from .hub import Hub
from .listener import Listener
from .places import LocalPlaces, Places, SharedPlaces

log = logging.getLogger(__name__)

# Announced posts a worker reads in one query, and how often it tries before it gives up on them.
READ_AT_ONCE = 500
READ_ATTEMPTS = 20
READ_AGAIN_AFTER_S = 0.25
ANNOUNCE_AT_STOP_S = 2.0  # a stopping worker sends what it still has to announce, this long at most

EncodePost = Callable[[PostRow], bytes]  # a post as the API's JSON document


class LiveTimeline:
    """The Flask extension; wired with ``init_app``, used by the views that write posts."""

    def init_app(self, app: AsyncFlask, settings: Settings, *, encode_post: EncodePost) -> None:
        state = app.extensions["live"] = _LiveState(settings, encode_post)
        app.before_serving(state.start)
        app.after_serving(state.stop)
        drain.when_started(app, state.end_streams)

    @staticmethod
    def subscriber_count(app: AsyncFlask) -> int:
        return app.extensions["live"].hub.subscribers  # type: ignore[no-any-return]

    @property
    def hub(self) -> Hub:
        return _state().hub

    async def subscribe(self, *, address: str, user_id: int | None) -> Subscription:
        """A place for one more stream: ``WorkerFull`` when this worker holds all it can,
        ``TooManyStreams`` when this address or user holds its share already."""
        state = _state()
        if not state.hub.subscribe():
            raise WorkerFull()
        owners = state.owners(address, user_id)
        place = secrets.token_hex(8)
        if owners and not await state.places.take(owners, place):
            state.hub.unsubscribe()
            raise TooManyStreams()
        return Subscription(state.hub, state.places, owners, place)

    # The views call these once the write has committed, never before: only what is in the
    # database is announced.

    def post_created(self, row: PostRow) -> None:
        """Announce a post the view just wrote."""
        state = _state()
        if state.announcer is not None:
            state.announcer.announce("post", row[0])
        else:
            state.publish_post(row)

    def post_edited(self, row: PostRow) -> None:
        """Announce a post the view just edited."""
        state = _state()
        if state.announcer is not None:
            state.announcer.announce("edit", row[0])
        else:
            state.hub.publish(edit_event(state.encode_post(row)))

    def post_deleted(self, post_id: int) -> None:
        """Announce a post the view just deleted."""
        state = _state()
        if state.announcer is not None:
            state.announcer.announce("delete", post_id)
        else:
            state.hub.publish(delete_event(post_id))


class WorkerFull(Exception):
    """This worker holds all the live streams it can."""


class TooManyStreams(Exception):
    """The client address, or the signed-in user, holds its share of live streams already."""


class Subscription:
    """One open stream: its place in the hub and its owners' places, given back exactly once."""

    def __init__(self, hub: Hub, places: Places, owners: dict[str, int], place: str) -> None:
        self.hub, self.places, self.owners, self.place = hub, places, owners, place
        self.read_up_to = hub.sequence  # news from here on is for this subscriber
        self._ended = False

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self.hub.unsubscribe()
            if self.owners:
                self.places.give_back(self.owners, self.place)


class _LiveState:
    def __init__(self, settings: Settings, encode_post: EncodePost) -> None:
        self.settings = settings
        self.encode_post = encode_post
        self.hub = Hub(max_subscribers=settings.live_max_subscribers)
        self.listener: Listener | None = None
        self.announcer: Announcer | None = None  # None: this worker publishes in-process
        self.published = RecentIds()
        self._waiting: dict[int, str] = {}  # announced, not yet read: post id -> "post" or "edit"
        self._fetching = False
        self.heartbeat: asyncio.Task[None] | None = None
        self.newest_post_id = 0
        self.places: Places = LocalPlaces()

    def owners(self, address: str, user_id: int | None) -> dict[str, int]:
        """Whose share a new stream counts against, each with its cap (0 turns a cap off)."""
        owners = {}
        if cap := self.settings.live_max_streams_per_address:
            owners[f"address:{address}"] = cap
        if user_id is not None and (cap := self.settings.live_max_streams_per_user):
            owners[f"user:{user_id}"] = cap
        return owners

    async def start(self) -> None:
        self.hub = Hub(max_subscribers=self.settings.live_max_subscribers)
        self.places = self._places()
        every = self.settings.live_heartbeat_seconds
        self.heartbeat = asyncio.get_running_loop().create_task(self.hub.beat(every, HEARTBEAT))
        url = self.settings.database_direct_url or self.settings.database_url
        if self.settings.is_sqlite:
            return
        if self.settings.database_options.pgbouncer and not self.settings.database_direct_url:
            log.error(
                "live timeline: LISTEN needs a direct connection, not PgBouncer's transaction "
                "pooling; set DATABASE_DIRECT_URL. Until then each worker only sees its own posts."
            )
            return
        listener = Listener(lambda: self._connect(url), self._on_notice, self._catch_up)
        timeout = self.settings.db_query_timeout
        self.announcer = Announcer(lambda payload: listener.notify(payload, limit_s=timeout))
        self.listener = listener
        listener.start()
        self.announcer.start()

    def _places(self) -> Places:
        settings = self.settings
        if not settings.redis_url:
            return LocalPlaces()
        redis = redis_client(
            settings.redis_url,
            tls_verify=settings.redis_tls_verify,
            ca_file=settings.redis_tls_ca_file,
        )
        return SharedPlaces(redis, prefix=f"{settings.rate_limit_prefix}live:")

    async def stop(self) -> None:
        self.hub.close()
        await self.places.close()
        if self.heartbeat is not None:
            self.heartbeat.cancel()
            await asyncio.gather(self.heartbeat, return_exceptions=True)
            self.heartbeat = None
        if self.announcer is not None:
            await self.announcer.stop(within_s=ANNOUNCE_AT_STOP_S)
            self.announcer = None
        if self.listener is not None:
            await self.listener.stop()
            self.listener = None

    def end_streams(self) -> None:
        self.hub.close()

    async def _connect(self, url: str) -> asyncpg.Connection:
        parsed = make_url(url)
        direct = bool(self.settings.database_direct_url)
        options = DatabaseOptions() if direct else self.settings.database_options
        args = asyncpg_connect_args(
            replace(options, pgbouncer=False),  # this connection never goes through a pooler
            timeout=self.settings.db_query_timeout,
            statement_timeout_ms=0,
        )
        args["server_settings"]["application_name"] = "microblog-live"
        # It commits only announcements: none of them needs to wait for the disk.
        args["server_settings"]["synchronous_commit"] = "off"
        args.pop("command_timeout")  # the connection sits idle, waiting for notifications
        if "ssl" in parsed.query and "ssl" not in args:
            args["ssl"] = parsed.query["ssl"]
        dsn = parsed.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
        return await asyncpg.connect(dsn, **args)

    def _on_notice(self, kind: str, post_id: int) -> Coroutine[Any, Any, None] | None:
        if kind == "delete":
            self.hub.publish(delete_event(post_id))
        elif kind == "post" and post_id in self.published:
            pass  # caught up on, or announced twice: published already
        elif not self.hub.subscribers:  # nobody to tell: spare the database the read
            if kind == "post":
                self.newest_post_id = max(self.newest_post_id, post_id)
        else:
            self._waiting.setdefault(post_id, kind)  # a new post is read with its latest edit
            if not self._fetching:
                self._fetching = True
                return self._publish_waiting()
        return None

    async def _publish_waiting(self) -> None:
        """Read the announced posts that wait, many in one query, and publish them, until none
        wait: a worker reads once per batch, not once per post, however fast posts come."""
        try:
            while self._waiting:
                post_ids = list(itertools.islice(self._waiting, READ_AT_ONCE))
                rows = await self._read_posts(post_ids)
                kinds = {post_id: self._waiting.pop(post_id) for post_id in post_ids}
                for row in rows:
                    if kinds[row[0]] == "post":
                        self.publish_post(row)
                    else:
                        self.hub.publish(edit_event(self.encode_post(row)))
        finally:
            self._fetching = False

    async def _read_posts(self, post_ids: list[int]) -> Sequence[PostRow]:
        """The posts, asked again while the database is busy or down; none after a while."""
        for _ in range(READ_ATTEMPTS):
            try:
                async with db.connect() as conn:
                    return await find_posts(conn, post_ids)
            except BUSY_OR_DOWN as failure:
                last_failure = failure
                await asyncio.sleep(READ_AGAIN_AFTER_S)
        log.warning("live timeline: %d posts unpublished: %r", len(post_ids), last_failure)
        return []

    async def _catch_up(self) -> None:
        async with db.connect() as conn:
            rows = await select_posts_newer(conn, after=self.newest_post_id, limit=1000)
        for row in rows:
            self.publish_post(row)

    def publish_post(self, row: PostRow) -> None:
        if row[0] in self.published:
            return
        self.published.add(row[0])
        self.newest_post_id = max(self.newest_post_id, row[0])
        self.hub.publish(post_event(row[0], self.encode_post(row)), post_id=row[0])


def _state() -> _LiveState:
    return current_app.extensions["live"]  # type: ignore[no-any-return]


live = LiveTimeline()
