"""Reads on a real hot standby: a primary and a streaming replica of the test's own (initdb,
pg_basebackup, free ports). The replica is made stale on purpose by pausing its replay, and
stopped mid-run; the shared server is never touched."""

import asyncio
import re

import asyncpg
import httpx
import pytest
from support.accounts import login, register, register_api_user
from support.databases import make_settings, reset_schema
from support.processes import standby_of, throwaway_cluster

from app import create_asgi_app

pytestmark = pytest.mark.processes

MAX_LAG_S = 1.0


@pytest.fixture
def primary_and_standby():
    with throwaway_cluster() as primary, standby_of(primary) as standby:
        yield primary, standby


@pytest.fixture
async def served(primary_and_standby):
    primary, standby = primary_and_standby
    settings = make_settings(
        primary.url,
        database_replica_url=standby.url,
        replica_max_lag_s=MAX_LAG_S,
        replica_read_your_writes_s=3.0,
        db_query_timeout=2,
    )
    asgi_app = create_asgi_app(settings)
    await asgi_app.flask_app.startup()
    await reset_schema(asgi_app.flask_app)
    yield asgi_app
    await asgi_app.flask_app.shutdown()


def client_of(asgi_app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi_app), base_url="http://t")


async def reads_on(client, target: str) -> float:
    metrics = (await client.get("/metrics")).text
    found = re.search(rf'microblog_db_reads_total{{target="{target}"}} ([0-9.]+)', metrics)
    return float(found.group(1)) if found else 0.0


async def replica_caught_up(client, standby_url: str, within_s: float = 10.0) -> None:
    """Until an anonymous read is served by the replica (the schema and rows replayed)."""
    for _ in range(int(within_s / 0.1)):
        before = await reads_on(client, "replica")
        await client.get("/api/posts")
        if await reads_on(client, "replica") > before:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the replica never served a read")


async def set_replay(standby_url: str, paused: bool) -> None:
    conn = await asyncpg.connect(standby_url.replace("+asyncpg", ""))
    try:
        await conn.execute(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()")
    finally:
        await conn.close()


def newest_ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [post["id"] for post in response.json()["items"]]


async def test_a_writer_reads_its_post_back_at_once_while_the_replica_is_stale(
    served, primary_and_standby
):
    _, standby = primary_and_standby
    async with client_of(served) as writer, client_of(served) as stranger:
        user = await register_api_user(writer, "rhea")
        await replica_caught_up(stranger, standby.url)
        await set_replay(standby.url, paused=True)
        try:
            for round_ in range(5):
                await replica_caught_up(stranger, standby.url)  # usable again: lag within bound
                posted = await writer.post(
                    "/api/posts", json={"body": f"round {round_}"}, headers=user.auth
                )
                assert posted.status_code == 201, posted.text
                post_id = posted.json()["id"]
                # By id, anyone finds it: a miss on the replica is asked of the primary.
                assert (await stranger.get(f"/api/posts/{post_id}")).status_code == 200
                # The writer carries the read-your-writes cookie: its list is the primary's.
                assert post_id in newest_ids(await writer.get("/api/posts"))
                # A stranger's list came from the stale replica: the post is not there yet...
                stale = newest_ids(await stranger.get("/api/posts"))
                assert post_id not in stale
                # ...until the replica lags past the bound, and reads skip it.
                await asyncio.sleep(MAX_LAG_S + 0.6)
                assert post_id in newest_ids(await stranger.get("/api/posts"))
                # Resumed, the replica replays the post and serves reads again.
                await set_replay(standby.url, paused=False)
                await replica_caught_up(stranger, standby.url)
                assert post_id in newest_ids(await stranger.get("/api/posts"))
                await set_replay(standby.url, paused=True)
        finally:
            await set_replay(standby.url, paused=False)


async def test_a_browser_sees_its_post_on_the_page_it_is_sent_to(served, primary_and_standby):
    _, standby = primary_and_standby
    async with client_of(served) as browser, client_of(served) as stranger:
        assert (await register(browser, "iris")).status_code in (302, 303)
        assert (await login(browser, "iris")).status_code in (302, 303)
        await replica_caught_up(stranger, standby.url)
        await set_replay(standby.url, paused=True)
        try:
            page = await browser.get("/")
            token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)
            assert token
            await replica_caught_up(stranger, standby.url)
            sent = await browser.post(
                "/", data={"csrf_token": token.group(1), "body": "seen at once"},
                follow_redirects=True,
            )  # fmt: skip
            assert sent.status_code == 200
            assert "seen at once" in sent.text
            assert "seen at once" not in (await stranger.get("/")).text  # the stale replica's
        finally:
            await set_replay(standby.url, paused=False)


async def test_a_replica_stopped_mid_run_sends_reads_to_the_primary_without_an_error(
    served, primary_and_standby
):
    _, standby = primary_and_standby
    async with client_of(served) as client:
        user = await register_api_user(client, "sol")
        post_id = (
            await client.post("/api/posts", json={"body": "kept"}, headers=user.auth)
        ).json()["id"]
        await replica_caught_up(client, standby.url)
        paths = ["/api/posts", f"/api/posts/{post_id}", "/api/users/sol", "/", "/user/sol"]
        statuses: list[int] = []

        async def read_for(seconds: float) -> None:
            loop = asyncio.get_running_loop()
            until = loop.time() + seconds
            async with client_of(served) as reader:  # no read-your-writes cookie
                while loop.time() < until:
                    for path in paths:
                        statuses.append((await reader.get(path)).status_code)

        readers = [asyncio.create_task(read_for(4.0)) for _ in range(4)]
        await asyncio.sleep(1.0)
        before_stop = len(statuses)
        await asyncio.to_thread(standby.pg_ctl, "stop", "-m", "immediate")
        await asyncio.gather(*readers)
        after_stop = statuses[before_stop:]
        assert before_stop > 0 and len(after_stop) > 20
        assert set(statuses) == {200}, sorted(set(statuses))
        assert await reads_on(client, "primary") > 0
