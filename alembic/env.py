"""Alembic's environment: migrations run over the app's async engine, from DATABASE_URL."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from sqlalchemy.engine import Connection

from alembic import context
from app.config import settings_or_exit
from app.database import make_engine
from app.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name)

target_metadata = Base.metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # handed over by a caller that owns it (the tests)
        run_migrations(connection)
        return
    settings = settings_or_exit()
    if settings.database_direct_url:  # past the pooler: DDL and advisory locks need a session
        settings = settings.model_copy(update={"database_url": settings.database_direct_url})
    engine = make_engine(settings, pooled=False)  # the release phase leaves nothing open
    async with engine.connect() as conn:
        await conn.run_sync(run_migrations)
    await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=settings_or_exit().database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_async_migrations())
