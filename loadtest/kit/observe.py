"""Read back what exists: the newest post id, and every post newer than a baseline.

Through the public API (works against a deployed URL) or straight from the database (local
runs). The API walk follows ``next_cursor`` pages, newest first, until it passes the baseline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import requests

from .integrity import ObservedPost

PAGE = 100
TIMEOUT_S = 30


def newest_post_id(host: str) -> int:
    response = requests.get(f"{host}/api/posts", params={"limit": 1}, timeout=TIMEOUT_S)
    response.raise_for_status()
    items = response.json()["items"]
    return items[0]["id"] if items else 0


def posts_through_api(host: str, baseline: int) -> Iterator[ObservedPost]:
    """Every post with an id above ``baseline``, read page by page through the API."""
    params: dict[str, object] = {"limit": PAGE}
    with requests.Session() as session:
        while True:
            response = session.get(f"{host}/api/posts", params=params, timeout=TIMEOUT_S)
            response.raise_for_status()
            page = response.json()
            for item in page["items"]:
                if item["id"] <= baseline:
                    return
                yield ObservedPost(item["id"], item["author"], item["body"])
            if page["next_cursor"] is None:
                return
            params["cursor"] = page["next_cursor"]


def posts_in_database(database_url: str, baseline: int) -> list[ObservedPost]:
    """Every post with an id above ``baseline``, read with one query (no locust in this process)."""
    return asyncio.run(_select_posts(database_url, baseline))


async def _select_posts(database_url: str, baseline: int) -> list[ObservedPost]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.database_url import normalize_database_url

    engine = create_async_engine(normalize_database_url(database_url))
    query = text(
        "SELECT posts.id, users.username, posts.body FROM posts "
        "JOIN users ON users.id = posts.author_id WHERE posts.id > :baseline ORDER BY posts.id"
    )
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(query, {"baseline": baseline})).all()
    finally:
        await engine.dispose()
    return [ObservedPost(*row) for row in rows]
