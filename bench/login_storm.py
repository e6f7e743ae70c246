"""The login storm: do 30 clients signing in non-stop starve everyone else?

    .venv/bin/python bench/login_storm.py [--seconds 10]

Our app alone, pinned to one core with the bench's settings. First reads alone
(GET /api/posts, 64 connections), then the same reads while 30 connections POST /api/tokens
with a real password as fast as they can. Per-address sign-in limits are off here: a storm
from many addresses would not meet them, and the password budget is what is measured.
Targets: reads keep at least 70 % of their throughput, their p99 stays under 3x the no-login
p99, and the worker's peak memory stays under 250 MB.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import threading
import urllib.request
from pathlib import Path

import databases
from load import LoadResult, run_wrk
from servers import Server
from stacks import OURS, STACKS_BY_NAME, Stack

READ_CONNECTIONS, LOGIN_CONNECTIONS = 64, 30
PASSWORD = "a storm of sign-ins"
LOG_DIR = Path(__file__).resolve().parent / "results" / "login-storm"


def main() -> int:
    options = parse_arguments()
    databases.create_fast_database(1_000, 100_000)
    base = STACKS_BY_NAME[OURS]
    extra = {**base.extra_env, "RATE_LIMIT_SIGN_IN_ADDRESS": "off"}
    stack = Stack(base.name, base.title, base.port, base.app, app_dir=None, extra_env=extra)
    with Server(stack, databases.url(databases.FAST_DB), LOG_DIR / "microblog.log") as server:
        credentials = register(server.base_url)
        read = f"{server.base_url}/api/posts?limit=20"
        run_wrk(read, seconds=2)  # warm-up
        alone = run_wrk(read, seconds=options.seconds, connections=READ_CONNECTIONS)
        during, logins = reads_during_a_storm(server, read, credentials, options.seconds)
        peak_kib = peak_memory_kib(server.pid)
    print(report(alone, during, logins, peak_kib))
    return 0


def register(base_url: str) -> str:
    body = {"username": "storm", "email": "storm@example.com", "password": PASSWORD}
    request = urllib.request.Request(
        f"{base_url}/api/users",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
    return base64.b64encode(f"storm:{PASSWORD}".encode()).decode()


def reads_during_a_storm(
    server: Server, read_url: str, credentials: str, seconds: int
) -> tuple[LoadResult, LoadResult]:
    results: dict[str, LoadResult] = {}

    def storm() -> None:
        results["logins"] = run_wrk(
            f"{server.base_url}/api/tokens",
            seconds=seconds + 2,  # under way before the reads start, still going after
            connections=LOGIN_CONNECTIONS,
            script="sign_in.lua",
            script_args=(credentials,),
        )

    storm_thread = threading.Thread(target=storm)
    storm_thread.start()
    threading.Event().wait(1.0)
    during = run_wrk(read_url, seconds=seconds, connections=READ_CONNECTIONS)
    storm_thread.join()
    server.check_alive()
    return during, results["logins"]


def peak_memory_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def report(alone: LoadResult, during: LoadResult, logins: LoadResult, peak_kib: int) -> str:
    kept = during.rps / alone.rps
    p99_ratio = during.p99_ms / alone.p99_ms
    peak_mb = peak_kib / 1024
    lines = [
        "| | reads alone | reads during the storm | ratio | target |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| req/s | {alone.rps:.0f} | {during.rps:.0f} | {kept:.2f} | >= 0.70 "
        f"{'PASS' if kept >= 0.7 else 'FAIL'} |",
        f"| p99 | {alone.p99_ms:.1f} ms | {during.p99_ms:.1f} ms | {p99_ratio:.2f}x | < 3x "
        f"{'PASS' if p99_ratio < 3 else 'FAIL'} |",
        "",
        f"Sign-in load (wrk's own counts): {logins.requests} responses ({logins.rps:.0f}/s), "
        f"{logins.non_2xx} not 2xx (503s: the password budget shedding), "
        f"{logins.socket_errors} socket errors or timeouts; p50 {logins.p50_ms:.0f} ms, "
        f"p99 {logins.p99_ms:.0f} ms.",
        f"Worker peak memory (VmHWM): {peak_mb:.0f} MB, target < 250 MB "
        f"{'PASS' if peak_mb < 250 else 'FAIL'}.",
        f"Read errors: {alone.errors} alone, {during.errors} during the storm.",
    ]
    return "\n".join(lines)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
