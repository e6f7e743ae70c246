"""A run kept as JSON (``--save``) and a later run checked against it (``--compare``).

What is kept is what stays comparable across runs on a shared machine: our req/s as a ratio
to each peer measured in the same round (or our own req/s, when no peer ran), per endpoint and
per round. The noise is the baseline's own: the spread of those per-round figures over every
run saved into the file. A later run fails a metric when its median falls below the baseline's
median by more than that spread, so a baseline saved once or twice judges loosely or not at
all, and saving it again (the same file, on a quiet machine) is how it learns its noise.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stacks import OURS

FORMAT = 1
MIN_VALUES = 3  # per-round figures a metric needs in the baseline before it judges a run


def metrics_of(runs: Mapping[tuple[str, str], Sequence[Any]]) -> dict[str, list[float]]:
    """From wrk's results by (stack, endpoint), each endpoint's per-round figures:
    ``{"GET /api/posts ÷ fastapi_fast": [ratios]}``, or ``{"GET /api/posts req/s": [...]}``
    when no peer ran beside ours."""
    found: dict[str, list[float]] = {}
    for endpoint in dict.fromkeys(at for _, at in runs):
        ours = runs.get((OURS, endpoint))
        if not ours:
            continue
        peers = [stack for stack, at in runs if at == endpoint and stack != OURS]
        for peer in peers:
            pairs = zip(ours, runs[(peer, endpoint)], strict=True)
            found[f"{endpoint} ÷ {peer}"] = [mine.rps / theirs.rps for mine, theirs in pairs]
        if not peers:
            found[f"{endpoint} req/s"] = [run.rps for run in ours]
    return found


def save(path: Path, stamp: str, metrics: dict[str, list[float]]) -> int:
    """Add this run to the file (made if missing); return how many runs it now holds."""
    kept = load(path) if path.exists() else []
    kept.append({"stamp": stamp, "metrics": metrics})
    path.write_text(json.dumps({"format": FORMAT, "runs": kept}, indent=2) + "\n")
    return len(kept)


def load(path: Path) -> list[dict[str, Any]]:
    document = json.loads(path.read_text())
    if document.get("format") != FORMAT:
        raise ValueError(f"{path}: not a baseline this bench wrote (format {FORMAT})")
    return list(document["runs"])


@dataclass(frozen=True)
class Verdict:
    metric: str
    baseline: float
    spread: float  # the baseline's own range over its median
    now: float
    judged: bool  # False: the baseline has too few figures for this metric

    @property
    def change(self) -> float:
        return self.now / self.baseline - 1

    @property
    def dropped(self) -> bool:
        return self.judged and self.now < self.baseline * (1 - self.spread)


def compare(runs: list[dict[str, Any]], metrics: dict[str, list[float]]) -> list[Verdict]:
    verdicts = []
    for metric, values in metrics.items():
        before = [value for run in runs for value in run["metrics"].get(metric, [])]
        if not before or not values:
            continue
        middle = statistics.median(before)
        verdicts.append(
            Verdict(
                metric,
                middle,
                (max(before) - min(before)) / middle,
                statistics.median(values),
                len(before) >= MIN_VALUES,
            )
        )
    return verdicts


def comparison_table(source: Path, runs: int, verdicts: list[Verdict]) -> str:
    lines = [
        f"Against `{source}` ({runs} saved run(s)); a metric fails when it falls below the "
        "baseline's median by more than the baseline's own spread.",
        "",
        "| metric | baseline (median) | its range | this run | change | verdict |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for v in verdicts:
        verdict = "**DROP**" if v.dropped else "ok" if v.judged else "not judged: save again"
        lines.append(
            f"| {v.metric} | {v.baseline:.2f} | {v.spread:.0%} | {v.now:.2f} "
            f"| {v.change:+.1%} | {verdict} |"
        )
    return "\n".join(lines)
