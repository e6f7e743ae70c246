"""Real processes the tests start and always end: uvicorn serving the app, PgBouncer, a
throwaway PostgreSQL cluster, redis-server over TLS. Each listens on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from app import create_app

from .databases import TEST_SECRET, make_settings, reset_schema

ROOT = Path(__file__).resolve().parents[2]
PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))


def missing(message: str) -> None:
    """CI fails when a tool the suite needs is absent; elsewhere its tests are skipped."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)


def end_process_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@asynccontextmanager
async def uvicorn_serving(
    database_url: str,
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    fresh_schema: bool = True,
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real uvicorn serving ``asgi:app`` in production mode on a fresh schema (unless
    another instance shares it), on a free port; yields its base URL and process, and ends it
    however the block ends."""
    if fresh_schema:
        app = create_app(make_settings(database_url))
        await app.startup()
        await reset_schema(app)
        await app.shutdown()
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET,
        "APP_ENV": "production",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        **(env or {}),
    }
    command = [sys.executable, "-m", "uvicorn", "asgi:app", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning", *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: --workers children end with it
    )
    scheme = "https" if "--ssl-certfile" in args else "http"
    base_url = f"{scheme}://127.0.0.1:{port}"
    try:
        await wait_until_up(base_url, process)
        yield base_url, process
    finally:
        end_process_group(process)


async def wait_until_up(
    base_url: str, process: subprocess.Popen[bytes], timeout: float = 15.0
) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(verify=False) as client:  # noqa: S501 (tests' own certificates)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"uvicorn exited: {output}")
            try:
                if (await client.get(f"{base_url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    pytest.fail("uvicorn did not come up")


def owned_by_postgres(prefix: str) -> Path:
    """A fresh folder that PostgreSQL's tools, which refuse to run as root, can write."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    return folder


@contextmanager
def pgbouncer_in_front_of(server_url: str) -> Iterator[str]:
    """A real PgBouncer in transaction pooling mode in front of ``server_url``, as managed
    PostgreSQL offers (Supabase's and Neon's poolers); yields a URL saying ``pgbouncer=true``."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        missing("PgBouncer is not installed (apt-get install pgbouncer)")
    server = make_url(server_url)
    folder = owned_by_postgres("microblog-pgbouncer-")
    port = free_port()
    (folder / "users.txt").write_text(f'"{server.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.host} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        "pool_mode = transaction\nmax_client_conn = 500\ndefault_pool_size = 20\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
    )
    as_postgres = ["-u", "postgres"] if os.geteuid() == 0 else []
    process = subprocess.Popen([binary, *as_postgres, str(folder / "pgbouncer.ini")])
    try:
        wait_for_port(port, process)
        yield server.set(port=port, query={"pgbouncer": "true"}).render_as_string(
            hide_password=False
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


class Cluster:
    """A throwaway PostgreSQL cluster (initdb, pg_ctl, a free port), run as the ``postgres``
    user when we are root."""

    def __init__(self, base: Path) -> None:
        self.base, self.data, self.port = base, base / "data", free_port()
        self.bin = PG_BINS[-1].parent
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=60)

    def initdb(self) -> None:
        self.run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                 "--auth=trust", "-E", "UTF8", "--no-sync")  # fmt: skip

    def pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
                 "-l", str(self.base / "log"), "-w", action, *extra)  # fmt: skip


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A PostgreSQL of the test's own, started, and stopped and removed afterwards."""
    if not PG_BINS:
        missing("PostgreSQL's server binaries are not installed")
    cluster = Cluster(owned_by_postgres("microblog-pg-"))
    cluster.initdb()
    cluster.pg_ctl("start")
    try:
        yield cluster
    finally:
        _stop_and_remove(cluster)


@contextmanager
def standby_of(primary: Cluster) -> Iterator[Cluster]:
    """A hot standby of ``primary``: a base backup streamed from it (``pg_basebackup -R``
    writes the replication settings), started on a port of its own, removed afterwards."""
    standby = Cluster(owned_by_postgres("microblog-standby-"))
    standby.run(str(standby.bin / "pg_basebackup"), "-D", str(standby.data),
                "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                "-R", "-X", "stream", "--no-sync")  # fmt: skip
    standby.pg_ctl("start")
    try:
        yield standby
    finally:
        _stop_and_remove(standby, maybe_stopped=True)


def _stop_and_remove(cluster: Cluster, *, maybe_stopped: bool = False) -> None:
    """Stop ``cluster`` at once and delete its files; ``maybe_stopped``: the test may have
    stopped it itself."""
    try:
        cluster.pg_ctl("stop", "-m", "immediate")
    except subprocess.CalledProcessError:
        if not maybe_stopped:
            raise
    finally:
        shutil.rmtree(cluster.base, ignore_errors=True)


def self_signed_certificate(folder: Path, common_name: str = "127.0.0.1") -> tuple[Path, Path]:
    """A key and a self-signed certificate for ``common_name``, valid for a day."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={common_name}"),
            *("-addext", f"subjectAltName=IP:{common_name}"),
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


@contextmanager
def redis_over_tls(folder: Path) -> Iterator[tuple[str, Path]]:
    """A real redis-server that speaks only TLS, with a self-signed certificate, as managed
    Redis services run it; yields its ``rediss://`` URL and the certificate (its own CA)."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server is not installed (apt-get install redis-server)")
    key, cert = self_signed_certificate(folder)
    port = free_port()
    process = subprocess.Popen(
        [
            *(str(binary), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"),
            *("--tls-cert-file", str(cert), "--tls-key-file", str(key)),
            *("--tls-auth-clients", "no", "--save", "", "--appendonly", "no"),
            *("--dir", str(folder), "--logfile", str(folder / "redis.log")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, process)
        yield f"rediss://127.0.0.1:{port}/0", cert
    finally:
        end_process_group(process)
