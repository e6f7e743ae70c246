"""The scenarios: interleaved rounds on every stack, the slow database, memory, and scaling."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import databases
from cpu import CpuMeter, CpuShares
from integrity import WriteAudit, audit_writes
from load import LoadResult, run_wrk
from payloads import Answer, capture
from servers import Server
from stacks import OURS, POOL_SIZE, STACKS_BY_NAME, Stack


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: int  # of each measured wrk run
    warmup_seconds: int
    slow_seconds: int
    memory_marks: tuple[int, int]  # RSS is read after this many requests, then this many
    scaling_repeats: int


FULL = Plan(rounds=3, seconds=8, warmup_seconds=2, slow_seconds=8,
            memory_marks=(10_000, 100_000), scaling_repeats=2)  # fmt: skip
QUICK = Plan(rounds=1, seconds=3, warmup_seconds=1, slow_seconds=3,
             memory_marks=(2_000, 20_000), scaling_repeats=1)  # fmt: skip

LIST, ONE, WRITE = "GET /api/posts", "GET /api/posts/<id>", "POST /api/posts"
ENDPOINTS = (LIST, ONE, WRITE)
SLOW_CONNECTIONS = (64, 256)


@dataclass
class Bench:
    """What every scenario needs: the plan, the seeded data, where logs go."""

    plan: Plan
    seeded: databases.Seeded
    log_dir: Path
    stacks: list[Stack]

    def server(self, stack: Stack, database: str = databases.FAST_DB, **options: object) -> Server:
        log = self.log_dir / f"{stack.name}.log"
        return Server(stack, databases.url(database), log, **options)  # type: ignore[arg-type]

    def load(self, server: Server, endpoint: str, seconds: int, **options: object) -> LoadResult:
        """wrk against one endpoint; a write run's tag goes in ``tag``."""
        tag = str(options.pop("tag", "warmup"))
        if endpoint == LIST:
            target = dict(url=f"{server.base_url}/api/posts?limit=20")
        elif endpoint == ONE:
            target = dict(url=server.base_url, script="get_post.lua",
                          script_args=(str(self.seeded.max_post_id),))  # fmt: skip
        else:
            target = dict(url=f"{server.base_url}/api/posts", script="write_post.lua",
                          script_args=(tag, self.seeded.token))  # fmt: skip
        result = run_wrk(seconds=seconds, **target, **options)  # type: ignore[arg-type]
        server.check_alive()
        return result

    def forget_writes(self) -> None:
        databases.delete_posts_after(self.seeded.max_post_id)


@dataclass
class RoundResults:
    runs: dict[tuple[str, str], list[LoadResult]] = field(default_factory=dict)  # (stack, endpoint)
    audits: dict[str, list[WriteAudit]] = field(default_factory=dict)
    answers: dict[str, dict[str, Answer]] = field(default_factory=dict)


def interleaved_rounds(bench: Bench, progress: Callable[[str], None]) -> RoundResults:
    """Every stack, every endpoint, round after round; the stack order turns each round."""
    results = RoundResults()
    for round_number in range(1, bench.plan.rounds + 1):
        shift = (round_number - 1) % len(bench.stacks)
        for stack in bench.stacks[shift:] + bench.stacks[:shift]:
            progress(f"round {round_number}/{bench.plan.rounds}: {stack.name}")
            _measure_stack(bench, stack, round_number, results)
    return results


def _measure_stack(bench: Bench, stack: Stack, round_number: int, results: RoundResults) -> None:
    with bench.server(stack) as server:
        if round_number == 1:
            results.answers[stack.name] = capture(
                server.base_url, bench.seeded.token, bench.seeded.max_post_id
            )
        for endpoint in ENDPOINTS:
            bench.load(server, endpoint, bench.plan.warmup_seconds)
        bench.forget_writes()
        for endpoint in ENDPOINTS:
            tag = f"{stack.name}.r{round_number}"
            before = databases.max_post_id()
            result = bench.load(server, endpoint, bench.plan.seconds, tag=tag)
            results.runs.setdefault((stack.name, endpoint), []).append(result)
            if endpoint == WRITE:
                # Let the server finish what wrk left in flight before counting rows.
                time.sleep(0.5)
                audit = audit_writes(tag, result.script_lines, databases.posts_after(before))
                results.audits.setdefault(stack.name, []).append(audit)
                bench.forget_writes()


def slow_database(
    bench: Bench, progress: Callable[[str], None]
) -> dict[tuple[str, int], LoadResult]:
    """GET /api/posts/<id> when every query waits 50 ms, at 64 and 256 connections."""
    results = {}
    for stack in bench.stacks:
        progress(f"slow database: {stack.name}")
        with bench.server(stack, databases.SLOW_DB) as server:
            bench.load(server, ONE, bench.plan.warmup_seconds)
            for connections in SLOW_CONNECTIONS:
                results[stack.name, connections] = bench.load(
                    server, ONE, bench.plan.slow_seconds, connections=connections
                )
    return results


def slow_ceiling(wait: float = databases.SLOW_WAIT_S) -> float:
    """Requests a second that POOL_SIZE connections serve when each request holds one ``wait``."""
    return POOL_SIZE / wait


@dataclass
class MemoryResult:
    marks: list[tuple[int, int]]  # (requests served so far, RSS in KiB)
    errors: int

    @property
    def growth(self) -> float:
        (_, first), (_, last) = self.marks[0], self.marks[-1]
        return last / first - 1


def memory(bench: Bench, progress: Callable[[str], None]) -> MemoryResult:
    """Our worker's RSS after the first N requests and after M, on a mix of all three endpoints."""
    stack = STACKS_BY_NAME[OURS]
    marks, errors, served = [], 0, 0
    with bench.server(stack) as server:
        endpoints = _forever(ENDPOINTS)
        rate = None  # requests per second, once a first short run has measured it
        for mark in bench.plan.memory_marks:
            while served < mark:
                seconds = 1 if rate is None else max(1, min(5, int((mark - served) / rate)))
                result = bench.load(server, next(endpoints), seconds, tag="memory")
                served += result.requests
                errors += result.errors
                rate = max(result.rps, 100.0)
            marks.append((served, server.rss_kib()))
            progress(f"memory: {served} requests, RSS {marks[-1][1]} KiB")
    bench.forget_writes()
    return MemoryResult(marks, errors)


def _forever(items: Iterable[str]) -> Iterable[str]:
    while True:
        yield from items


@dataclass
class ScalingResult:
    runs: dict[int, list[LoadResult]] = field(default_factory=lambda: {1: [], 2: []})
    cpu: dict[int, list[CpuShares]] = field(default_factory=lambda: {1: [], 2: []})


def scaling(bench: Bench, progress: Callable[[str], None]) -> ScalingResult:
    """GET /api/posts on our app with 1 and 2 uvicorn workers; nothing pinned, wrk included.
    Where the CPU went during each measured run is kept beside it."""
    stack = STACKS_BY_NAME[OURS]
    results = ScalingResult()
    for _ in range(bench.plan.scaling_repeats):
        for workers in (1, 2):
            progress(f"scaling: {workers} worker(s)")
            with bench.server(stack, workers=workers, pinned=False) as server:
                bench.load(server, LIST, bench.plan.warmup_seconds, pinned=False)
                meter = CpuMeter(server.pid)
                meter.start()
                results.runs[workers].append(
                    bench.load(server, LIST, bench.plan.seconds, pinned=False)
                )
                results.cpu[workers].append(meter.stop())
    return results
