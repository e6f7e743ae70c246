"""``flask seed``: fill the database with demo users and posts."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_greenlet import AsyncFlask
from sqlalchemy import func, insert, select

from .database import db
from .models import Post, User
from .passwords import hash_password

BATCH = 2_000
WORDS = (
    "async flask greenlet uvicorn postgres sqlite alembic keyset cursor pool latency "
    "throughput request response template session token coffee morning release deploy "
    "review merge index query migration"
).split()


def register_commands(app: Flask) -> None:
    app.cli.add_command(seed)


@click.command()
@click.option("--users", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--posts", default=200, show_default=True, type=click.IntRange(min=0))
@click.option(
    "--password", default="password", show_default=True, help="The password every demo user gets."
)
@click.option(
    "--credentials",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write the new users' names and password to this CSV file (username,password).",
)
@with_appcontext
def seed(users: int, posts: int, password: str, credentials: Path | None) -> None:
    """Add demo users (demoN) and posts spread among them."""
    app: AsyncFlask = current_app._get_current_object()  # type: ignore[attr-defined]
    user_ids, usernames = app.run_coroutine(insert_demo_users(users, password))
    if credentials is not None:
        write_credentials(credentials, usernames, password)
    with click.progressbar(length=posts, label="posts") as bar:
        for start in range(0, posts, BATCH):
            size = min(BATCH, posts - start)
            app.run_coroutine(insert_demo_posts(user_ids, size))
            bar.update(size)
    click.echo(f"Added {users} users (password {password!r}) and {posts} posts.")
    if credentials is not None:
        click.echo(f"Wrote their sign-ins to {credentials}.")


def write_credentials(path: Path, usernames: list[str], password: str) -> None:
    """A CSV of sign-ins that load tests and scripts can use (readable by its owner only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        path.chmod(0o600)
        writer = csv.writer(file)
        writer.writerow(["username", "password"])
        writer.writerows((username, password) for username in usernames)


async def insert_demo_users(count: int, password: str) -> tuple[list[int], list[str]]:
    password_hash = await hash_password(password)
    async with db.begin() as conn:
        first = (await conn.scalar(select(func.max(User.id))) or 0) + 1
        rows = [
            {
                "username": f"demo{n}",
                "email": f"demo{n}@example.com",
                "password_hash": password_hash,
            }
            for n in range(first, first + count)
        ]
        result = await conn.execute(insert(User).returning(User.id, User.username), rows)
        ids, usernames = zip(*result.all(), strict=True)
        return list(ids), list(usernames)


async def insert_demo_posts(user_ids: list[int], count: int) -> None:
    rows = [
        {
            # Demo text, not secrets: the standard generator is right here.
            "author_id": random.choice(user_ids),  # nosec B311
            "body": " ".join(random.choices(WORDS, k=random.randint(3, 24))),  # nosec B311
        }
        for _ in range(count)
    ]
    async with db.begin() as conn:
        await conn.execute(insert(Post), rows)
