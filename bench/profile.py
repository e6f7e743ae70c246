"""Where a stack's time goes under GET /api/posts load: py-spy samples its uvicorn worker.

Usage: ``python bench/profile.py [--seconds 10] [--stack fastapi_fast]`` after ``bench/run.py``
has made the database; our app unless ``--stack`` names another.
Writes collapsed stacks (for flame graph tools) to bench/results/ and prints the top costs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import databases
from servers import Server
from stacks import OURS, STACKS_BY_NAME, VENV_BIN

RESULTS = Path(__file__).resolve().parent / "results"
TOP = 25


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--stack", default=OURS, choices=sorted(STACKS_BY_NAME))
    options = parser.parse_args()
    seconds = options.seconds
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    stacks_file = RESULTS / f"{stamp}-profile-{options.stack}.txt"
    RESULTS.mkdir(exist_ok=True)
    stack = STACKS_BY_NAME[options.stack]
    log = RESULTS / f"{stamp}-logs" / "profile.log"
    with Server(stack, databases.url(databases.FAST_DB), log) as server:
        url = f"{server.base_url}/api/posts?limit=20"
        wrk = ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{seconds + 4}s", url]
        subprocess.run([*wrk[:5], "-d2s", url], check=True, capture_output=True)  # warm-up
        load = subprocess.Popen(wrk, stdout=subprocess.PIPE, text=True)
        try:
            subprocess.run(
                [str(VENV_BIN / "py-spy"), "record", "--pid", str(server.pid), "--duration",
                 str(seconds), "--rate", "250", "--format", "raw", "--output", str(stacks_file)],
                check=True, capture_output=True, timeout=seconds + 30,
            )  # fmt: skip
        finally:
            output, _ = load.communicate(timeout=seconds + 30)
    print(output)
    print(top_costs(stacks_file.read_text()))
    print(f"collapsed stacks: {stacks_file}", file=sys.stderr)
    return 0


def top_costs(collapsed: str) -> str:
    """Self share of samples per library and per function, and inclusive share per function.

    Code run in a request greenlet shows as its own stack root, so inclusive shares of the
    callers above the greenlet (uvicorn, the bridge's task) leave out what ran inside it.
    """
    own, inclusive, by_library, total = Counter(), Counter(), Counter(), 0
    for line in collapsed.splitlines():
        frames, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        names = [frame.strip() for frame in frames.split(";")]
        by_library[_library(names[-1])] += samples
        own[_short(names[-1])] += samples
        for name in {_short(frame) for frame in names}:
            inclusive[name] += samples
    lines = [f"{total} samples", "", "self %  library"]
    lines += [f"{100 * n / total:5.1f}  {name}" for name, n in by_library.most_common(12)]
    lines += ["", "self %  function"]
    lines += [f"{100 * n / total:5.1f}  {name}" for name, n in own.most_common(TOP)]
    lines += ["", "total %  function (with what it calls)"]
    lines += [f"{100 * n / total:5.1f}  {name}" for name, n in inclusive.most_common(TOP * 2)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)``: lines vary, functions don't."""
    name, _, where = frame.partition(" (")
    if not frame:
        return "(no Python frame: the event loop's C code, I/O)"
    return f"{name} ({Path(where.split(':')[0]).name})" if where else name


def _library(frame: str) -> str:
    """The package a frame's file belongs to (py-spy names files from their sys.path entry)."""
    where = frame.partition(" (")[2]
    if not where:
        return "(no Python frame: the event loop's C code, I/O)"
    return where.split("/")[0].split(":")[0]


if __name__ == "__main__":
    sys.exit(main())
