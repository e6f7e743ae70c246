"""Without an ASGI server (``test_client()``, a WSGI server's thread), a request runs in the
caller's thread as on plain Flask, and its async views are still awaited on a loop."""

import asyncio
import sqlite3
import threading

from flask import g, request
from flask_greenlet import AsyncFlask


def make_app(database: sqlite3.Connection | None = None) -> AsyncFlask:
    app = AsyncFlask(__name__)
    seen: dict[str, object] = {}
    app.config["seen"] = seen

    @app.before_request
    def note_the_hook_thread():
        seen["hook"] = threading.get_ident()

    @app.get("/sync")
    def sync_view():
        seen["view"] = threading.get_ident()
        return {"thread": threading.get_ident()}

    @app.get("/rows")
    def rows():
        # sqlite3 refuses a connection made in another thread: this only works in the caller's.
        return {"rows": [row[0] for row in database.execute("SELECT name FROM t ORDER BY name")]}

    @app.get("/async")
    async def async_view():
        await asyncio.sleep(0.01)
        g.awaited = True
        return {"loop_running": asyncio.get_running_loop().is_running(), "arg": request.args["n"]}

    @app.after_request
    def after(response):
        seen["after_sees_g"] = getattr(g, "awaited", False)
        return response

    return app


def test_a_request_runs_in_the_callers_thread_as_on_plain_flask():
    app = make_app()
    reply = app.test_client().get("/sync")
    caller = threading.get_ident()
    assert reply.json == {"thread": caller}
    assert app.config["seen"]["hook"] == caller
    app.stop_private_loop()


def test_an_in_memory_database_made_by_the_test_is_the_views_database():
    database = sqlite3.connect(":memory:")  # one database per connection, bound to this thread
    database.execute("CREATE TABLE t (name TEXT)")
    database.executemany("INSERT INTO t VALUES (?)", [("ada",), ("grace",)])
    app = make_app(database)
    assert app.test_client().get("/rows").json == {"rows": ["ada", "grace"]}


def test_async_views_are_awaited_on_a_loop_and_share_the_requests_context():
    app = make_app()
    client = app.test_client()
    replies = [client.get("/async", query_string={"n": n}) for n in range(3)]
    assert [r.json for r in replies] == [{"loop_running": True, "arg": str(n)} for n in range(3)]
    assert app.config["seen"]["after_sees_g"] is True  # g set on the loop, read in the thread
    assert app.config["seen"]["hook"] == threading.get_ident()
    app.stop_private_loop()


def test_a_sync_only_app_starts_no_loop_thread():
    before = {t.name for t in threading.enumerate()}
    app = make_app()
    assert app.test_client().get("/sync").status_code == 200
    assert "flask-event-loop" not in {t.name for t in threading.enumerate()} - before


def test_many_apps_alive_at_once_share_one_loop_thread():
    apps = [make_app() for _ in range(30)]  # an app per test, none collected yet
    for app in apps:
        assert app.test_client().get("/async", query_string={"n": 1}).status_code == 200
    loop_threads = [t for t in threading.enumerate() if t.name == "flask-event-loop"]
    assert len(loop_threads) == 1
    for app in apps:
        app.stop_private_loop()


def test_serving_hooks_run_around_requests_made_without_a_server():
    app = make_app()
    events = []

    @app.before_serving
    async def started():
        events.append("started")

    @app.after_serving
    async def stopped():
        events.append("stopped")

    app.test_client().get("/sync")
    app.test_client().get("/async", query_string={"n": 1})
    assert events == ["started"]
    app.stop_private_loop()
    assert events == ["started", "stopped"]


def test_requests_from_many_threads_each_run_in_their_own():
    app = make_app()
    client_threads = {}

    def call(n):
        reply = app.test_client().get("/sync")
        client_threads[n] = (threading.get_ident(), reply.json["thread"])
        app.test_client().get("/async", query_string={"n": n})

    workers = [threading.Thread(target=call, args=(n,)) for n in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert len(client_threads) == 8
    assert all(caller == served for caller, served in client_threads.values())
    app.stop_private_loop()
