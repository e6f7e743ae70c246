"""The one way the app connects to Redis: redis-py's asyncio client, TLS as ``rediss://``
asks, with certificate checks that the deployer can relax (managed Redis services such as
Heroku's hand out self-signed certificates) or point at their own CA."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from redis.asyncio import Redis

REDIS_TIMEOUT_S = 0.5
TlsVerify = Literal["required", "none"]


def redis_client(url: str, *, tls_verify: TlsVerify = "required", ca_file: str = "") -> Redis:
    """A client for ``url``; no connection is made until the first command."""
    from redis.asyncio import Redis

    options: dict[str, object] = {
        "socket_timeout": REDIS_TIMEOUT_S,
        "socket_connect_timeout": REDIS_TIMEOUT_S,
    }
    if urlsplit(url).scheme == "rediss":
        options["ssl_cert_reqs"] = tls_verify
        options["ssl_check_hostname"] = tls_verify == "required"
        if ca_file:
            options["ssl_ca_certs"] = ca_file
    return Redis.from_url(url, **options)  # type: ignore[arg-type]


def redis_address(url: str) -> str:
    """``url`` without its credentials, for log lines."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}"


def explain_redis_failure(exc: BaseException) -> str:
    """What went wrong, and for a certificate the setting that fixes it."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"its TLS certificate was refused ({cause.verify_message}); for a managed "
                f"Redis with a self-signed certificate set REDIS_TLS_VERIFY=none, or give "
                f"its CA in REDIS_TLS_CA_FILE"
            )
        cause = cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {exc}"
