"""DATABASE_URL as providers hand it out, turned into what SQLAlchemy and asyncpg accept.

Heroku, Render, Supabase, Neon and others write libpq URLs: ``postgres://``, ``sslmode``,
``sslrootcert``, ``connect_timeout``, ``application_name``, and for poolers ``pgbouncer=true``.
asyncpg takes some of these as keyword arguments of other names and types, and refuses the
rest, so the URL is split: what SQLAlchemy can pass on stays in it, the rest becomes
``DatabaseOptions`` for the engine's ``connect_args``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

POSTGRES_SCHEMES = frozenset(
    {"postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg", "postgresql+psycopg2"}
)
_KEPT_IN_URL = {"sslmode": "ssl", "ssl": "ssl", "target_session_attrs": "target_session_attrs"}
_IGNORED = frozenset({"channel_binding", "gssencmode", "fallback_application_name"})
_OPTIONS = frozenset(
    {"connect_timeout", "application_name", "sslrootcert", "sslcert", "sslkey", "pgbouncer"}
)
_VERIFYING_SSL_MODES = frozenset({"verify-ca", "verify-full"})


class DatabaseURLError(ValueError):
    """A DATABASE_URL the app cannot use, with the reason."""


@dataclass(frozen=True)
class DatabaseOptions:
    """What the URL asked for that asyncpg takes as keyword arguments, not in the URL."""

    connect_timeout: float | None = None
    application_name: str | None = None
    sslmode: str | None = None
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    pgbouncer: bool = False

    def ssl_context(self) -> ssl.SSLContext | None:
        """A context that trusts ``sslrootcert`` (and presents ``sslcert``), or None when the
        URL named no certificate and the ``ssl`` mode in the URL is enough."""
        if self.sslrootcert is None and self.sslcert is None:
            return None
        context = ssl.create_default_context(cafile=self.sslrootcert)
        if self.sslmode not in _VERIFYING_SSL_MODES:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        elif self.sslmode == "verify-ca":
            context.check_hostname = False
        if self.sslcert is not None:
            context.load_cert_chain(self.sslcert, self.sslkey)
        return context


def split_database_url(raw: str) -> tuple[str, DatabaseOptions]:
    """The async SQLAlchemy URL, and the options it carried that go to asyncpg separately."""
    parts = urlsplit(raw.strip())
    scheme = parts.scheme.lower()
    if scheme in {"sqlite", "sqlite+aiosqlite"}:
        # urlunsplit would drop the empty host of sqlite:///path, so swap the scheme as text.
        return "sqlite+aiosqlite:" + raw.strip().split(":", 1)[1], DatabaseOptions()
    if scheme not in POSTGRES_SCHEMES:
        raise DatabaseURLError(
            f"DATABASE_URL scheme {parts.scheme!r} is not supported: use postgresql:// or sqlite:///"
        )
    kept, options = [], {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _IGNORED:
            continue
        if key in _KEPT_IN_URL:
            kept.append((_KEPT_IN_URL[key], value))
            if key in ("sslmode", "ssl"):
                options["sslmode"] = value
        elif key in _OPTIONS:
            options[key] = value
        else:
            raise DatabaseURLError(f"DATABASE_URL parameter {key!r} is not supported")
    url = urlunsplit(parts._replace(scheme="postgresql+asyncpg", query=urlencode(kept)))
    return url, _options(options)


def _options(found: dict[str, str]) -> DatabaseOptions:
    try:
        timeout = float(found["connect_timeout"]) if "connect_timeout" in found else None
    except ValueError:
        raise DatabaseURLError("DATABASE_URL connect_timeout must be a number of seconds") from None
    return DatabaseOptions(
        connect_timeout=timeout if timeout else None,  # libpq: 0 means wait forever
        application_name=found.get("application_name"),
        sslmode=found.get("sslmode"),
        sslrootcert=found.get("sslrootcert"),
        sslcert=found.get("sslcert"),
        sslkey=found.get("sslkey"),
        pgbouncer=found.get("pgbouncer", "").lower() in {"true", "1", "yes", "on"},
    )


def normalize_database_url(raw: str) -> str:
    """Just the async SQLAlchemy URL of ``split_database_url``."""
    return split_database_url(raw)[0]


def hide_password(url: str) -> str:
    """The URL with its password replaced by ***, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def asyncpg_connect_args(
    options: DatabaseOptions, *, timeout: float, statement_timeout_ms: int
) -> dict[str, Any]:
    """``connect_args`` for the engine: timeouts, session settings, TLS, pooler mode."""
    server_settings = {"application_name": options.application_name or "microblog"}
    if statement_timeout_ms and not options.pgbouncer:
        # Behind PgBouncer in transaction mode a startup setting is refused: set it on the
        # database role instead (ALTER ROLE ... SET statement_timeout), see docs/scaling.md.
        server_settings["statement_timeout"] = str(statement_timeout_ms)
    args: dict[str, Any] = {
        "server_settings": server_settings,
        "timeout": min(timeout, options.connect_timeout or timeout),
        "command_timeout": timeout,
    }
    if (context := options.ssl_context()) is not None:
        args["ssl"] = context
    if options.pgbouncer:
        # Transaction pooling hands each transaction to any server connection: no statement
        # may be prepared under a name another connection could reuse, nor kept.
        args["statement_cache_size"] = 0
        args["prepared_statement_cache_size"] = 0
        args["prepared_statement_name_func"] = _unique_statement_name
    return args


def _unique_statement_name() -> str:
    import uuid

    return f"__asyncpg_{uuid.uuid4()}__"
