"""Settings: DATABASE_URL forms, and production refusing unsafe secrets."""

import os
import subprocess
import sys

import pytest
from support.processes import ROOT

from app.config import ConfigurationError, Settings
from app.database_url import (
    DatabaseOptions,
    DatabaseURLError,
    asyncpg_connect_args,
    hide_password,
    normalize_database_url,
    split_database_url,
)

GOOD_SECRET = "kq3B9-vXw_2mZr7TfLp0sHc4NdYe8UaJ1oGi6RtV"
PRODUCTION = {
    "app_env": "production",
    "database_url": "postgres://u@h/db",
    "allowed_hosts": "a.test",
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "postgres://u:p@db.example.com:5432/app",
            "postgresql+asyncpg://u:p@db.example.com:5432/app",
        ),
        ("postgresql://u:p@host/app", "postgresql+asyncpg://u:p@host/app"),
        ("postgresql+asyncpg://u@host/app", "postgresql+asyncpg://u@host/app"),
        ("postgresql+psycopg://u@host/app", "postgresql+asyncpg://u@host/app"),
        (
            "postgres://u:p@host/app?sslmode=require",
            "postgresql+asyncpg://u:p@host/app?ssl=require",
        ),
        (
            "postgresql://u@host/app?sslmode=verify-full&connect_timeout=10",
            "postgresql+asyncpg://u@host/app?ssl=verify-full",
        ),
        (
            "postgresql://u@host/app?sslmode=require&channel_binding=prefer",
            "postgresql+asyncpg://u@host/app?ssl=require",
        ),
        ("sqlite:///relative.db", "sqlite+aiosqlite:///relative.db"),
        ("sqlite:////abs/path.db", "sqlite+aiosqlite:////abs/path.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("  postgres://u@host/app  ", "postgresql+asyncpg://u@host/app"),
    ],
)
def test_database_urls_are_normalised_for_the_async_drivers(raw, expected):
    assert normalize_database_url(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "mysql://u@host/app",
        "postgresql://u@h/app?frobnicate=1",
        "postgresql://u@h/app?connect_timeout=soon",
    ],
)
def test_unsupported_database_urls_are_refused_with_a_reason(raw):
    with pytest.raises((ConfigurationError, DatabaseURLError)):
        normalize_database_url(raw)
    with pytest.raises(ConfigurationError):
        Settings(database_url=raw)


def test_provider_url_parameters_become_asyncpg_arguments_of_the_right_type():
    raw = (
        "postgres://u:p@db.example.com:5432/app?sslmode=require&connect_timeout=3"
        "&application_name=web-1&pgbouncer=true"
    )
    url, options = split_database_url(raw)
    assert url == "postgresql+asyncpg://u:p@db.example.com:5432/app?ssl=require"
    assert options == DatabaseOptions(
        connect_timeout=3.0, application_name="web-1", sslmode="require", pgbouncer=True
    )
    args = asyncpg_connect_args(options, timeout=5, statement_timeout_ms=5000)
    assert args["timeout"] == 3.0 and args["command_timeout"] == 5
    assert args["server_settings"] == {"application_name": "web-1"}  # no startup settings
    assert args["statement_cache_size"] == 0 and args["prepared_statement_cache_size"] == 0
    assert args["prepared_statement_name_func"]() != args["prepared_statement_name_func"]()


def test_without_a_pooler_the_statement_timeout_is_a_startup_setting():
    _, options = split_database_url("postgresql://u@h/app")
    args = asyncpg_connect_args(options, timeout=5, statement_timeout_ms=2500)
    assert args["server_settings"] == {"application_name": "microblog", "statement_timeout": "2500"}
    assert "statement_cache_size" not in args


def test_sslrootcert_gives_a_verifying_tls_context(tmp_path):
    import ssl
    import subprocess

    key, cert = tmp_path / "k.pem", tmp_path / "ca.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=db.example.com"),
        ],
        check=True,
        capture_output=True,
    )
    _, options = split_database_url(f"postgresql://u@h/app?sslmode=verify-full&sslrootcert={cert}")
    context = asyncpg_connect_args(options, timeout=5, statement_timeout_ms=0)["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_password_is_hidden_in_logged_urls():
    assert (
        hide_password("postgresql+asyncpg://me:s3cret@h/db") == "postgresql+asyncpg://me:***@h/db"
    )
    assert hide_password("sqlite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"


def test_default_database_is_sqlite_in_the_instance_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings(instance_path=tmp_path)
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'microblog.sqlite3'}"


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h/db")
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://u@h/db"
    assert settings.db_pool_size == 7


def test_development_keeps_its_own_secret_across_restarts(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = Settings(app_env="development", instance_path=tmp_path)
    second = Settings(app_env="development", instance_path=tmp_path)
    assert len(first.secret_key.get_secret_value()) >= 32
    assert first.secret_key == second.secret_key
    kept = tmp_path / "development-secret-key"
    assert kept.stat().st_mode & 0o077 == 0
    other = Settings(app_env="development", instance_path=tmp_path / "elsewhere")
    assert other.secret_key != first.secret_key


def test_tests_get_a_fresh_secret_and_production_never_reads_the_kept_one(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    Settings(app_env="development", instance_path=tmp_path)
    one, two = (Settings(app_env="test", instance_path=tmp_path) for _ in range(2))
    assert one.secret_key != two.secret_key
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        Settings(**PRODUCTION, instance_path=tmp_path)


def test_a_dot_env_file_is_read_and_the_environment_wins(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("DB_POOL_SIZE=7\nREADINESS_TIMEOUT=3\n")
    monkeypatch.delenv("DB_POOL_SIZE", raising=False)
    monkeypatch.setenv("READINESS_TIMEOUT", "4")
    settings = Settings()
    assert settings.db_pool_size == 7 and settings.readiness_timeout == 4


@pytest.mark.parametrize(
    ("workers", "limit", "budget"),
    [(1, 20, (10, 5)), (2, 20, (10, 0)), (4, 20, (5, 0)), (3, 40, (10, 3))],
)
def test_the_pool_is_sized_so_every_worker_fits_the_connection_budget(workers, limit, budget):
    settings = Settings(web_concurrency=workers, db_max_connections=limit)
    assert settings.connection_budget == budget
    assert sum(settings.connection_budget) * workers <= limit


@pytest.mark.parametrize(("workers", "budget"), [(1, (10, 5)), (2, (9, 0)), (4, (4, 0))])
def test_on_postgresql_each_worker_keeps_one_connection_for_the_live_listener(workers, budget):
    settings = Settings(
        database_url="postgresql://db.example/app", web_concurrency=workers, db_max_connections=20
    )
    assert settings.connection_budget == budget
    assert (sum(settings.connection_budget) + 1) * workers <= 20


@pytest.mark.parametrize(
    "secret",
    [
        None,
        "short",
        "changeme",
        "secret",
        "a" * 32,
        "correcthorse" * 4,
        "0123456789" * 4,
        "abcdefabcdefabcdefabcdefabcdefabcdef",
    ],
)
def test_production_refuses_to_start_without_a_real_secret(secret, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        Settings(**PRODUCTION, secret_key=secret)


def test_production_refuses_to_start_with_debug_on(monkeypatch):
    monkeypatch.setenv("FLASK_DEBUG", "1")
    with pytest.raises(ConfigurationError, match="FLASK_DEBUG"):
        Settings(**PRODUCTION, secret_key=GOOD_SECRET)


def test_production_refuses_to_start_without_allowed_hosts():
    with pytest.raises(ConfigurationError, match="ALLOWED_HOSTS"):
        Settings(**(PRODUCTION | {"allowed_hosts": " , "}), secret_key=GOOD_SECRET)


def test_production_refuses_to_start_without_a_database_url(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        Settings(app_env="production", secret_key=GOOD_SECRET, allowed_hosts="a.test")


def test_production_starts_with_its_secrets(monkeypatch):
    settings = Settings(**PRODUCTION, secret_key=GOOD_SECRET)
    assert settings.is_production and settings.trusted_hosts == ["a.test"]


def test_production_cookies_are_secure():
    from app import create_app

    app = create_app(Settings(**PRODUCTION, secret_key=GOOD_SECRET))
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


PLATFORMS = {
    "DYNO": "web.1",
    "RENDER": "true",
    "FLY_APP_NAME": "microblog",
    "RAILWAY_ENVIRONMENT": "production",
}


@pytest.mark.parametrize("marker", PLATFORMS)
def test_on_a_platform_an_unset_app_env_refuses_to_start(marker, monkeypatch):
    monkeypatch.delenv("APP_ENV", raising=False)
    monkeypatch.setenv(marker, PLATFORMS[marker])
    with pytest.raises(ConfigurationError, match="set APP_ENV=production"):
        Settings(_env_file=None)


@pytest.mark.parametrize("app_env", ["development", "production"])
def test_on_a_platform_an_app_env_said_on_purpose_is_taken(app_env, monkeypatch):
    monkeypatch.setenv("DYNO", "web.1")
    monkeypatch.setenv("APP_ENV", app_env)
    monkeypatch.setenv("SECRET_KEY", GOOD_SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h/db")
    monkeypatch.setenv("ALLOWED_HOSTS", "a.test")
    assert Settings(_env_file=None).app_env == app_env


def test_off_any_platform_an_unset_app_env_is_development(monkeypatch, tmp_path):
    for marker in PLATFORMS:
        monkeypatch.delenv(marker, raising=False)
    monkeypatch.delenv("APP_ENV", raising=False)
    assert Settings(_env_file=None, instance_path=tmp_path).app_env == "development"


@pytest.mark.processes
def test_the_web_process_refuses_with_one_line(tmp_path):
    environment = {
        key: value for key, value in os.environ.items() if key not in {"APP_ENV", *PLATFORMS}
    }
    environment |= {"DYNO": "web.1", "INSTANCE_PATH": str(tmp_path)}
    started = subprocess.run(
        [sys.executable, "-m", "uvicorn", "asgi:app", "--port", "0"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert started.returncode == 1
    assert started.stderr.strip().splitlines() == [
        "microblog refuses to start: APP_ENV is unset on Heroku: set APP_ENV=production "
        "(or APP_ENV=development to run development mode there on purpose)"
    ]
    assert not (tmp_path / "development-secret-key").exists()  # nothing made on the way
