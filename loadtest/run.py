"""``make loadtest``: seed, serve, load, verify, and one exit code for all of it.

Without ``HOST`` it migrates and seeds a local PostgreSQL database, starts uvicorn on it with
production settings on a free loopback port, loads it, checks integrity through the API (in
locust) and in the database (here), and stops the server. With ``HOST`` it loads that app only.
Settings come from the environment: HOST, PROFILE, USERS, SPAWN_RATE, RUN_TIME, WORKERS,
LOADTEST_ARGS, DATABASE_URL (local runs), CREDENTIALS and SEED_USERS.
"""

from __future__ import annotations

import asyncio
import csv
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/microblog_load"
READY_TIMEOUT_S = 30

sys.path.insert(0, str(HERE))
from verify import verify  # noqa: E402


def main() -> int:
    env = os.environ
    profile = env.get("PROFILE", "smoke")
    results = HERE / "results" / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{profile}"
    results.mkdir(parents=True)
    host = env.get("HOST", "").rstrip("/")
    credentials = Path(env.get("CREDENTIALS", default_credentials(host)))
    database_url = env.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    server = None
    try:
        if not host:
            prepare_local_database(database_url, credentials, int(env.get("SEED_USERS", "200")))
            # The server it starts shares this token with locust, which reads its /metrics.
            os.environ.setdefault("METRICS_TOKEN", secrets.token_urlsafe(32))
            server, host = start_server(database_url, results / "server.log")
        elif not credentials.exists():
            register_through_api(host, credentials, int(env.get("SEED_USERS", "50")))
        locust_code = run_locust(host, profile, credentials, results)
        database_ok = True
        if server is not None:
            report = verify(results / "ledger.jsonl", database_url=database_url)
            database_ok = report.ok
            verdict = "PASS" if report.ok else "FAIL"
            line = f"{verdict}  integrity in the database  ({report.summary()})"
            print(line)
            with (results / "verdict.txt").open("a") as file:
                file.write(line + "\n")
    except SetupError as error:
        print(f"LOADTEST FAIL before the load: {error}", flush=True)
        return 2
    finally:
        if server is not None:
            stop_server(server)
    passed = locust_code == 0 and database_ok
    print(f"\nLOADTEST {'PASS' if passed else 'FAIL'}: report, CSV and ledger in {results}")
    return 0 if passed else 1


def default_credentials(host: str) -> Path:
    """Accounts of the local database, or of one deployed host: never one for the other."""
    if not host:
        return HERE / "results" / "credentials.csv"
    netloc = urlsplit(host).netloc.replace(":", "_")
    return HERE / "results" / f"credentials-{netloc}.csv"


def run_locust(host: str, profile: str, credentials: Path, results: Path) -> int:
    env = os.environ
    command = [
        sys.executable, "-m", "locust",
        "--config", str(HERE / "profiles" / f"{profile}.conf"),
        "--host", host,
        "--credentials", str(credentials),
        "--ledger", str(results / "ledger.jsonl"),
        "--verdict-file", str(results / "verdict.txt"),
        "--html", str(results / "report.html"),
        "--csv", str(results / "stats"),
    ]  # fmt: skip
    for variable, option in (
        ("USERS", "--users"),
        ("SPAWN_RATE", "--spawn-rate"),
        ("RUN_TIME", "--run-time"),
    ):
        if env.get(variable):
            command += [option, env[variable]]
    if int(env.get("WORKERS", "0")) > 0:
        # The master listens on loopback, on a port of this run's own: on locust's fixed 5557
        # a second run on the machine cannot start, and its workers join the first one's.
        port = str(free_port())
        command += ["--processes", env["WORKERS"], "--master-bind-host", "127.0.0.1"]
        command += ["--master-bind-port", port, "--master-port", port]
    command += shlex.split(env.get("LOADTEST_ARGS", ""))
    print("$", shlex.join(command), flush=True)
    # From loadtest/, so locust reads locust.conf there as its defaults, under the profile.
    return subprocess.call(command, cwd=HERE)


def prepare_local_database(database_url: str, credentials: Path, users: int) -> None:
    asyncio.run(create_database_if_missing(database_url))
    app_env = {**os.environ, "DATABASE_URL": database_url}
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"], cwd=REPO, env=app_env, check=True
    )
    first = first_username(credentials)
    if first is None or not asyncio.run(user_exists(database_url, first)):
        password = secrets.token_urlsafe(12)
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "seed", "--users", str(users),
             "--posts", str(users * 10), "--password", password, "--credentials",
             str(credentials)],
            cwd=REPO, env=app_env, check=True,
        )  # fmt: skip


async def connect(database_url: str, database: str | None = None) -> Any:
    """An asyncpg connection to the URL's server, to its database or to ``database``."""
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    return await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=database or url.database,
        timeout=10,
    )


async def create_database_if_missing(database_url: str) -> None:
    from sqlalchemy.engine import make_url

    database = make_url(database_url).database
    admin = await connect(database_url, "postgres")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()


def first_username(credentials: Path) -> str | None:
    if not credentials.exists():
        return None
    with credentials.open(newline="") as file:
        first = next(csv.DictReader(file), None)
    return first["username"] if first else None


async def user_exists(database_url: str, username: str) -> bool:
    conn = await connect(database_url)
    try:
        return await conn.fetchval("SELECT 1 FROM users WHERE username = $1", username) is not None
    finally:
        await conn.close()


SETUP_WAIT_S = 60  # the longest Retry-After setup waits out; past it, it goes on with fewer


def register_through_api(host: str, credentials: Path, users: int) -> None:
    """Against a deployed app, the kit's accounts are registered like anyone's, at the pace the
    app allows: a 429 or 503 is waited out (Retry-After), and when the app allows no more from
    this address for long, the run goes on with the accounts it has."""
    import requests

    password = secrets.token_urlsafe(12)
    registered: list[str] = []
    with requests.Session() as session:
        while len(registered) < users:
            name = f"lt_{secrets.token_hex(6)}"
            body = {"username": name, "email": f"{name}@example.com", "password": password}
            response = session.post(f"{host}/api/users", json=body, timeout=30)
            if response.status_code == 201:
                registered.append(name)
                continue
            wait = _retry_after(response)
            if response.status_code not in (429, 503) or wait is None:
                raise SetupError(f"registering an account answered {_answer(response)}")
            if wait > SETUP_WAIT_S:
                print(
                    f"registered {len(registered)} of {users} accounts; the app allows no more "
                    f"from this address for {wait:.0f} s, so the users share those",
                    flush=True,
                )
                break
            time.sleep(wait)
    if not registered:
        raise SetupError(
            "the app registered no account for the kit: give it accounts instead "
            "(flask seed --credentials FILE on the server, then CREDENTIALS=FILE)"
        )
    credentials.parent.mkdir(parents=True, exist_ok=True)
    with credentials.open("w", newline="") as file:
        credentials.chmod(0o600)
        writer = csv.writer(file)
        writer.writerow(["username", "password"])
        writer.writerows((name, password) for name in registered)


class SetupError(RuntimeError):
    """The run cannot start; the message says why and what to do."""


def _retry_after(response: Any) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _answer(response: Any) -> str:
    """A status and, for a problem document, its title, detail and request id."""
    text = f"{response.status_code}"
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        problem = response.json()
        text += f" {problem.get('title', '')}: {problem.get('detail', '')}"
        text += f" (request id {problem.get('request_id', 'none')})"
    return text


def start_server(database_url: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "production",
        "ALLOWED_HOSTS": "127.0.0.1",
        # Every simulated user comes from this one address: per-address limits would only
        # measure themselves. Per-account limits stay on.
        "RATE_LIMIT_SIGN_IN_ADDRESS": "off",
        "RATE_LIMIT_REGISTER_ADDRESS": "off",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
    }
    # As the Procfile serves it: keep-alive longer than any client's idle time, no proxy.
    command = [sys.executable, "-m", "uvicorn", "asgi:app", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning", "--no-access-log",
               "--no-proxy-headers", "--timeout-keep-alive", "95"]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    host = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited at startup; see {log_path}")
        try:
            with urllib.request.urlopen(f"{host}/readyz", timeout=2) as response:
                if response.status == 200:
                    print(f"app serving on {host} (pid {process.pid})", flush=True)
                    return process, host
        except OSError:
            time.sleep(0.2)
    stop_server(process)
    raise RuntimeError(f"the app did not become ready in {READY_TIMEOUT_S}s; see {log_path}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
