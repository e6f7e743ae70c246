"""What the numbers were measured on: the machine and the versions of everything that matters."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import databases

PACKAGES = (
    "flask", "sqlalchemy", "asyncpg", "greenlet", "uvicorn", "uvloop", "httptools", "pydantic",
    "fastapi", "starlette", "quart", "gunicorn", "psycopg",
)  # fmt: skip


def describe() -> str:
    cpu = _first_line_with("/proc/cpuinfo", "model name").split(":", 1)[-1].strip()
    memory_kib = int(_first_line_with("/proc/meminfo", "MemTotal").split()[1])
    with databases.connect("postgres") as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout
    versions = ", ".join(f"{name} {_version(name)}" for name in PACKAGES)
    return "\n".join(
        [
            f"- CPU: {os.cpu_count()} cores ({cpu}), {memory_kib / 1024**2:.0f} GiB RAM, "
            f"Linux {platform.release()}",
            f"- PostgreSQL {postgres} on the same machine (unpinned, trust auth over loopback)",
            f"- Python {platform.python_version()}; {versions}",
            f"- {wrk.splitlines()[0] if wrk else 'wrk'}",
        ]
    )


def _first_line_with(path: str, prefix: str) -> str:
    for line in Path(path).read_text().splitlines():
        if line.startswith(prefix):
            return line
    return ""


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"
