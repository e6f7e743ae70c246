"""DATABASE_URL as providers write it, against the real server; and which failures are 503s."""

import asyncpg
import httpx
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError
from support.databases import make_settings, reset_schema

from app import create_asgi_app
from app.database import database_unavailable


async def test_a_provider_style_url_connects_with_its_parameters(postgres_available):
    url = postgres_available.replace("postgresql+asyncpg://", "postgres://")
    url += "?sslmode=disable&connect_timeout=10&application_name=provider-probe"
    asgi_app = create_asgi_app(make_settings(url))
    flask_app = asgi_app.flask_app
    await flask_app.startup()
    await reset_schema(flask_app)
    transport = httpx.ASGITransport(app=asgi_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/api/posts")).status_code == 200
        admin = await asyncpg.connect(postgres_available.replace("+asyncpg", ""))
        names = await admin.fetch("SELECT application_name FROM pg_stat_activity")
        await admin.close()
    await flask_app.shutdown()
    assert "provider-probe" in {row["application_name"] for row in names}


@pytest.mark.parametrize(
    "failure",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
    ],
)
def test_a_database_that_cannot_answer_now_is_a_503(failure):
    wrapped = OperationalError("SELECT 1", {}, failure)
    assert database_unavailable(failure) or database_unavailable(wrapped)
    assert database_unavailable(wrapped)


def test_bad_data_is_not_unavailability():
    duplicate = asyncpg.exceptions.UniqueViolationError("duplicate key")
    assert not database_unavailable(IntegrityError("INSERT", {}, duplicate))
    assert not database_unavailable(ValueError("a bug"))
