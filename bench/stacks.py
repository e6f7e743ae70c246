"""The stacks under test: how each one's server is started, on which port, with what settings."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
POOL_SIZE = 20
UVICORN_FLAGS = (
    "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
)  # fmt: skip


@dataclass(frozen=True)
class Stack:
    name: str
    title: str
    port: int
    app: str  # what the server is told to serve
    server: str = "uvicorn"
    app_dir: str | None = "bench/peers"  # where uvicorn imports the app from; None: the repo
    extra_env: dict[str, str] = field(default_factory=dict)

    def command(self, workers: int = 1) -> list[str]:
        bind = ("--host", "127.0.0.1", "--port", str(self.port))
        if self.server == "gunicorn":
            return [
                str(VENV_BIN / "gunicorn"), "-k", "gthread", "--threads", "32", "-w", str(workers),
                "--bind", f"127.0.0.1:{self.port}", "--chdir", str(REPO / "bench" / "peers"),
                "--log-level", "warning", self.app,
            ]  # fmt: skip
        app_dir = ("--app-dir", self.app_dir) if self.app_dir else ()
        return [
            str(VENV_BIN / "uvicorn"), self.app, *app_dir, *bind, *UVICORN_FLAGS,
            "--workers", str(workers),
        ]  # fmt: skip

    def environment(self, database_url: str, workers: int) -> dict[str, str]:
        return {
            "DATABASE_URL": database_url,
            "DB_POOL_SIZE": str(POOL_SIZE),
            "DB_MAX_OVERFLOW": "0",
            **self.extra_env,
        }


OURS = "microblog"
REFERENCE = "starlette_raw"

STACKS = (
    Stack(
        OURS,
        "microblog (async Flask, greenlet bridge, Core + asyncpg)",
        18101,
        "asgi:app",
        app_dir=None,
        # A fresh random secret per run: production mode refuses placeholders.
        extra_env={
            "APP_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(36),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            # The same pool of 20 as the peers, plus the live timeline's listening connection.
            "DB_MAX_CONNECTIONS": str(POOL_SIZE + 1),
            # One token writes everything here: the limit is counted on every write, never reached.
            "RATE_LIMIT_API_WRITE": "1000000000/60",
        },
    ),
    Stack("fastapi", "FastAPI + AsyncSession (ORM) + asyncpg", 18102, "fastapi_app:app"),
    Stack(
        "fastapi_fast",
        "FastAPI written for speed on our data layer: Core, autocommit, pydantic-core",
        18106,
        "fastapi_fast:app",
    ),
    Stack("quart", "Quart + AsyncSession (ORM) + asyncpg", 18103, "quart_app:app"),
    Stack(
        "flask_sync",
        "sync Flask + Session (ORM) + psycopg 3, gunicorn gthread x32",
        18104,
        "flask_sync_app:create_app()",
        server="gunicorn",
    ),
    Stack(REFERENCE, "Starlette + raw asyncpg pool (reference)", 18105, "starlette_raw:app"),
)
STACKS_BY_NAME = {stack.name: stack for stack in STACKS}
