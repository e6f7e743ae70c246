"""Write throughput past one instance, and what announcing each write to the live timeline costs.

    .venv/bin/python bench/write_scaling.py [--seconds 8] [--rounds 3] [--before REF]

PostgreSQL serialises every committing transaction that calls ``NOTIFY`` on one database-wide
lock, held while its commit is flushed, so writes that notify in their own transaction commit
one at a time. Two measurements, both on the bench database and the shared PostgreSQL:

1. **The database alone.** K connections (1 to 64) insert posts as fast as they can, with the
   app's token-checked insert, three ways: announcing nothing; ``pg_notify`` in the writing
   statement (the app until it moved the announcement, ``BEFORE``); and announced after the
   commit by the app's own ``Announcer``, one per four writers, in batches on a connection
   that commits without waiting for the disk (the app now). A listener counts what arrives.
2. **The app.** N instances (1, 2 and 4) of one uvicorn worker each, unpinned on the
   machine's cores, each loaded by its own ``wrk`` (32 connections) writing posts, with one
   live subscriber counting the posts it is sent. The app as it is, and the app at ``--before``
   (a git worktree of that commit, served from the same virtual environment), interleaved.

Medians of the rounds; writes a markdown report to ``bench/results/``. Exit status 1 when a
write failed or an announced run lost or repeated an announcement.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import databases
import httpx
from load import LUA, LoadResult, parse_wrk
from servers import Server
from stacks import OURS, REPO, STACKS_BY_NAME

from app.live.announcer import Announcer, parse_announcements

RESULTS = Path(__file__).resolve().parent / "results"
# The last commit whose writes notify in their own transaction.
BEFORE = "b1f70bb"
CHANNEL = "bench_live"
FIRST_PORT = 18201
CONNECTIONS_PER_INSTANCE = 32
WRITERS_PER_ANNOUNCER = 4  # the database part's stand-in for a worker

# The app's write on a bearer token's word, as store/posts.py builds it.
INSERT = """
INSERT INTO posts (body, author_id, created_at)
SELECT $1, tokens.user_id, now() FROM tokens
WHERE tokens.token_hash = $2 AND tokens.expires_at > now()
RETURNING posts.id, posts.created_at,
    (SELECT users.username FROM users WHERE users.id = posts.author_id), posts.author_id
"""
INSERT_AND_NOTIFY = f"""
WITH inserted AS ({INSERT})
SELECT inserted.*, pg_notify('{CHANNEL}', 'post:' || inserted.id) FROM inserted
"""


@dataclass
class Heard:
    ids: list[int] = field(default_factory=list)

    def counts(self) -> tuple[int, int]:
        """(distinct ids, repeats)"""
        return len(set(self.ids)), len(self.ids) - len(set(self.ids))


async def database_run(mode: str, writers: int, seconds: float, token: str) -> tuple[float, int]:
    """Commits a second with ``writers`` connections, and announcements lost or repeated."""
    dsn = databases.url(databases.FAST_DB)
    digest = hashlib.sha256(token.encode()).hexdigest()
    heard = Heard()
    listener = await asyncpg.connect(dsn)
    await listener.add_listener(
        CHANNEL, lambda *a: heard.ids.extend(i for _, i in parse_announcements(a[3]))
    )
    announcers: list[Announcer] = []
    announcing: list[asyncpg.Connection] = []
    if mode == "after commit":
        for _ in range(max(1, writers // WRITERS_PER_ANNOUNCER)):
            conn = await asyncpg.connect(dsn, server_settings={"synchronous_commit": "off"})
            announcing.append(conn)
            announcers.append(Announcer(_sender(conn)))
            announcers[-1].start()
    statement = INSERT_AND_NOTIFY if mode == "in the write" else INSERT
    committed: list[int] = []
    deadline = time.monotonic() + seconds

    async def write(n: int) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            sent = 0
            while time.monotonic() < deadline:
                row = await conn.fetchrow(statement, f"bench db {n}-{sent}", digest)
                sent += 1
                committed.append(row[0])
                if announcers:
                    announcers[n % len(announcers)].announce("post", row[0])
        finally:
            await conn.close()

    started = time.monotonic()
    await asyncio.gather(*(write(n) for n in range(writers)))
    elapsed = time.monotonic() - started
    for announcer in announcers:
        await announcer.stop(within_s=5)
    for conn in announcing:
        await conn.close()
    await asyncio.sleep(0.5)
    await listener.close()
    off = 0
    if mode != "plain":
        distinct, repeats = heard.counts()
        off = (len(committed) - distinct) + repeats
    return len(committed) / elapsed, off


def _sender(conn: asyncpg.Connection) -> Callable[[str], Awaitable[None]]:
    async def send(payload: str) -> None:
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)

    return send


@dataclass
class AppRun:
    writes_per_s: float
    p99_ms: float
    failed: int
    announced_off: int  # posts committed but not sent to the subscriber, or sent twice


async def app_run(
    instances: int, checkout: Path | None, seeded: databases.Seeded, args: argparse.Namespace
) -> AppRun:
    stack = STACKS_BY_NAME[OURS]
    stack = replace(
        stack,
        extra_env={**stack.extra_env, "DB_POOL_SIZE": "10", "DB_MAX_CONNECTIONS": "11"},
    )
    label = "before" if checkout else "after"
    servers = [
        Server(
            replace(stack, port=FIRST_PORT + n),
            databases.url(databases.FAST_DB),
            RESULTS / "write_scaling" / f"{label}-{instances}-{n}.log",
            pinned=False,
            checkout=checkout,
        )
        for n in range(instances)
    ]
    started: list[Server] = []
    try:
        for server in servers:
            started.append(server.__enter__())
        heard = Heard()
        async with httpx.AsyncClient(base_url=servers[0].base_url, timeout=None) as client:
            listening = asyncio.create_task(_subscribe(client, heard))
            await asyncio.sleep(0.5)
            results = await asyncio.gather(
                *(_wrk(server.base_url, args.seconds, seeded.token) for server in servers)
            )
            await asyncio.sleep(1.5)  # the last announcements arrive
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
    finally:
        for server in started:
            server.stop()
    committed = {post_id for post_id, _ in databases.posts_after(seeded.max_post_id)}
    repeats = len(heard.ids) - len(set(heard.ids))
    return AppRun(
        writes_per_s=sum(result.rps for result in results),
        p99_ms=max(result.p99_ms for result in results),
        failed=sum(result.errors for result in results),
        announced_off=len(committed ^ set(heard.ids)) + repeats,
    )


async def _subscribe(client: httpx.AsyncClient, heard: Heard) -> None:
    async with client.stream("GET", "/api/posts/stream") as response:
        async for line in response.aiter_lines():
            if line.startswith("id:"):  # only a new post's event has an id
                heard.ids.append(int(line.partition(":")[2]))


async def _wrk(base_url: str, seconds: float, token: str) -> LoadResult:
    tag = f"w{time.monotonic_ns()}"
    process = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{CONNECTIONS_PER_INSTANCE}", f"-d{seconds}s", "--latency",
        "-s", str(LUA / "write_post.lua"),
        f"{base_url}/api/posts", "--", tag, token,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), seconds + 30)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed: {err.decode()}")
    return parse_wrk(out.decode())


def _worktree(ref: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="microblog-before-"))
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), ref],
        check=True,
        capture_output=True,
    )
    return folder


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run(args: argparse.Namespace) -> int:
    before = _worktree(args.before) if args.before != "none" else None
    try:
        return asyncio.run(main(args, before))
    finally:
        if before is not None:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)],
                check=False,
                capture_output=True,
            )


async def main(args: argparse.Namespace, before: Path | None) -> int:
    seeded = databases.create_fast_database(users=100, posts=10_000)
    modes = ("plain", "in the write", "after commit")
    database: dict[tuple[str, int], list[float]] = {}
    app: dict[tuple[str, int], list[AppRun]] = {}
    database_off = 0
    for _ in range(args.rounds):
        for writers in args.writers:
            for mode in modes:
                rate, off = await database_run(mode, writers, args.db_seconds, seeded.token)
                database.setdefault((mode, writers), []).append(rate)
                database_off += off
                databases.delete_posts_after(seeded.max_post_id)
        for instances in args.instances:
            for label, checkout in (("before", before), ("after", None)):
                if label == "before" and checkout is None:
                    continue
                run = await app_run(instances, checkout, seeded, args)
                app.setdefault((label, instances), []).append(run)
                databases.delete_posts_after(seeded.max_post_id)
    text = report(args, database, database_off, app)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"write-scaling-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.md").write_text(text + "\n")
    failed = sum(run.failed for runs in app.values() for run in runs)
    lost = sum(run.announced_off for runs in app.values() for run in runs) + database_off
    return 1 if failed or lost else 0


def report(
    args: argparse.Namespace,
    database: dict[tuple[str, int], list[float]],
    database_off: int,
    app: dict[tuple[str, int], list[AppRun]],
) -> str:
    lines = [
        f"# Write scaling, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`bench/write_scaling.py --rounds {args.rounds} --seconds {args.seconds}"
        f" --before {args.before}`; medians of {args.rounds} rounds.",
        "",
        f"## The database alone (commits/s, {args.db_seconds} s a run)",
        "",
        "| writers | no announcement | `pg_notify` in the write | announced after commit |"
        " in the write ÷ none | after commit ÷ none |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for writers in args.writers:
        plain, inside, after = (
            _median(database[(mode, writers)]) for mode in ("plain", "in the write", "after commit")
        )
        lines.append(
            f"| {writers} | {plain:,.0f} | {inside:,.0f} | {after:,.0f} |"
            f" {inside / plain:.2f} | {after / plain:.2f} |"
        )
    lines += [
        "",
        f"Announcements lost or repeated: {database_off}.",
        "",
        f"## The app: N instances writing (writes/s, {args.seconds} s a run)",
        "",
        "| instances | before | after | after ÷ before | p99 before / after |"
        " after ÷ one instance | lost, repeated or failed (before/after) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    one = _median([run.writes_per_s for run in app.get(("after", args.instances[0]), [])])
    for instances in args.instances:
        after_runs = app.get(("after", instances), [])
        before_runs = app.get(("before", instances), [])
        after = _median([run.writes_per_s for run in after_runs])
        earlier = _median([run.writes_per_s for run in before_runs])
        p99s = (
            f"{_median([r.p99_ms for r in before_runs]):.0f} / "
            f"{_median([r.p99_ms for r in after_runs]):.0f} ms"
        )
        off = "/".join(
            str(sum(run.announced_off + run.failed for run in runs))
            for runs in (before_runs, after_runs)
        )
        lines.append(
            f"| {instances} | {earlier:,.0f} | {after:,.0f} | {after / earlier:.2f} | {p99s} |"
            f" {after / one:.2f} | {off} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--db-seconds", type=float, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", default=BEFORE, help="a commit to compare with, or none")
    parser.add_argument("--instances", type=lambda s: [int(n) for n in s.split(",")],
                        default=[1, 2, 4])  # fmt: skip
    parser.add_argument("--writers", type=lambda s: [int(n) for n in s.split(",")],
                        default=[1, 4, 16, 64])  # fmt: skip
    sys.exit(run(parser.parse_args()))
