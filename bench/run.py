"""Benchmark our app against FastAPI, Quart, sync Flask and raw Starlette + asyncpg.

Usage: ``python bench/run.py [--quick] [--stacks a,b] [--skip slow,memory,scaling]
[--save FILE] [--compare FILE]``.
Exit status: 0 when everything ran, targets met or not; 1 on non-2xx answers under load, a
payload mismatch, a write integrity mismatch or (with ``--compare``) a drop beyond the saved
baseline's own range; 2 when the bench itself could not run.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import baseline
import databases
import machine
import report
import scenarios
from payloads import differences
from stacks import OURS, REFERENCE, STACKS, STACKS_BY_NAME

RESULTS = Path(__file__).resolve().parent / "results"
SEED_USERS, SEED_POSTS = 1_000, 100_000
OPTIONAL_SCENARIOS = ("slow", "memory", "scaling")

Progress = Callable[[str], None]


@dataclass
class Findings:
    """What the report will say: titled sections, targets, and failures that fail the run."""

    sections: list[tuple[str, str]] = field(default_factory=list)
    targets: list[report.Target] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def main() -> int:
    options = parse_arguments()
    plan = scenarios.QUICK if options.quick else scenarios.FULL
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    progress(f"seeding {databases.FAST_DB}: {SEED_USERS:,} users, {SEED_POSTS:,} posts")
    seeded = databases.create_fast_database(SEED_USERS, SEED_POSTS)
    slow_wait = databases.create_slow_database()
    progress(f"{databases.SLOW_DB}: a post lookup waits {slow_wait * 1000:.1f} ms")
    stacks = [STACKS_BY_NAME[name] for name in options.stacks]
    bench = scenarios.Bench(plan, seeded, RESULTS / f"{stamp}-logs", stacks)

    findings = Findings()
    rounds = measure_rounds(bench, findings, progress)
    if options.compare:
        check_against_baseline(options.compare, rounds, findings)
    if options.save:
        runs = baseline.save(options.save, stamp, baseline.metrics_of(rounds.runs))
        progress(f"saved to {options.save} ({runs} run(s) there)")
    if "slow" not in options.skip:
        measure_slow_database(bench, findings, progress, slow_wait)
    if OURS in options.stacks and "memory" not in options.skip:
        text, target = report.memory_section(scenarios.memory(bench, progress))
        findings.sections.append(
            ("Memory of our worker (VmRSS, all three endpoints in turn)", text)
        )
        findings.targets.append(target)
    if OURS in options.stacks and "scaling" not in options.skip:
        text, target = report.scaling_section(scenarios.scaling(bench, progress))
        findings.sections.append(("Scaling: our app, 1 vs 2 uvicorn workers, GET /api/posts", text))
        findings.targets.append(target)

    document = render(stamp, plan, options.quick, time.monotonic() - started, findings)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stamp}.md").write_text(document)
    print(document)
    progress(f"written to {RESULTS / f'{stamp}.md'}")
    return 1 if findings.failures else 0


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round (under 3 minutes)")
    parser.add_argument(
        "--stacks",
        default=",".join(stack.name for stack in STACKS),
        help="comma-separated stacks to run (default: all)",
    )
    parser.add_argument("--skip", default="", help=f"any of {', '.join(OPTIONAL_SCENARIOS)}")
    parser.add_argument(
        "--save", type=Path, help="add this run's ratios to a baseline file (JSON), made if missing"
    )
    parser.add_argument(
        "--compare", type=Path, help="fail (exit 1) on a drop beyond a saved baseline's own range"
    )
    options = parser.parse_args()
    options.stacks = [name for name in options.stacks.split(",") if name]
    options.skip = {name for name in options.skip.split(",") if name}
    unknown = (set(options.stacks) - set(STACKS_BY_NAME)) | (options.skip - set(OPTIONAL_SCENARIOS))
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    return options


def measure_rounds(
    bench: scenarios.Bench, findings: Findings, progress: Progress
) -> scenarios.RoundResults:
    rounds = scenarios.interleaved_rounds(bench, progress)
    names = [stack.name for stack in bench.stacks]
    findings.sections.append(("Throughput and latency", report.main_table(rounds, names)))
    findings.targets += report.main_targets(rounds)
    findings.failures += [
        f"{stack} {endpoint}: {sum(run.non_2xx for run in runs)} non-2xx responses"
        for (stack, endpoint), runs in rounds.runs.items()
        if any(run.non_2xx for run in runs)
    ]
    text, mismatches = compare_payloads(rounds)
    findings.sections.append(("Payload equality", text))
    findings.failures += mismatches
    findings.sections.append(("Write integrity", report.audit_table(rounds)))
    findings.failures += [
        f"write integrity, {stack} round {number}: {audit.summary()}; {audit.problems[:3]}"
        for stack, audits in rounds.audits.items()
        for number, audit in enumerate(audits, 1)
        if not audit.ok
    ]
    return rounds


def check_against_baseline(path: Path, rounds: scenarios.RoundResults, findings: Findings) -> None:
    runs = baseline.load(path)
    verdicts = baseline.compare(runs, baseline.metrics_of(rounds.runs))
    findings.sections.append(
        ("Against the baseline", baseline.comparison_table(path, len(runs), verdicts))
    )
    findings.failures += [
        f"regression, {v.metric}: {v.now:.2f} against {v.baseline:.2f} ({v.change:+.1%}, "
        f"beyond the baseline's range of {v.spread:.0%})"
        for v in verdicts
        if v.dropped
    ]


def compare_payloads(rounds: scenarios.RoundResults) -> tuple[str, list[str]]:
    """Every stack's answers against our app's (without it, the reference's)."""
    names = list(rounds.answers)
    baseline = OURS if OURS in names else REFERENCE if REFERENCE in names else names[0]
    count = len(rounds.answers[baseline])
    lines, mismatches = [f"Each stack's answers to {count} requests, against {baseline}'s:", ""], []
    for name in names:
        if name == baseline:
            continue
        found = differences(rounds.answers[baseline], rounds.answers[name])
        lines.append(f"- {name}: " + ("same" if not found else "**DIFFERENT**"))
        lines += [f"  - {line}" for line in found]
        mismatches += [f"payload, {name}: {line}" for line in found]
    return "\n".join(lines), mismatches


def measure_slow_database(
    bench: scenarios.Bench, findings: Findings, progress: Progress, measured_wait: float
) -> None:
    slow = scenarios.slow_database(bench, progress)
    text, targets = report.slow_table(slow, measured_wait)
    wait = f"every query waits {databases.SLOW_WAIT_S * 1000:.0f} ms"
    findings.sections.append((f"Slow database ({wait}), {scenarios.ONE}", text))
    findings.targets += targets
    findings.failures += [
        f"slow database, {stack} at {connections} connections: {run.non_2xx} non-2xx responses"
        for (stack, connections), run in slow.items()
        if run.non_2xx
    ]


def render(stamp: str, plan: scenarios.Plan, quick: bool, seconds: float, found: Findings) -> str:
    lines = [
        f"# Bench run {stamp} ({'quick' if quick else 'full'}, {seconds / 60:.1f} min)",
        "",
        machine.describe(),
        f"- Plan: {plan.rounds} round(s); in each, every stack serves each endpoint for "
        f"{plan.seconds} s after {plan.warmup_seconds} s of warm-up. Server on core 0, "
        f"`wrk -t1 -c64` on core 1; {SEED_POSTS:,} posts by {SEED_USERS:,} users. "
        "Medians over rounds; ratios are medians of ours ÷ medians of theirs.",
        "",
    ]
    for title, text in found.sections:
        lines += [f"## {title}", "", text, ""]
    lines += ["## Targets", "", report.targets_table(found.targets), ""]
    if found.failures:
        lines += ["## ERRORS", "", *[f"- {failure}" for failure in found.failures], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:
        traceback.print_exc()
        print("bench: could not complete the run (see above)", file=sys.stderr)
        sys.exit(2)
