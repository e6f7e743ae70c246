"""The bench's two PostgreSQL databases: made afresh, migrated, seeded, slowed, and inspected."""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import time
from dataclasses import dataclass

import psycopg
from stacks import REPO, VENV_BIN

SERVER = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
FAST_DB = "microblog_bench"
SLOW_DB = "microblog_bench_slow"
SLOW_WAIT_S = 0.05
WRITER = "bench_writer"


def url(database: str) -> str:
    return f"{SERVER}/{database}"


def connect(database: str) -> psycopg.Connection:
    return psycopg.connect(url(database), autocommit=True)


@dataclass(frozen=True)
class Seeded:
    max_post_id: int
    token: str  # a bearer token of the WRITER user, for POST /api/posts


def create_fast_database(users: int, posts: int) -> Seeded:
    """Drop and create FAST_DB with the app's schema (by its Alembic migrations) and seed it."""
    _recreate(FAST_DB)
    subprocess.run(
        [str(VENV_BIN / "alembic"), "upgrade", "head"],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": url(FAST_DB)},
        check=True,
        capture_output=True,
    )
    with connect(FAST_DB) as conn:
        _seed(conn, users, posts)
        token = _issue_token(conn)
        conn.execute("VACUUM ANALYZE")
        max_post_id = conn.execute("SELECT max(id) FROM posts").fetchone()[0]
    return Seeded(max_post_id, token)


def _recreate(database: str) -> None:
    with connect("postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}"')


def _seed(conn: psycopg.Connection, users: int, posts: int) -> None:
    # The hash is never checked: nobody logs in during the bench, the writer uses a token.
    conn.execute(
        """
        INSERT INTO users (username, email, password_hash, created_at)
        SELECT 'user' || n, 'user' || n || '@example.com', 'not-a-password-hash',
               now() - interval '400 days' + n * interval '1 minute'
        FROM generate_series(1, %(users)s) AS n
        """,
        {"users": users},
    )
    # Ids and created_at grow together, as they do in real use; bodies of varied length.
    conn.execute(
        """
        INSERT INTO posts (body, author_id, created_at)
        SELECT left('post ' || n || ' ' || repeat(md5(n::text) || ' ', 1 + n %% 8), 280),
               1 + (n * 7919) %% %(users)s,
               now() - interval '100 days' + n * interval '77 seconds 123457 microseconds'
        FROM generate_series(1, %(posts)s) AS n
        """,
        {"users": users, "posts": posts},
    )


def _issue_token(conn: psycopg.Connection) -> str:
    token = secrets.token_urlsafe(32)
    user_id = conn.execute(
        "INSERT INTO users (username, email, password_hash) VALUES (%s, %s, 'x') RETURNING id",
        (WRITER, f"{WRITER}@example.com"),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO tokens (token_hash, user_id, expires_at) "
        "VALUES (%s, %s, now() + interval '1 day')",
        (hashlib.sha256(token.encode()).hexdigest(), user_id),
    )
    return token


def create_slow_database() -> float:
    """A copy of FAST_DB whose ``posts`` waits SLOW_WAIT_S once per query; returns the measured
    wait of one post lookup, in seconds.

    No stack changes: the copy's search_path puts schema ``slow`` first, and ``slow.posts`` is a
    view over ``public.posts`` whose WHERE holds an uncorrelated subquery that sleeps. PostgreSQL
    runs such a subquery once per query (an InitPlan), whatever the number of rows.
    """
    with connect("postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{SLOW_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{SLOW_DB}" TEMPLATE "{FAST_DB}"')
    with connect(SLOW_DB) as conn:
        conn.execute("CREATE SCHEMA slow")
        conn.execute(
            "CREATE VIEW slow.posts AS SELECT * FROM public.posts "
            f"WHERE (SELECT pg_sleep({SLOW_WAIT_S})) IS NOT NULL"
        )
        conn.execute(f'ALTER DATABASE "{SLOW_DB}" SET search_path = slow, public')
    return _measure_slow_lookup()


def _measure_slow_lookup() -> float:
    query = (
        "SELECT p.id, u.username FROM posts p JOIN users u ON u.id = p.author_id "
        "WHERE p.id = %s ORDER BY p.id DESC LIMIT 1"
    )
    with connect(SLOW_DB) as conn:
        plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + query, (1,)))
        if "InitPlan" not in plan:
            raise RuntimeError(f"the slow view's sleep is not an InitPlan:\n{plan}")
        waits = []
        for post_id in (1, 2, 3):
            started = time.perf_counter()
            conn.execute(query, (post_id,)).fetchall()
            waits.append(time.perf_counter() - started)
    wait = sorted(waits)[1]
    if not SLOW_WAIT_S * 0.9 <= wait <= SLOW_WAIT_S * 2:
        raise RuntimeError(f"a slow lookup took {wait * 1000:.1f} ms, not ~{SLOW_WAIT_S * 1000} ms")
    return wait


def max_post_id() -> int:
    with connect(FAST_DB) as conn:
        return conn.execute("SELECT coalesce(max(id), 0) FROM posts").fetchone()[0]


def posts_after(post_id: int) -> list[tuple[int, str]]:
    """``(id, body)`` of every post with an id above ``post_id``."""
    with connect(FAST_DB) as conn:
        return conn.execute(
            "SELECT id, body FROM posts WHERE id > %s ORDER BY id", (post_id,)
        ).fetchall()


def delete_posts_after(post_id: int) -> None:
    """Back to the seeded table, so every stack and round reads the same data."""
    with connect(FAST_DB) as conn:
        conn.execute("DELETE FROM posts WHERE id > %s", (post_id,))
        conn.execute("VACUUM ANALYZE posts")
