"""``flask seed`` and the sync (non-ASGI) paths: one private loop, no 'different loop' errors."""

import asyncio

from sqlalchemy import func, select
from support.databases import make_settings, reset_schema

from app import create_app
from app.database import db
from app.models import Post, User


def fresh_app(database_url):
    """An app that is not served: its database lives on the app's private loop."""
    app = create_app(make_settings(database_url))
    app.run_coroutine(reset_schema(app))
    return app


async def count(model):
    async with db.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(model))


def test_seed_adds_users_and_posts_with_a_progress_bar(database_url):
    app = fresh_app(database_url)
    result = app.test_cli_runner().invoke(args=["seed", "--users", "3", "--posts", "2500"])
    assert result.exit_code == 0, result.output
    assert "Added 3 users" in result.output
    with app.app_context():
        assert app.run_coroutine(count(User)) == 3
        assert app.run_coroutine(count(Post)) == 2500
    again = app.test_cli_runner().invoke(args=["seed", "--users", "2", "--posts", "0"])
    assert again.exit_code == 0, again.output
    with app.app_context():
        assert app.run_coroutine(count(User)) == 5
    app.stop_private_loop()


def test_seed_writes_the_sign_ins_it_made_for_load_tests(database_url, tmp_path):
    app = fresh_app(database_url)
    runner = app.test_cli_runner()
    runner.invoke(args=["seed", "--users", "2", "--posts", "0"])
    path = tmp_path / "load" / "credentials.csv"
    args = ["seed", "--users", "3", "--posts", "0", "--password", "s3cret pass", "--credentials"]
    result = runner.invoke(args=[*args, str(path)])
    assert result.exit_code == 0, result.output
    assert path.read_text().splitlines() == [
        "username,password",
        "demo3,s3cret pass",
        "demo4,s3cret pass",
        "demo5,s3cret pass",
    ]
    assert path.stat().st_mode & 0o077 == 0
    app.stop_private_loop()


def test_the_wsgi_path_serves_async_views_request_after_request(database_url):
    """What ``flask run`` does: many requests, each on the app's one private loop."""
    app = fresh_app(database_url)
    client = app.test_client()
    for _ in range(5):
        assert client.get("/readyz").status_code == 200
        assert client.get("/api/posts").json == {"items": [], "next_cursor": None}
    app.stop_private_loop()


def test_the_wsgi_path_serves_concurrent_threads(database_url):
    from concurrent.futures import ThreadPoolExecutor

    app = fresh_app(database_url)

    def fetch(_):
        return app.test_client().get("/api/posts").status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(fetch, range(40))) == {200}
    app.stop_private_loop()


def test_no_event_loop_is_left_running_after_stop(database_url):
    app = fresh_app(database_url)
    app.stop_private_loop()
    asyncio.run(asyncio.sleep(0))  # the main thread is free to run its own loop
