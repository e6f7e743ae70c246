"""Sync views run on worker threads, so a blocking one stalls only itself."""

import asyncio
import threading
import time

import httpx
from flask import current_app, request
from flask.views import MethodView
from flask_greenlet import ASGIApp, AsyncFlask


def make_app() -> AsyncFlask:
    app = AsyncFlask(__name__)

    @app.get("/nap")
    def nap():
        time.sleep(0.5)  # a sync client, a sync driver: anything that blocks
        return {"arg": request.args.get("n"), "thread": threading.current_thread().name}

    @app.get("/async")
    async def on_the_loop():
        return {"thread": threading.current_thread().name}

    @app.post("/upload")
    def upload():
        return {"size": len(request.stream.read())}

    async def double(x):
        await asyncio.sleep(0)
        return 2 * x

    @app.get("/await-from-sync")
    def await_from_sync():
        return {"value": current_app.ensure_sync(double)(21)}

    class Items(MethodView):
        def get(self):
            return {"thread": threading.current_thread().name}

        async def post(self):
            return {"thread": threading.current_thread().name}

    app.add_url_rule("/items", view_func=Items.as_view("items"))
    return app


async def client_for(app):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=ASGIApp(app)), base_url="http://t")


async def test_eight_blocking_sync_views_run_side_by_side():
    async with await client_for(make_app()) as client:
        started = time.perf_counter()
        replies = await asyncio.gather(*(client.get("/nap", params={"n": n}) for n in range(8)))
        elapsed = time.perf_counter() - started
    assert [r.json()["arg"] for r in replies] == [str(n) for n in range(8)]
    assert all(r.json()["thread"].startswith("flask-sync") for r in replies)
    # One after another they take 4 s; side by side, about 0.5 s.
    assert elapsed < 1.5, elapsed


async def test_a_blocking_sync_view_does_not_hold_up_async_ones():
    async with await client_for(make_app()) as client:
        slow = asyncio.ensure_future(client.get("/nap"))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        fast = await client.get("/async")
        assert time.perf_counter() - started < 0.3
        assert fast.json()["thread"] == threading.current_thread().name
        assert (await slow).status_code == 200


async def test_a_sync_view_reads_a_chunked_body():
    async def pieces():
        for _ in range(10):
            yield b"x" * 1000

    async with await client_for(make_app()) as client:
        reply = await client.post("/upload", content=pieces())
    assert reply.json() == {"size": 10_000}


async def test_a_sync_view_awaits_coroutines_on_the_serving_loop():
    async with await client_for(make_app()) as client:
        assert (await client.get("/await-from-sync")).json() == {"value": 42}


async def test_class_based_views_run_where_their_handler_belongs():
    async with await client_for(make_app()) as client:
        sync_handler = (await client.get("/items")).json()["thread"]
        async_handler = (await client.post("/items")).json()["thread"]
    assert sync_handler.startswith("flask-sync")
    assert async_handler == threading.current_thread().name
