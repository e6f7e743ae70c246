"""Overload: three times what the app can serve, arriving whether or not it keeps up.

    .venv/bin/python bench/overload.py [--seconds 10] [--factor 3]

Our app alone, pinned to core 0, on the bench's slow database (every query waits 50 ms, so 20
pooled connections serve about 390 requests a second). Its capacity is measured first with wrk
(64 connections, GET /api/posts/<id>). Then an open-loop generator sends ``factor`` times that
rate for ``seconds``, each request on its own schedule, however slow the answers: the way a
crowd arrives, unlike wrk, whose connections wait for each answer before asking again.
Targets: the requests let in finish within DB_QUEUE_MAX_WAIT plus one query's time (plus
0.1 s of slack) at p99; most excess requests get their 503 (problem+json, ``Retry-After``) at
once, and none later than DB_QUEUE_MAX_WAIT.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import databases
from load import run_wrk
from servers import Server
from stacks import OURS, STACKS_BY_NAME

LOG = Path(__file__).resolve().parent / "results" / "overload" / "microblog.log"
MAX_OPEN_CONNECTIONS = 4000
QUEUE_MAX_WAIT_S = 1.5  # the app's default DB_QUEUE_MAX_WAIT
QUERY_S = 0.05  # every query on the slow database
ACCEPTED_P99_S = QUEUE_MAX_WAIT_S + QUERY_S + 0.1


@dataclass
class Answers:
    latencies: dict[int, list[float]] = field(default_factory=dict)  # status -> seconds
    retry_after: int = 0
    problem_json: int = 0
    failed: int = 0  # no HTTP answer at all

    def add(self, status: int, seconds: float, headers: bytes) -> None:
        self.latencies.setdefault(status, []).append(seconds)
        if status == 503:
            self.retry_after += b"\r\nretry-after:" in headers.lower()
            self.problem_json += b"application/problem+json" in headers


async def one_request(host: str, port: int, path: str, answers: Answers) -> None:
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        answers.failed += 1
        return
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        await reader.read()
        answers.add(int(head.split(b" ", 2)[1]), time.monotonic() - started, head)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        answers.failed += 1
    finally:
        writer.close()


async def open_loop(base_url: str, rate: float, seconds: int, max_id: int) -> Answers:
    host, port = base_url.removeprefix("http://").split(":")
    answers, pending = Answers(), set()
    limit = asyncio.Semaphore(MAX_OPEN_CONNECTIONS)
    began = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - began) < seconds:
        while sent < elapsed * rate:
            sent += 1
            path = f"/api/posts/{random.randint(1, max_id)}"

            async def bounded(path: str = path) -> None:
                async with limit:
                    await one_request(host, int(port), path, answers)

            task = asyncio.ensure_future(bounded())
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.sleep(0.002)
    await asyncio.gather(*pending)
    return answers


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    options = parse_arguments()
    seeded = databases.create_fast_database(1_000, 100_000)
    databases.create_slow_database()
    with Server(STACKS_BY_NAME[OURS], databases.url(databases.SLOW_DB), LOG) as server:
        url = server.base_url
        run_wrk(url, seconds=2, script="get_post.lua", script_args=(str(seeded.max_post_id),))
        capacity = run_wrk(url, seconds=5, script="get_post.lua",
                           script_args=(str(seeded.max_post_id),)).rps  # fmt: skip
        rate = capacity * options.factor
        answers = asyncio.run(open_loop(url, rate, options.seconds, seeded.max_post_id))
        server.check_alive()
    print(report(capacity, rate, options, answers))
    return 0


def report(capacity: float, rate: float, options: argparse.Namespace, answers: Answers) -> str:
    served = answers.latencies.get(200, [])
    shed = answers.latencies.get(503, [])
    other = {status: len(v) for status, v in answers.latencies.items() if status not in (200, 503)}
    total = len(served) + len(shed) + sum(other.values()) + answers.failed
    served_p99, shed_p99 = percentile(served, 0.99), percentile(shed, 0.99)
    shed_p50 = percentile(shed, 0.5)
    return "\n".join(
        [
            f"Capacity (wrk, 64 connections): {capacity:.0f} req/s. Offered: {rate:.0f} req/s "
            f"({options.factor}x) for {options.seconds} s, open loop: {total} requests.",
            "",
            "| answer | count | share | p50 | p99 |",
            "| --- | ---: | ---: | ---: | ---: |",
            f"| 200 | {len(served)} | {len(served) / total:.0%} | "
            f"{percentile(served, 0.5) * 1000:.0f} ms | {served_p99 * 1000:.0f} ms |",
            f"| 503 | {len(shed)} | {len(shed) / total:.0%} | "
            f"{percentile(shed, 0.5) * 1000:.0f} ms | {shed_p99 * 1000:.0f} ms |",
            "",
            f"Served: {len(served) / options.seconds:.0f} req/s "
            f"({len(served) / options.seconds / capacity:.0%} of capacity). "
            f"Other answers: {other or 'none'}; no answer at all: {answers.failed}.",
            f"503s with Retry-After: {answers.retry_after} of {len(shed)}; "
            f"as problem+json: {answers.problem_json}.",
            f"Targets: accepted p99 < DB_QUEUE_MAX_WAIT + one query + 0.1 s "
            f"({ACCEPTED_P99_S * 1000:.0f} ms) "
            f"{'PASS' if served_p99 < ACCEPTED_P99_S else 'FAIL'}; "
            f"most 503s at once (p50 < 50 ms) {'PASS' if shed_p50 < 0.05 else 'FAIL'}, "
            f"none later than DB_QUEUE_MAX_WAIT + 0.1 s "
            f"{'PASS' if shed_p99 < QUEUE_MAX_WAIT_S + 0.1 else 'FAIL'}; "
            f"every request answered {'PASS' if not answers.failed else 'FAIL'}.",
            f"Mean served latency {statistics.fmean(served) * 1000:.0f} ms." if served else "",
        ]
    )


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--factor", type=float, default=3.0)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
