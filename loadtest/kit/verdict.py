"""The verdict, judged once when locust quits: a summary table, PASS/FAIL a rule, an exit code.

Locust's own exit code fails a run on any single failed request (``--exit-code-on-error``);
the kit replaces it with its rules, so a failure the ``fail_ratio`` rule tolerates passes, and
a broken rule or lost data always fails.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from locust.env import Environment
from locust.runners import WorkerRunner

from .failures import FAILURES
from .integrity import Expectation, IntegrityReport, check
from .ledger import LEDGER
from .observe import posts_through_api
from .server_metrics import Figures, compare, scrape
from .thresholds import NameStats, count_transport_errors, judge, parse_rules

log = logging.getLogger("loadtest.verdict")


def install(environment: Environment) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    parse_rules(environment.parsed_options.thresholds)  # a typo fails now, not after the run
    verdicts: list[str] = []
    before: list[Figures | str] = []

    def on_test_start(environment: Environment, **_: Any) -> None:
        if _reads_server_metrics(environment) and not before:
            before.append(scrape(environment.host, environment.parsed_options.metrics_token))

    def on_quitting(environment: Environment, **_: Any) -> None:
        if not verdicts:  # quitting can fire twice; judge once
            passed, text = deliver(environment, before[0] if before else None)
            verdicts.append(text)
            environment.process_exit_code = 0 if passed else 1
        LEDGER.close()

    def on_quit(**_: Any) -> None:
        # After locust's own tables, so the verdict is the last thing on the terminal.
        print("\n" + "\n".join(verdicts), flush=True)

    environment.events.test_start.add_listener(on_test_start)
    environment.events.quitting.add_listener(on_quitting)
    environment.events.quit.add_listener(on_quit)


def _reads_server_metrics(environment: Environment) -> bool:
    options = environment.parsed_options
    return bool(options.metrics_token) and options.server_metrics


def deliver(environment: Environment, before: Figures | str | None = None) -> tuple[bool, str]:
    options = environment.parsed_options
    # Read first: the integrity check's own reads below are not the run's.
    after = scrape(environment.host, options.metrics_token) if before is not None else None
    stats = environment.stats
    names = [_name_stats(entry) for entry in stats.entries.values()]
    overall = _name_stats(stats.total)
    errors = [
        (error.error if isinstance(error.error, str) else repr(error.error), error.occurrences)
        for error in stats.errors.values()
    ]
    outcomes = judge(
        parse_rules(options.thresholds), names, overall, count_transport_errors(errors)
    )
    lines = [summary_table(names, overall), ""]
    if failures := FAILURES.report():
        lines += [failures, ""]
    lines += [outcome.line() for outcome in outcomes]
    passed = all(outcome.passed for outcome in outcomes)
    if isinstance(before, str) or isinstance(after, str):
        lines.append(f"SKIP  server figures: {before if isinstance(before, str) else after}")
    elif before is not None and after is not None:
        compared = compare(
            after.since(before),
            sent=http_requests(stats),
            # Each user has at most one request open (a stream the server closes later too).
            in_flight=options.num_users or 0,
            transport_errors=count_transport_errors(errors),
            client_p95=overall.p95,
        )
        lines += compared.lines
        passed = passed and compared.passed
    if options.verify_integrity:
        report = integrity_through_api(environment)
        lines.append(
            f"{'PASS' if report.ok else 'FAIL'}  integrity through the API  ({report.summary()})"
        )
        passed = passed and report.ok
    lines.append(f"VERDICT {'PASS' if passed else 'FAIL'}")
    text = "\n".join(lines)
    if options.verdict_file:
        Path(options.verdict_file).parent.mkdir(parents=True, exist_ok=True)
        Path(options.verdict_file).write_text(text + "\n")
    return passed, text


def http_requests(stats: Any) -> int:
    """What the kit sent the server: its entries for deliveries seen on a live stream (SSE)
    are measurements, not requests."""
    return sum(e.num_requests for e in stats.entries.values() if e.method != "SSE")


def integrity_through_api(environment: Environment) -> IntegrityReport:
    expectation = Expectation.from_records(LEDGER.records)
    if expectation.baseline is None:
        report = IntegrityReport()
        report.problems.append("the run never started: no baseline")
        return report
    try:
        observed = list(posts_through_api(environment.host, expectation.baseline))
    except Exception as exc:  # any failure to read back is a failed check, not a crash
        report = IntegrityReport()
        report.problems.append(f"could not read the posts back: {exc!r}")
        return report
    return check(expectation, observed)


def summary_table(names: list[NameStats], overall: NameStats) -> str:
    header = (
        f"{'request':<34} {'reqs':>7} {'fails':>6} {'p50':>6} {'p95':>6} {'p99':>6} {'req/s':>7}"
    )
    rows = [header, "-" * len(header)]
    for stats in [*sorted(names, key=lambda s: s.name), overall]:
        rows.append(
            f"{stats.name[:34]:<34} {stats.requests:>7} {stats.failures:>6} "
            f"{stats.p50:>6.0f} {stats.p95:>6.0f} {stats.p99:>6.0f} {stats.rps:>7.1f}"
        )
    return "\n".join(rows)


def _name_stats(entry: Any) -> NameStats:
    name = entry.name if entry.method in (None, "") else f"{entry.method} {entry.name}"
    return NameStats(
        name=name,
        requests=entry.num_requests,
        failures=entry.num_failures,
        p50=entry.get_response_time_percentile(0.5) or 0.0,
        p95=entry.get_response_time_percentile(0.95) or 0.0,
        p99=entry.get_response_time_percentile(0.99) or 0.0,
        rps=entry.total_rps,
    )
