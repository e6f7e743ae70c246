"""What serving an existing Flask app through flask-greenlet costs, against the other ways.

A sync-only app and an async-view app (``adopters/apps.py``), each served one worker at a time
on core 0 by: flask-greenlet's ``ASGIApp`` on uvicorn, a2wsgi on uvicorn, asgiref's
``WsgiToAsgi`` on uvicorn, and gunicorn's threads (the WSGI reference); Quart serves the async
app too. Every thread pool has the same size. wrk loads each from core 1 with 64 connections;
each figure is the median of the rounds, and the ratios are flask-greenlet's against the
others measured in the same run.

    python bench/adopters.py [--seconds 5] [--rounds 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
THREADS = 40
UVICORN = ["-m", "uvicorn", "--app-dir", str(HERE / "adopters"), "--log-level", "warning"]
UVICORN += ["--no-access-log", "--loop", "uvloop", "--http", "httptools"]
GUNICORN = ["-m", "gunicorn", "--chdir", str(HERE / "adopters"), "--worker-class", "gthread"]
GUNICORN += ["--threads", str(THREADS), "--log-level", "warning"]
STACKS = {
    "sync": {
        "flask-greenlet": [*UVICORN, "apps:greenlet_sync"],
        "a2wsgi": [*UVICORN, "apps:a2wsgi_sync"],
        "asgiref WsgiToAsgi": [*UVICORN, "apps:asgiref_sync"],
        "gunicorn threads": [*GUNICORN, "apps:wsgi_sync"],
    },
    "async": {
        "flask-greenlet": [*UVICORN, "apps:greenlet_async"],
        "a2wsgi": [*UVICORN, "apps:a2wsgi_async"],
        "asgiref WsgiToAsgi": [*UVICORN, "apps:asgiref_async"],
        "gunicorn threads": [*GUNICORN, "apps:wsgi_async"],
        "Quart": [*UVICORN, "apps:quart_async"],
    },
}
ENDPOINTS = ("/json", "/io")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rounds: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    for _ in range(args.rounds):  # interleaved: a noisy minute hits every stack alike
        for app, stacks in STACKS.items():
            for stack, command in stacks.items():
                with serving(command) as port:
                    for endpoint in ENDPOINTS:
                        url = f"http://127.0.0.1:{port}{endpoint}"
                        rounds.setdefault((app, stack, endpoint), []).append(
                            run_wrk(url, args.seconds)
                        )
    results = [
        {"app": app, "stack": stack, "endpoint": endpoint, **medians(figures)}
        for (app, stack, endpoint), figures in rounds.items()
    ]
    print(report(results, args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


class serving:
    """One server process on core 0 and a free port, stopped on exit."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.port = _free_port()

    def __enter__(self) -> int:
        bind = ["--bind", f"127.0.0.1:{self.port}"] if "gunicorn" in self.command else [
            "--host", "127.0.0.1", "--port", str(self.port)]  # fmt: skip
        env = {**os.environ, "BENCH_THREADS": str(THREADS)}
        # asgiref's adapter logs a traceback for each request it fails: counted, not shown.
        self.process = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, *self.command, *bind],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json", timeout=1).read()
                return self.port
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"{self.command} did not start")

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run_wrk(url: str, seconds: int) -> dict[str, float]:
    command = ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{seconds}s", "--latency", url]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {
        "rps": rps,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
        "error_share": errors / requests if requests else 1.0,
    }


def medians(figures: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(f[key] for f in figures) for key in figures[0]}


def report(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"Adopters' bench, {time.strftime('%Y-%m-%d')}: one worker on one core, wrk -c64, "
        f"{args.rounds} rounds of {args.seconds} s, medians; thread pools of {THREADS}",
        "| app | endpoint | stack | req/s | p99 ms | errors | flask-greenlet ÷ it |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    ours = {(r["app"], r["endpoint"]): r["rps"] for r in results if r["stack"] == "flask-greenlet"}
    for r in results:
        ratio = ours[(r["app"], r["endpoint"])] / r["rps"] if r["rps"] else float("inf")
        lines.append(
            f"| {r['app']} | `{r['endpoint']}` | {r['stack']} | {r['rps']:.0f} | "
            f"{r['p99_ms']:.1f} | {r['error_share']:.1%} | "
            f"{'' if r['stack'] == 'flask-greenlet' else f'{ratio:.2f}x'} |"
        )
    return "\n".join(lines)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
