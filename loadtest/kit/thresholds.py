"""Threshold rules: parsed from one option, judged against locust's statistics.

A rule reads ``[<request name>:] <metric> <op> <number>``, and rules are separated by ``;``:

    fail_ratio <= 0.01; p95 < 300; p99 < 1000; rps >= 20; transport_errors <= 0
    POST /api/posts: p95 < 150

``p50``/``p95``/``p99`` are milliseconds, ``fail_ratio`` a fraction of requests, ``rps`` requests
a second, ``transport_errors`` the count of requests that got no HTTP answer at all (timeouts,
refused or reset connections). A rule without a name holds for the whole run and, for the
latency and failure metrics, for every request name; a named rule replaces it for that name.
Nothing here imports locust, so the rules are tested without it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
PER_NAME_METRICS = {"p50", "p95", "p99", "fail_ratio"}
RUN_METRICS = {"rps", "transport_errors"}
_RULE = re.compile(
    r"^\s*(?:(?P<name>.+?)\s*:)?\s*(?P<metric>\w+)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<limit>[0-9]*\.?[0-9]+)\s*$"
)
OVERALL = "Aggregated"
TRANSPORT_ERROR = re.compile(
    r"timed? ?out|timeout|refused|reset by peer|ConnectionReset|RemoteDisconnected|BrokenPipe"
    r"|ConnectionClosed|connection (closed|aborted)",
    re.IGNORECASE,
)


class BadRule(ValueError):
    """A threshold that cannot be read."""


@dataclass(frozen=True)
class Rule:
    metric: str
    op: str
    limit: float
    name: str | None = None

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.limit)

    def __str__(self) -> str:
        limit = f"{self.limit:g}" + (" ms" if self.metric.startswith("p") else "")
        where = f"{self.name}: " if self.name else ""
        return f"{where}{self.metric} {self.op} {limit}"


def parse_rules(text: str) -> list[Rule]:
    rules = []
    for part in filter(str.strip, text.split(";")):
        match = _RULE.match(part)
        if match is None:
            raise BadRule(f"cannot read the threshold {part.strip()!r}")
        metric, name = match["metric"], match["name"]
        if metric not in PER_NAME_METRICS | RUN_METRICS:
            raise BadRule(f"unknown metric {metric!r} in {part.strip()!r}")
        if name and metric in RUN_METRICS:
            raise BadRule(f"{metric} is a whole-run metric: drop the name in {part.strip()!r}")
        rules.append(Rule(metric, match["op"], float(match["limit"]), name))
    return rules


@dataclass(frozen=True)
class NameStats:
    """One request name's figures, as locust reports them (``Aggregated`` for the run)."""

    name: str
    requests: int
    failures: int
    p50: float
    p95: float
    p99: float
    rps: float

    @property
    def fail_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Outcome:
    rule: Rule
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.rule}  ({self.detail})"


def judge(
    rules: Iterable[Rule], names: list[NameStats], overall: NameStats, transport_errors: int
) -> list[Outcome]:
    """One outcome a rule; a general rule covers every name without a rule of its own."""
    rules = list(rules)
    named = {(rule.name, rule.metric) for rule in rules if rule.name}
    outcomes = []
    for rule in rules:
        if rule.metric == "transport_errors":
            value = transport_errors
            outcomes.append(Outcome(rule, rule.holds(value), f"{value} requests got no answer"))
            continue
        if rule.metric == "rps" or rule.name == OVERALL:
            outcomes.append(_judge_one(rule, overall))
            continue
        if rule.name:
            subject = [stats for stats in names if stats.name == rule.name]
            if not subject:
                outcomes.append(Outcome(rule, False, "no request had that name"))
                continue
            outcomes.append(_judge_one(rule, subject[0]))
            continue
        covered = [overall] + [s for s in names if (s.name, rule.metric) not in named]
        outcomes.append(_judge_many(rule, covered))
    return outcomes


def _value(stats: NameStats, metric: str) -> float:
    return float(getattr(stats, metric))


def _shown(metric: str, value: float) -> str:
    if metric == "fail_ratio":
        return f"{value:.2%}"
    if metric == "rps":
        return f"{value:.1f} req/s"
    return f"{value:.0f} ms"


def _judge_one(rule: Rule, stats: NameStats) -> Outcome:
    value = _value(stats, rule.metric)
    return Outcome(rule, rule.holds(value), f"{stats.name} {_shown(rule.metric, value)}")


def _judge_many(rule: Rule, covered: list[NameStats]) -> Outcome:
    broken = [s for s in covered if not rule.holds(_value(s, rule.metric))]
    worst = broken or covered
    reverse = rule.op in ("<", "<=")
    worst_one = sorted(worst, key=lambda s: _value(s, rule.metric), reverse=reverse)[0]
    detail = f"worst {worst_one.name} {_shown(rule.metric, _value(worst_one, rule.metric))}"
    if broken:
        detail += f"; {len(broken)} of {len(covered)} over"
    return Outcome(rule, not broken, detail)


def count_transport_errors(errors: Iterable[tuple[str, int]]) -> int:
    """How many failures were no HTTP answer at all, from (error text, occurrences) pairs."""
    return sum(count for text, count in errors if TRANSPORT_ERROR.search(text))
