"""What one request costs our app, in CPU instructions: stable where wall-clock times are not.

Usage: ``python bench/cost.py [--check bench/cost-baseline.json] [--save FILE]
[--peer fastapi_fast]``.

Each endpoint's requests are sent in process, one after another, straight to the ASGI app that
uvicorn would serve (request ids, load shedding, the bridge, Flask, SQLAlchemy, asyncpg to a
real PostgreSQL), under valgrind's instruction counter. Two runs per endpoint, with few and with
many requests, share everything else (imports, startup, warm-up), so their difference divided
by the extra requests is the instructions of one request in our process. The database server's
own work is another process and is not counted. ``--check`` fails (exit 1) when an endpoint
costs more than 10 % above the baseline's figure. ``--peer`` counts a peer of ``peers/`` the
same way, on the same database (its instructions ÷ ours: what our throughput should be against
it where the CPU of the server is what runs out, without a wall clock's noise).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SERVER = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
DATABASE = f"microblog_cost_{os.getpid()}"
ENDPOINTS = {
    "GET /api/posts": ("GET", "/api/posts", b"limit=20", b""),
    "GET /api/posts/<id>": ("GET", "/api/posts/7", b"", b""),
    "POST /api/posts": ("POST", "/api/posts", b"", b'{"body": "a post from the cost check"}'),
}
WARMUP, FEW, MANY = 50, 20, 220
OURS = "microblog"
RISE_ALLOWED = 0.10


# --- the inner run: N requests to one endpoint, in this process --------------------------


def serve_requests(endpoint: str, count: int, stack: str = OURS) -> None:
    """Start the app (or a peer) on its ASGI lifespan, warm up, send ``count`` requests, stop."""
    import uvloop  # what uvicorn runs the app on (--loop uvloop)

    if stack == OURS:
        sys.path.insert(0, str(REPO / "src"))
        from app import create_asgi_app
        from app.config import Settings

        app = create_asgi_app(Settings())  # from the environment the outer run sets
    else:
        sys.path.insert(0, str(REPO / "bench" / "peers"))
        app = importlib.import_module(stack).app
    uvloop.run(_drive(app, endpoint, count))


async def _drive(app: Any, endpoint: str, count: int) -> None:
    lifespan = _Lifespan(app)
    await lifespan.start()
    try:
        token = os.environ["COST_TOKEN"]
        for _ in range(WARMUP):
            await _request(app, endpoint, token)
        for _ in range(count):
            await _request(app, endpoint, token)
    finally:
        await lifespan.stop()


class _Lifespan:
    def __init__(self, app: Any) -> None:
        self._app, self._inbox, self._outbox = app, asyncio.Queue(), asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.create_task(self._app(scope, self._inbox.get, self._outbox.put))
        await self._inbox.put({"type": "lifespan.startup"})
        message = await self._outbox.get()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"the app did not start: {message}")

    async def stop(self) -> None:
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._outbox.get()
        assert self._task is not None
        await self._task


async def _request(app: Any, endpoint: str, token: str) -> None:
    method, path, query, body = ENDPOINTS[endpoint]
    headers = [(b"host", b"127.0.0.1"), (b"user-agent", b"cost-check")]
    if method == "POST":
        headers += [
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    sent = False
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    if not statuses or statuses[0] >= 300:
        raise RuntimeError(f"{endpoint} answered {statuses}")


# --- the outer run: a database, valgrind, the figures -------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", type=Path, help="a baseline JSON to compare against")
    parser.add_argument("--save", type=Path, help="write the figures as JSON here")
    parser.add_argument("--peer", help="also count a peer of bench/peers, e.g. fastapi_fast")
    parser.add_argument(
        "--serve", nargs=3, metavar=("ENDPOINT", "COUNT", "STACK"), help=argparse.SUPPRESS
    )
    options = parser.parse_args()
    if options.serve:
        serve_requests(options.serve[0], int(options.serve[1]), options.serve[2])
        return 0
    stacks = [OURS] + ([options.peer] if options.peer else [])
    counted = measure(stacks)
    figures = counted[OURS]
    print(render(figures, _load(options.check)))
    if options.peer:
        print()
        print(render_peer(figures, counted[options.peer], options.peer))
    if options.save:
        options.save.write_text(json.dumps(figures, indent=2) + "\n")
    if options.check:
        rises = too_costly(figures, _load(options.check))
        for line in rises:
            print(f"FAIL: {line}", file=sys.stderr)
        return 1 if rises else 0
    return 0


def measure(
    stacks: list[str],
    endpoints: tuple[str, ...] = tuple(ENDPOINTS),
    import_from: Path | None = None,
) -> dict[str, dict[str, int]]:
    """Instructions per request, for each stack and endpoint; a stack is ours, a module of
    ``peers/``, or one of ``import_from``."""
    token = secrets.token_urlsafe(32)
    env = _environment(token)
    if import_from is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(import_from), env.get("PYTHONPATH")]))
    asyncio.run(_create_database(env["DATABASE_URL"], token))
    try:
        return {
            stack: {endpoint: _per_request(endpoint, env, stack) for endpoint in endpoints}
            for stack in stacks
        }
    finally:
        asyncio.run(_drop_database())


def _per_request(endpoint: str, env: dict[str, str], stack: str) -> int:
    few, many = (_instructions(endpoint, count, env, stack) for count in (FEW, MANY))
    return round((many - few) / (MANY - FEW))


def _instructions(endpoint: str, count: int, env: dict[str, str], stack: str) -> int:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "cachegrind.out"
        command = [
            "valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}",
            sys.executable, __file__, "--serve", endpoint, str(count), stack,
        ]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"{endpoint} x{count} failed:\n{done.stderr[-3000:]}")
        match = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
        if match is None:
            raise RuntimeError(f"no instruction count in {out}")
        return int(match.group(1))


def _environment(token: str) -> dict[str, str]:
    return {
        **os.environ,
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(36),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"{SERVER}/{DATABASE}",
        "DB_POOL_SIZE": "4",
        "DB_MAX_OVERFLOW": "0",
        "COST_TOKEN": token,
        "PYTHONHASHSEED": "0",
        # Valgrind is tens of times slower than the CPU: the overload guard would shed.
        "OVERLOAD_MAX_LAG_MS": "0",
        # One token writes everything here: the limit is counted on every write, never reached.
        "RATE_LIMIT_API_WRITE": "1000000000/60",
    }


async def _create_database(database_url: str, token: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(f"{SERVER}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}"')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    migrate = [str(VENV_BIN / "alembic"), "upgrade", "head"]
    env = {**os.environ, "DATABASE_URL": database_url}
    process = await asyncio.create_subprocess_exec(
        *migrate, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, errors = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"migrations failed:\n{errors.decode()[-3000:]}")
    conn = await asyncpg.connect(f"{SERVER}/{DATABASE}")
    try:
        user_id = await conn.fetchval(
            "INSERT INTO users (username, email, password_hash, created_at) "
            "VALUES ('writer', 'writer@example.com', 'unused', now()) RETURNING id"
        )
        await conn.execute(
            "INSERT INTO posts (body, author_id, created_at) "
            "SELECT 'post ' || n, $1, now() FROM generate_series(1, 100) AS n",
            user_id,
        )
        digest = __import__("hashlib").sha256(token.encode()).hexdigest()
        await conn.execute(
            "INSERT INTO tokens (token_hash, user_id, created_at, expires_at) "
            "VALUES ($1, $2, now(), now() + interval '1 day')",
            digest,
            user_id,
        )
    finally:
        await conn.close()


async def _drop_database() -> None:
    import asyncpg

    admin = await asyncpg.connect(f"{SERVER}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    finally:
        await admin.close()


def _load(path: Path | None) -> dict[str, int]:
    return json.loads(path.read_text()) if path else {}


def too_costly(figures: dict[str, int], baseline: dict[str, int]) -> list[str]:
    return [
        f"{endpoint}: {figures[endpoint]:,} instructions a request, "
        f"{figures[endpoint] / baseline[endpoint] - 1:+.1%} "
        f"on the baseline's {baseline[endpoint]:,}"
        for endpoint in figures
        if endpoint in baseline and figures[endpoint] > baseline[endpoint] * (1 + RISE_ALLOWED)
    ]


def render(figures: dict[str, int], baseline: dict[str, int]) -> str:
    lines = [
        "| endpoint | instructions a request | baseline | change |",
        "| --- | ---: | ---: | ---: |",
    ]
    for endpoint, count in figures.items():
        was = baseline.get(endpoint)
        change = f"{count / was - 1:+.1%}" if was else ""
        lines.append(f"| {endpoint} | {count:,} | {f'{was:,}' if was else ''} | {change} |")
    return "\n".join(lines)


def render_peer(ours: dict[str, int], theirs: dict[str, int], peer: str) -> str:
    lines = [
        f"| endpoint | ours | {peer} | {peer} ÷ ours |",
        "| --- | ---: | ---: | ---: |",
    ]
    for endpoint, count in ours.items():
        lines.append(
            f"| {endpoint} | {count:,} | {theirs[endpoint]:,} | {theirs[endpoint] / count:.2f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
