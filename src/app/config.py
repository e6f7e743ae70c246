"""Settings read once from the environment (DATABASE_URL itself is read in database_url.py)."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .database_url import (
    DatabaseOptions,
    DatabaseURLError,
    normalize_database_url,
    split_database_url,
)

CORS_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:]+\](:[0-9]{1,5})?"
)
PROBE_EVERY_S = 0.5  # how often each worker measures the replica's lag
MIN_SECRET_KEY_LENGTH = 32
MIN_DISTINCT_CHARACTERS = 12  # secrets.token_urlsafe(32) has about 30
PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "dev", "development"})
# A variable each platform sets on every dyno, service or machine it runs (never on a laptop).
PLATFORM_MARKERS = {
    "DYNO": "Heroku",
    "RENDER": "Render",
    "FLY_APP_NAME": "Fly.io",
    "RAILWAY_ENVIRONMENT": "Railway",
    "K_SERVICE": "Google Cloud Run",
    "WEBSITE_SITE_NAME": "Azure App Service",
    "DIGITALOCEAN_APP_PLATFORM_COMPONENT_NAME": "DigitalOcean App Platform",
    "KOYEB_SERVICE_NAME": "Koyeb",
}


class ConfigurationError(RuntimeError):
    """The environment does not describe a configuration the app can safely start with."""


class Settings(BaseSettings):
    """Everything the app reads from its environment."""

    # A .env file in the working folder is read too (the environment wins), as honcho does.
    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_file=".env")

    app_env: Literal["development", "test", "production"] = "development"
    secret_key: SecretStr | None = None
    instance_path: Path = Field(default_factory=lambda: Path.cwd() / "instance")
    database_url: str = ""
    database_options: DatabaseOptions = Field(default_factory=DatabaseOptions)
    database_direct_url: str = ""  # for migrations when DATABASE_URL goes through a pooler
    # A streaming replica for reads that may lag (see docs/scaling.md): skipped when it lags
    # more than REPLICA_MAX_LAG_S or is down; a client that wrote reads from the primary for
    # REPLICA_READ_YOUR_WRITES_S.
    database_replica_url: str = ""
    database_replica_options: DatabaseOptions = Field(default_factory=DatabaseOptions)
    replica_max_lag_s: float = Field(default=1.0, gt=0, le=60)
    replica_read_your_writes_s: float = Field(default=5.0, gt=0, le=3600)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=5, ge=0, le=200)
    db_pool_timeout: float = Field(default=10.0, gt=0)
    db_queue_max_wait: float = Field(default=1.5, gt=0)  # shed at once beyond this wait
    db_max_connections: int = Field(default=20, ge=1)  # for all workers of one instance
    db_statement_timeout_ms: int = Field(default=5_000, ge=0)
    db_query_timeout: float = Field(default=5.0, gt=0)  # connect or answer, or 503
    readiness_timeout: float = Field(default=2.0, gt=0)
    # After the stop signal, seconds of serving on while /readyz says 503, so a load balancer's
    # health check takes the instance out before it stops accepting (see docs/scaling.md).
    drain_grace_s: float = Field(default=0.0, ge=0, le=30)
    token_lifetime_hours: int = Field(default=24, ge=1)
    idempotency_key_hours: int = Field(default=24, ge=1, le=24 * 30)  # a key's answer is kept
    password_hash_threads: int = Field(default=2, ge=1, le=32)
    password_queue_timeout: float = Field(default=2.0, gt=0)
    overload_max_lag_ms: int = Field(default=500, ge=0)
    max_content_length: int = Field(default=64 * 1024, ge=1024)
    request_body_timeout: float = Field(default=10.0, gt=0)  # seconds for each piece of a body
    live_max_subscribers: int = Field(default=5000, ge=0)  # open live streams a worker holds
    live_max_streams_per_address: int = Field(default=50, ge=0)  # across workers with Redis
    live_max_streams_per_user: int = Field(default=10, ge=0)  # a bearer token's user
    live_heartbeat_seconds: float = Field(default=15.0, gt=0)  # under proxies' idle timeouts
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    remember_days: int = Field(default=30, ge=1, le=30)
    redis_url: str = ""
    redis_tls_verify: Literal["required", "none"] = "required"  # for rediss:// URLs
    redis_tls_ca_file: str = ""  # a CA bundle that signed the Redis server's certificate
    rate_limit_sign_in_pair: str = "5/900"  # failed sign-ins per account and address, then waits
    rate_limit_sign_in_account: str = "100/900"  # failed sign-ins per account, then strangers wait
    rate_limit_sign_in_address: str = "60/60"  # sign-in and token requests per client address
    rate_limit_register_address: str = "20/3600"  # registrations per client address
    rate_limit_api_write: str = "120/60"  # API writes (post, edit, delete) per bearer token
    rate_limit_prefix: str = "microblog:rl:"
    trusted_proxy_hops: int = Field(default=0, ge=0, le=5)  # X-Forwarded-For entries to trust
    web_concurrency: int = Field(default=1, ge=1)
    allowed_hosts: str = ""  # comma-separated; ".example.com" also allows its subdomains
    flask_debug: bool = False
    log_format: Literal["json", "text"] | None = None  # json in production, text elsewhere
    access_log: bool = True  # one line a request, written by the app (uvicorn's stays off)
    otel_exporter_otlp_endpoint: str = ""  # traces go there over OTLP/HTTP; unset, none made
    metrics_token: SecretStr | None = None  # for /metrics; unset, production serves none
    cors_origins: str = ""  # comma-separated exact origins that may call /api from a browser
    compress_responses: bool = True  # API answers over 1 KiB, when the client accepts it

    @model_validator(mode="before")
    @classmethod
    def _split_database_urls(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        try:
            if raw := data.get("database_url"):
                data["database_url"], data["database_options"] = split_database_url(raw)
            if raw := data.get("database_replica_url"):
                url, options = split_database_url(raw)
                data["database_replica_url"], data["database_replica_options"] = url, options
            if raw := data.get("database_direct_url"):
                data["database_direct_url"] = normalize_database_url(raw)
        except DatabaseURLError as error:
            raise ConfigurationError(str(error)) from None
        return data

    @model_validator(mode="after")
    def _fill_defaults_and_refuse_unsafe_production(self) -> Settings:
        if "app_env" not in self.model_fields_set:
            _refuse_development_on_a_platform(os.environ)
        if self.app_env == "production":
            _require_production_secrets(self)
        if self.database_replica_url:
            _check_replica(self)
        if not self.database_url:
            sqlite_file = self.instance_path / "microblog.sqlite3"
            object.__setattr__(self, "database_url", f"sqlite+aiosqlite:///{sqlite_file}")
        if self.secret_key is None:
            # Never a fallback secret that production could pick up: development keeps one of
            # its own in the instance folder, so sessions survive restarts and reloads; tests
            # get a fresh one each time.
            secret = (
                development_secret(self.instance_path)
                if self.app_env == "development"
                else secrets.token_urlsafe(32)
            )
            object.__setattr__(self, "secret_key", SecretStr(secret))
        return self

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def logs_as_json(self) -> bool:
        return self.log_format == "json" if self.log_format else self.is_production

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def connection_budget(self) -> tuple[int, int]:
        """(pool size, overflow) for one worker, so that ``web_concurrency`` workers together
        never hold more than ``db_max_connections``, counting each worker's live timeline
        listener on PostgreSQL."""
        listener = 0 if self.is_sqlite else 1
        per_worker = max(1, self.db_max_connections // self.web_concurrency - listener)
        pool_size = min(self.db_pool_size, per_worker)
        return pool_size, min(self.db_max_overflow, per_worker - pool_size)

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, value: str) -> str:
        for origin in filter(None, (o.strip() for o in value.split(","))):
            if not CORS_ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"CORS_ORIGINS takes exact origins such as https://app.example.com "
                    f"(scheme, host and port only; no wildcard): {origin!r}"
                )
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @property
    def trusted_hosts(self) -> list[str] | None:
        """The ``Host`` values to answer, or None for any (outside production only)."""
        hosts = [host.strip() for host in self.allowed_hosts.split(",") if host.strip()]
        return hosts or None


def _check_replica(settings: Settings) -> None:
    if not settings.database_url or settings.is_sqlite:
        raise ConfigurationError("DATABASE_REPLICA_URL needs a PostgreSQL DATABASE_URL")
    if settings.database_replica_url.startswith("sqlite"):
        raise ConfigurationError("DATABASE_REPLICA_URL must be a PostgreSQL streaming replica")
    if settings.replica_read_your_writes_s <= settings.replica_max_lag_s + PROBE_EVERY_S:
        raise ConfigurationError(
            "REPLICA_READ_YOUR_WRITES_S must be longer than REPLICA_MAX_LAG_S plus "
            f"{PROBE_EVERY_S} s (the lag check's interval), or a client could miss its write"
        )


def settings_or_exit() -> Settings:
    """The settings, or one line saying what is wrong and exit status 1 (for entry points)."""
    try:
        return Settings()
    except ConfigurationError as error:
        raise SystemExit(f"microblog refuses to start: {error}") from None
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors()
        )
        raise SystemExit(f"microblog refuses to start: {problems}") from None


DEVELOPMENT_SECRET_FILE = "development-secret-key"  # noqa: S105 (a file name)  # nosec B105


def development_secret(instance_path: Path) -> str:
    """The development server's own secret, made once and kept (owner-only) in the instance
    folder, which git ignores."""
    path = instance_path / DEVELOPMENT_SECRET_FILE
    if not path.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def hosting_platform(environ: Mapping[str, str]) -> str | None:
    """The platform whose marker variable ``environ`` holds, if any."""
    return next((name for marker, name in PLATFORM_MARKERS.items() if environ.get(marker)), None)


def _refuse_development_on_a_platform(environ: Mapping[str, str]) -> None:
    # Development mode keeps its secret on a disk the platform wipes at each deploy, and sends
    # no Secure cookies or HSTS: never what a deploy that forgot APP_ENV wants.
    if platform := hosting_platform(environ):
        raise ConfigurationError(
            f"APP_ENV is unset on {platform}: set APP_ENV=production "
            f"(or APP_ENV=development to run development mode there on purpose)"
        )


def _require_production_secrets(settings: Settings) -> None:
    key = settings.secret_key.get_secret_value() if settings.secret_key else ""
    if is_weak_secret(key):
        raise ConfigurationError(
            f"APP_ENV=production needs SECRET_KEY set to a random string of at least "
            f"{MIN_SECRET_KEY_LENGTH} characters, e.g. python -c 'import secrets; "
            f"print(secrets.token_urlsafe(48))'"
        )
    if not settings.database_url:
        raise ConfigurationError("APP_ENV=production needs DATABASE_URL")
    if not settings.trusted_hosts:
        raise ConfigurationError(
            "APP_ENV=production needs ALLOWED_HOSTS: the host names this app answers to, "
            "comma-separated (e.g. myapp.herokuapp.com,www.example.com)"
        )
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if token is not None and is_weak_secret(token):
        raise ConfigurationError(
            f"METRICS_TOKEN must be a random string of at least {MIN_SECRET_KEY_LENGTH} "
            f"characters (or unset, which turns /metrics off)"
        )
    if settings.flask_debug:
        raise ConfigurationError("APP_ENV=production refuses to start with FLASK_DEBUG on")
    if settings.web_concurrency > 1 and not settings.redis_url:
        raise ConfigurationError(
            "WEB_CONCURRENCY > 1 needs REDIS_URL: rate limits must be shared by every worker"
        )


def is_weak_secret(key: str) -> bool:
    """Too short, a placeholder, or too little variety (one character or one word repeated)."""
    if len(key) < MIN_SECRET_KEY_LENGTH or key.lower() in PLACEHOLDER_SECRETS:
        return True
    repeats_itself = (key + key).find(key, 1) < len(key)
    return repeats_itself or len(set(key)) < MIN_DISTINCT_CHARACTERS
