"""The live timeline: GET /api/posts/stream pushes new and deleted posts as they happen, to
every subscriber of every worker and instance, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url
from support.accounts import register_api_user
from support.databases import terminate_backends
from support.processes import uvicorn_serving

pytestmark = pytest.mark.processes

METRICS_TOKEN = "live-metrics-token-" + "Pq3Rs8Tu1Vw6Xy0Za5Bc9De"
OPEN_LIMITS = {"RATE_LIMIT_REGISTER_ADDRESS": "off", "RATE_LIMIT_SIGN_IN_ADDRESS": "off"}


class Subscriber:
    """One open stream, read event by event."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next_event(self, timeout: float = 5) -> dict[str, str]:
        """The next event (or comment, as {"comment": ...}), fields by name."""
        event: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line == "":
                    if event:
                        return event
                    continue
                if line.startswith(":"):
                    return {"comment": line[1:].strip()}
                name, _, value = line.partition(":")
                event[name] = value.removeprefix(" ")
        raise AssertionError("the stream ended")

    async def next_named(self, name: str, timeout: float = 5) -> dict[str, str]:
        while True:
            event = await self.next_event(timeout)
            if event.get("event") == name:
                return event


@asynccontextmanager
async def subscribed(client: httpx.AsyncClient, headers: dict[str, str] | None = None):
    asked = {"Accept-Encoding": "gzip, br, zstd", **(headers or {})}
    async with client.stream("GET", "/api/posts/stream", headers=asked) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in response.headers  # each event leaves at once
        subscriber = Subscriber(response)
        assert "retry" in await subscriber.next_event()  # the stream is open
        yield subscriber


@pytest.fixture
def live_database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'live.sqlite3'}"
    return request.getfixturevalue("postgres_available")


both_databases = pytest.mark.parametrize(
    "live_database_url",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)


@pytest.fixture
async def live_client(live_database_url):
    """A client of a real uvicorn on the parametrized database, and alice, who writes."""
    async with (
        uvicorn_serving(live_database_url, env=OPEN_LIMITS) as (base_url, _),
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        yield client, await register_api_user(client, "alice")


async def write(client, user, body):
    response = await client.post("/api/posts", json={"body": body}, headers=user.auth)
    assert response.status_code == 201
    return response.json()


@both_databases
async def test_new_and_deleted_posts_reach_a_subscriber(live_client):
    client, alice = live_client
    async with subscribed(client) as subscriber:
        post = await write(client, alice, "live from the test")
        event = await subscriber.next_named("post")
        assert event["id"] == str(post["id"])
        assert json.loads(event["data"]) == (await client.get(f"/api/posts/{post['id']}")).json()

        assert (
            await client.delete(f"/api/posts/{post['id']}", headers=alice.auth)
        ).status_code == 204
        deleted = await subscriber.next_named("delete")
        assert json.loads(deleted["data"]) == {"id": post["id"]}
        assert "id" not in deleted  # a resuming client goes on from the newest post


@both_databases
async def test_an_edited_post_reaches_a_subscriber_whole_and_without_an_event_id(live_client):
    client, alice = live_client
    post = await write(client, alice, "first draft")
    async with subscribed(client) as subscriber:
        edited = await client.patch(
            f"/api/posts/{post['id']}", json={"body": "second draft"}, headers=alice.auth
        )
        assert edited.status_code == 200
        event = await subscriber.next_named("edit")
        assert "id" not in event  # Last-Event-ID stays a post id
        document = json.loads(event["data"])
        assert document == (await client.get(f"/api/posts/{post['id']}")).json()
        assert document["body"] == "second draft" and document["edited_at"] is not None


@both_databases
async def test_last_event_id_resumes_without_a_gap_or_a_repeat(live_client):
    client, alice = live_client
    seen = [await write(client, alice, f"before {n}") for n in range(3)]
    async with subscribed(client, {"Last-Event-ID": str(seen[0]["id"])}) as subscriber:
        missed = [await subscriber.next_named("post") for _ in range(2)]
        assert [int(e["id"]) for e in missed] == [seen[1]["id"], seen[2]["id"]]
        after = await write(client, alice, "after")
        assert int((await subscriber.next_named("post"))["id"]) == after["id"]
    bad = await client.get("/api/posts/stream", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"


async def test_an_idle_stream_gets_heartbeats(tmp_path):
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'live.sqlite3'}"
    env = {"LIVE_HEARTBEAT_SECONDS": "0.2"}
    async with (
        uvicorn_serving(database_url, env=env) as (base_url, _),
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
        subscribed(client) as subscriber,
    ):
        assert await subscriber.next_event(timeout=2) == {"comment": "heartbeat"}


async def test_past_the_subscriber_cap_a_client_gets_503(tmp_path):
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'live.sqlite3'}"
    async with (
        uvicorn_serving(database_url, env={"LIVE_MAX_SUBSCRIBERS": "2"}) as (base_url, _),
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        async with subscribed(client), subscribed(client):
            refused = await client.get("/api/posts/stream")
            assert refused.status_code == 503
            assert refused.headers["content-type"] == "application/problem+json"
        # The server gives a place back once it notices the disconnect, which takes a moment.
        assert await _subscribes_within(client, seconds=5)


async def _subscribes_within(client: httpx.AsyncClient, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        async with client.stream("GET", "/api/posts/stream") as response:
            if response.status_code == 200:
                return True
            assert response.status_code == 503
        await asyncio.sleep(0.05)
    return False


@asynccontextmanager
async def two_instances(database_url):
    """Clients of two instances on one database: the first of two workers, the second of one."""
    env = {**OPEN_LIMITS, "WEB_CONCURRENCY": "2", "REDIS_URL": "redis://127.0.0.1:6379/0"}
    async with (
        uvicorn_serving(database_url, env=env, args=("--workers", "2")) as (first, _),
        uvicorn_serving(database_url, env=OPEN_LIMITS, fresh_schema=False) as (second, _),
        httpx.AsyncClient(base_url=first, timeout=10) as on_first,
        httpx.AsyncClient(base_url=second, timeout=10) as on_second,
    ):
        yield on_first, on_second


async def test_a_post_on_one_instance_reaches_subscribers_of_every_worker_of_another(
    postgres_available,
):
    started = await _database_now(postgres_available)
    async with two_instances(postgres_available) as (reader, writer):
        alice = await register_api_user(writer, "alice")
        async with asyncio.TaskGroup() as group:
            streams = [group.create_task(_open(reader)) for _ in range(6)]
        subscribers = [task.result() for task in streams]
        try:
            post = await write(writer, alice, "from the other instance")
            events = await asyncio.gather(*(s.next_named("post") for s in subscribers))
            assert {int(e["id"]) for e in events} == {post["id"]}
            workers = await _listening_workers(postgres_available, started)
            assert workers == 3  # one listening connection per worker, not per subscriber
        finally:
            for subscriber in subscribers:
                await subscriber.response.aclose()


async def test_writes_at_once_on_two_instances_reach_every_subscriber_exactly_once(
    postgres_available,
):
    async with two_instances(postgres_available) as (on_first, on_second):
        writers = [await register_api_user(on_first, f"writer{n}") for n in range(8)]
        async with asyncio.TaskGroup() as group:
            streams = [group.create_task(_open(c)) for c in (on_first, on_first, on_second)]
        subscribers = [task.result() for task in streams]
        try:

            async def write_then_delete_one(n, user):
                client, other = (on_first, on_second) if n % 2 else (on_second, on_first)
                ids = [(await write(client, user, f"{n}-{i}"))["id"] for i in range(25)]
                gone = await other.delete(f"/api/posts/{ids[0]}", headers=user.auth)
                assert gone.status_code == 204
                return ids

            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(write_then_delete_one(n, u)) for n, u in enumerate(writers)
                ]
            written = sorted(i for task in tasks for i in task.result())
            deleted = sorted(task.result()[0] for task in tasks)
            for subscriber in subscribers:
                posts, deletes = [], []
                while len(posts) < len(written) or len(deletes) < len(deleted):
                    event = await subscriber.next_event()
                    if event.get("event") == "post":
                        posts.append(int(event["id"]))
                    elif event.get("event") == "delete":
                        deletes.append(json.loads(event["data"])["id"])
                assert sorted(posts) == written  # every post, each once
                assert sorted(deletes) == deleted
            with pytest.raises(TimeoutError):
                await subscribers[0].next_named("post", timeout=1)  # and none again
        finally:
            for subscriber in subscribers:
                await subscriber.response.aclose()


async def test_a_subscriber_gets_every_post_while_writers_keep_its_worker_s_pool_full(
    postgres_available,
):
    # Two pooled connections, and a request that cannot have one within 50 ms gets a 503:
    # reading the announced posts competes with the writes for the pool, and must win in the end.
    env = {**OPEN_LIMITS, "DB_MAX_CONNECTIONS": "3", "DB_QUEUE_MAX_WAIT": "0.05"}
    async with (
        uvicorn_serving(postgres_available, env=env) as (base_url, _),
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
        subscribed(client) as subscriber,
    ):
        writers = [await register_api_user(client, f"writer{n}") for n in range(4)]

        async def write_until_written(user, n):
            ids = []
            while len(ids) < 30:
                response = await client.post(
                    "/api/posts", json={"body": f"{n}-{len(ids)}"}, headers=user.auth
                )
                if response.status_code == 201:
                    ids.append(response.json()["id"])
                else:
                    assert response.status_code == 503  # turned away at the pool: try again
            return ids

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(write_until_written(writers[n % 4], n)) for n in range(16)]
        written = sorted(i for task in tasks for i in task.result())
        heard = [int((await subscriber.next_named("post", timeout=10))["id"]) for _ in written]
        assert sorted(heard) == written


async def _open(client):
    request = client.build_request("GET", "/api/posts/stream")
    response = await client.send(request, stream=True)
    subscriber = Subscriber(response)
    await subscriber.next_event()
    return subscriber


async def _database_now(database_url):
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        return await conn.fetchval("SELECT clock_timestamp()")
    finally:
        await conn.close()


async def _listening_workers(database_url, since):
    """Listening connections opened since ``since`` (earlier tests' may linger a moment)."""
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
            "AND application_name = 'microblog-live' AND backend_start > $2",
            make_url(database_url).database,
            since,
        )
    finally:
        await conn.close()


async def test_a_lost_listening_connection_comes_back_and_catches_up(postgres_available):
    env = {**OPEN_LIMITS, "METRICS_TOKEN": METRICS_TOKEN}
    async with (
        uvicorn_serving(postgres_available, env=env) as (base_url, _),
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
        subscribed(client) as subscriber,
    ):
        alice = await register_api_user(client, "alice")
        terminated = await _database_now(postgres_available)
        # Only this server's listener: the run's own database, by pid.
        ended = await terminate_backends(postgres_available, "application_name = 'microblog-live'")
        assert ended == 1
        written_while_deaf = await write(client, alice, "while nobody listened")
        event = await subscriber.next_named("post", timeout=10)
        assert int(event["id"]) == written_while_deaf["id"]
        assert await _listening_workers(postgres_available, terminated) == 1  # it came back
        await asyncio.sleep(1.2)  # each worker writes its gauges every second
        metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert "microblog_live_listener_reconnects_total 1.0" in metrics.text
        assert "microblog_live_subscribers 1.0" in metrics.text
        with pytest.raises(TimeoutError):  # caught up on, and announced once back: sent once
            await subscriber.next_named("post", timeout=1)


async def test_sigterm_ends_open_streams_at_once(tmp_path):
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'live.sqlite3'}"
    args = ("--timeout-graceful-shutdown", "20")
    async with (
        uvicorn_serving(database_url, args=args) as (base_url, process),
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
        subscribed(client) as subscriber,
    ):
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        with pytest.raises(AssertionError, match="the stream ended"):
            while True:
                await subscriber.next_event(timeout=5)
        exit_code = await asyncio.to_thread(process.wait, 10)
        assert exit_code in (0, -signal.SIGTERM)
        assert time.monotonic() - signalled < 3  # not the 20 s grace period
