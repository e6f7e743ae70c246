"""The library builds as a wheel and an sdist that twine accepts, and the wheel alone, in a fresh
virtualenv, serves a Flask app under uvicorn."""

import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx

LIBRARY = Path(__file__).resolve().parents[1]
CONSTRAINTS = LIBRARY.parent / "constraints.txt"  # the repository's pins, when there is one

APP = """
import asyncio, threading
from flask_greenlet import ASGIApp, AsyncFlask

app = AsyncFlask(__name__)

@app.get("/")
async def index():
    await asyncio.sleep(0.01)
    return {"served_by": "flask-greenlet", "thread": threading.current_thread().name}

asgi = ASGIApp(app)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build(out: Path) -> tuple[Path, Path]:
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(LIBRARY)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = out.glob("flask_greenlet-*.whl")
    [sdist] = out.glob("flask_greenlet-*.tar.gz")
    return wheel, sdist


def test_the_wheel_alone_serves_an_app_under_uvicorn(tmp_path):
    wheel, sdist = build(tmp_path / "dist")
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    names = zipfile.ZipFile(wheel).namelist()
    assert "flask_greenlet/py.typed" in names
    assert not [n for n in names if n.startswith(("app/", "tests/"))]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pins = ["-c", str(CONSTRAINTS)] if CONSTRAINTS.exists() else []
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", *pins, str(wheel), "uvicorn"],
        check=True,
        timeout=300,
    )
    installed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    ).stdout.lower()
    # Flask, greenlet and uvicorn with what they need: nothing of the microblog.
    for absent in ("sqlalchemy", "asyncpg", "pydantic", "argon2", "redis", "microblog"):
        assert absent not in installed

    (tmp_path / "hello.py").write_text(APP)
    port = free_port()
    server = subprocess.Popen(
        [python, "-m", "uvicorn", "hello:asgi", "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)
        assert reply.json() == {"served_by": "flask-greenlet", "thread": "MainThread"}
    finally:
        server.terminate()
        server.wait(10)
