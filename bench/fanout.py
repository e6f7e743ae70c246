"""The live timeline's fan-out: one worker, thousands of subscribers, a steady trickle of posts.

Each stack (ours, and Starlette + sse-starlette doing the same LISTEN/NOTIFY fan-out) is served
by one uvicorn worker pinned to core 0, on the bench database. This process, pinned to core 1,
opens SUBSCRIBERS streams of GET /api/posts/stream, measures the worker's memory per
subscriber, then writes POSTS_PER_S posts a second for SECONDS seconds through the API and
times, for every post at every subscriber, the delivery after the writer's 201. Every
subscriber must see every post exactly once.

    .venv/bin/python bench/fanout.py [--subscribers 2000] [--seconds 20] [--rate 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import uvloop
from databases import FAST_DB, create_fast_database, url
from servers import Server
from stacks import REPO, STACKS_BY_NAME, Stack

RESULTS = REPO / "bench" / "results"
PEER = Stack("starlette_sse", "Starlette + sse-starlette + asyncpg", 18106, "starlette_sse:app")
TARGET_P99_MS = 250.0


@dataclass
class Subscriber:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    arrivals: dict[int, float] = field(default_factory=dict)
    duplicates: int = 0

    async def read_events(self) -> None:
        while line := await self.reader.readline():
            if line.startswith(b"id:"):
                post_id = int(line[3:].strip())
                if post_id in self.arrivals:
                    self.duplicates += 1
                else:
                    self.arrivals[post_id] = time.perf_counter()


async def subscribe(port: int) -> Subscriber:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    writer.write(
        b"GET /api/posts/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    )
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"subscribing failed: {status!r}")
    while (await reader.readline()) not in (b"\r\n", b""):
        pass  # the rest of the headers
    return Subscriber(reader, writer)


@dataclass
class Outcome:
    stack: str
    subscribers: int
    kib_per_subscriber: float
    delays_ms: list[float]
    missed: int
    duplicates: int
    posts: int

    def percentile(self, q: float) -> float:
        ordered = sorted(self.delays_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(stack: Stack, token: str, args: argparse.Namespace) -> Outcome:
    log = RESULTS / f"fanout-{stack.name}.log"
    with Server(stack, url(FAST_DB), log) as server:
        before = server.rss_kib()
        subscribers: list[Subscriber] = []
        for start in range(0, args.subscribers, 200):  # in waves, not one SYN flood
            wave = min(200, args.subscribers - start)
            subscribers += await asyncio.gather(*(subscribe(stack.port) for _ in range(wave)))
        readers = [asyncio.ensure_future(s.read_events()) for s in subscribers]
        await asyncio.sleep(2)
        held = server.rss_kib() - before
        written: dict[int, float] = {}
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            headers = {"Authorization": f"Bearer {token}"}
            interval = 1 / args.rate
            began = time.perf_counter()
            for n in range(int(args.seconds * args.rate)):
                await asyncio.sleep(max(0, began + n * interval - time.perf_counter()))
                response = await client.post(
                    "/api/posts", json={"body": f"fan {n}"}, headers=headers
                )
                written[response.json()["id"]] = time.perf_counter()
        await asyncio.sleep(3)  # the last posts' stragglers
        server.check_alive()
        for reader in readers:
            reader.cancel()
        for subscriber in subscribers:
            subscriber.writer.close()
    delays, missed = [], 0
    for subscriber in subscribers:
        for post_id, sent in written.items():
            arrived = subscriber.arrivals.get(post_id)
            if arrived is None:
                missed += 1
            else:
                delays.append((arrived - sent) * 1000)
    return Outcome(
        stack.name,
        len(subscribers),
        held / len(subscribers),
        delays,
        missed,
        sum(s.duplicates for s in subscribers),
        len(written),
    )


def report(outcomes: list[Outcome], args: argparse.Namespace) -> str:
    ours, peer = outcomes
    lines = [
        f"# Live timeline fan-out, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"One uvicorn worker on one core; {args.subscribers} subscribers; "
        f"{args.rate} posts/s for {args.seconds} s. Delay: from the writer's 201 to the "
        "event at a subscriber (negative: the event beat the 201).",
        "",
        "| stack | subscribers | KiB / subscriber | p50 ms | p99 ms | max ms | missed | repeated |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.stack} | {o.subscribers} | {o.kib_per_subscriber:.1f} | "
            f"{o.percentile(0.5):.1f} | {o.percentile(0.99):.1f} | {max(o.delays_ms):.1f} | "
            f"{o.missed} | {o.duplicates} |"
        )
    p99 = ours.percentile(0.99)
    lines += [
        "",
        f"Ours / peer: p99 {p99 / peer.percentile(0.99):.2f}x, "
        f"memory per subscriber {ours.kib_per_subscriber / peer.kib_per_subscriber:.2f}x "
        "(below 1 is better).",
        f"Target p99 < {TARGET_P99_MS:.0f} ms at {args.subscribers} subscribers: "
        f"{'PASS' if p99 < TARGET_P99_MS else 'FAIL'} ({p99:.1f} ms).",
        f"Every post at every subscriber exactly once: "
        f"{'PASS' if not ours.missed and not ours.duplicates else 'FAIL'}.",
    ]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    seeded = create_fast_database(users=100, posts=1000)
    ours = STACKS_BY_NAME["microblog"]
    ours = Stack(
        ours.name, ours.title, ours.port, ours.app, app_dir=ours.app_dir,
        extra_env={
            **ours.extra_env,
            "LIVE_MAX_SUBSCRIBERS": str(args.subscribers + 100),
            "LIVE_MAX_STREAMS_PER_ADDRESS": "0",  # every subscriber comes from loopback
        },
    )  # fmt: skip
    outcomes = [await measure(stack, seeded.token, args) for stack in (ours, PEER)]
    text = report(outcomes, args)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"fanout-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.md").write_text(text + "\n")
    ok = outcomes[0].missed == 0 and outcomes[0].duplicates == 0
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=5)
    arguments = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the servers inherit it too
    os.sched_setaffinity(0, {1})  # the server has core 0
    sys.exit(uvloop.run(main(arguments)))
