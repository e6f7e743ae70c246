"""Running wrk, bounded in time, and reading its report."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

LUA = Path(__file__).resolve().parent / "lua"
LOAD_CORE = "1"  # the server gets core 0; see servers.py

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class LoadResult:
    """What one wrk run measured."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    script_lines: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def run_wrk(
    url: str,
    *,
    seconds: int,
    connections: int = 64,
    script: str | None = None,
    script_args: tuple[str, ...] = (),
    pinned: bool = True,
) -> LoadResult:
    """One wrk run against ``url``; raises if wrk fails or prints nothing we can read."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(LUA / script)]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    if pinned:
        command = ["taskset", "-c", LOAD_CORE, *command]
    # wrk stops itself after -d; the timeout is only a guard against a wedged process.
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    if finished.returncode != 0:
        raise RuntimeError(f"wrk failed ({finished.returncode}): {finished.stderr.strip()}")
    return parse_wrk(finished.stdout)


def parse_wrk(text: str) -> LoadResult:
    totals = re.search(r"(\d+) requests in ([\d.]+)(\w+),", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if totals is None or rps is None:
        raise RuntimeError(f"unreadable wrk output:\n{text}")
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return LoadResult(
        requests=int(totals.group(1)),
        seconds=float(totals.group(2)) * _UNIT_MS[totals.group(3)] / 1000,
        rps=float(rps.group(1)),
        p50_ms=_percentile_ms(text, "50"),
        p99_ms=_percentile_ms(text, "99"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        script_lines=[line for line in text.splitlines() if line.startswith("bench-")],
    )


def _percentile_ms(text: str, percent: str) -> float:
    found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no {percent}% latency in wrk output:\n{text}")
    return float(found.group(1)) * _UNIT_MS[found.group(2)]
