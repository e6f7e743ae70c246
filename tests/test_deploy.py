"""Deploying to a buildpack PaaS: the files it reads, and a build-and-run as it would do it."""

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url
from support.databases import TEST_SECRET, fresh_database
from support.processes import ROOT, free_port

BUILD_DATABASE = "buildpack"
OTHER_MANAGERS = ("Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock", "runtime.txt", ".venv")


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_requirements_txt_pins_what_constraints_txt_pins():
    check = [sys.executable, str(ROOT / "tools" / "runtime_requirements.py"), "--check"]
    assert subprocess.run(check, capture_output=True, text=True).returncode == 0
    pins = dict(
        line.lower().split("==")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    )
    required = [line for line in (ROOT / "requirements.txt").read_text().splitlines()]
    for line in required:
        if "==" in line:
            name, version = line.lower().split("==")
            assert pins[name] == version, line
    assert required[-1] == ".", "the app itself comes last, built from this repository"
    for runtime in ("flask", "uvicorn", "asyncpg", "sqlalchemy", "alembic", "redis"):
        assert any(line.lower().startswith(f"{runtime}==") for line in required), runtime


def tracked_files() -> list[str]:
    git = shutil.which("git") or "git"
    listing = subprocess.run(
        [git, "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return listing.stdout.splitlines()


def test_one_package_manager_and_a_python_version_the_project_supports():
    tracked = tracked_files()
    assert not [name for name in tracked if name.split("/")[0] in OTHER_MANAGERS]
    version = (ROOT / ".python-version").read_text().strip()
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert re.fullmatch(r"3\.\d+", version)
    assert tuple(map(int, version.split("."))) >= tuple(map(int, requires[2:].split(".")))


def test_app_json_declares_the_add_ons_config_and_health_checks():
    manifest = json.loads((ROOT / "app.json").read_text())
    plans = {addon["plan"] for addon in manifest["addons"]}
    assert {"heroku-postgresql", "heroku-redis"} <= plans
    env = manifest["env"]
    assert env["APP_ENV"]["value"] == "production"
    assert env["SECRET_KEY"]["generator"] == "secret"
    assert env["ALLOWED_HOSTS"]["required"] is True
    paths = {check["path"] for check in manifest["healthchecks"]["web"]}
    assert paths == {"/healthz", "/readyz"}


def test_the_procfile_keeps_connections_longer_than_the_router_and_stops_before_the_kill():
    web = procfile()["web"]
    keep_alive = int(re.search(r"--timeout-keep-alive (\d+)", web).group(1))
    grace = int(re.search(r"--timeout-graceful-shutdown (\d+)", web).group(1))
    assert keep_alive > 90  # Heroku's router keeps idle connections 90 s
    assert grace < 30  # the platform kills 30 s after SIGTERM
    assert "--no-proxy-headers" in web and "--forwarded-allow-ips" not in web
    assert "--workers" not in web  # uvicorn reads WEB_CONCURRENCY
    assert procfile()["release"] == "alembic upgrade head"


@pytest.fixture
async def build_database(postgres_available):
    url = await fresh_database(postgres_available, BUILD_DATABASE)
    return url.replace("postgresql+asyncpg://", "postgresql://")  # as a platform writes it


def copy_of_the_repository(target: Path) -> Path:
    """What a buildpack receives: the files git tracks, nothing else (no .venv, no caches)."""
    for name in tracked_files():
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


def build_like_a_buildpack(app_dir: Path) -> Path:
    environment = app_dir / ".heroku-venv"
    venv.create(environment, with_pip=True)
    pip = [str(environment / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "-r", "requirements.txt"], cwd=app_dir, check=True, timeout=600)
    return environment / "bin"


@pytest.mark.processes
async def test_a_buildpack_build_runs_the_procfile_through_honcho(build_database, tmp_path):
    app_dir = copy_of_the_repository(tmp_path / "app")
    bin_dir = await asyncio.to_thread(build_like_a_buildpack, app_dir)
    port = free_port()
    (app_dir / ".env").write_text(
        f"PORT={port}\nDATABASE_URL={build_database}\nAPP_ENV=production\n"
        f"SECRET_KEY={TEST_SECRET}\nALLOWED_HOSTS=127.0.0.1\n"
    )
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    honcho = [sys.executable, "-m", "honcho", "start"]

    release = await asyncio.to_thread(
        subprocess.run, [*honcho, "release"], cwd=app_dir, env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert release.returncode == 0, release.stdout + release.stderr
    web = subprocess.Popen(
        [*honcho, "web"], cwd=app_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(150):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/api/posts")).json() == {"items": [], "next_cursor": None}
    finally:
        web.send_signal(signal.SIGTERM)
        output = await asyncio.to_thread(lambda: web.communicate(timeout=60)[0].decode())
    assert "Traceback" not in output, output

    heads = await asyncio.to_thread(
        subprocess.run, [str(bin_dir / "alembic"), "heads"], cwd=app_dir, env=env,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    head = heads.stdout.split()[0]
    conn = await asyncpg.connect(build_database)
    try:
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == head
        # The release phase left no connection of its own open behind it.
        others = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            make_url(build_database).database,
        )
    finally:
        await conn.close()
    assert others == 0
