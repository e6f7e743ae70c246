"""The ASGI bridge: Flask's request context survives awaits, requests overlap, no threads."""

import asyncio
import contextvars
import io
import threading
import time

import httpx
import pytest
from flask import g, request
from flask_greenlet import ASGIApp, AsyncFlask, await_from_greenlet, run_in_greenlet
from flask_greenlet.environ import build_environ


def make_app() -> AsyncFlask:
    app = AsyncFlask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1024

    @app.get("/sleep")
    async def sleep():
        g.before = request.args["id"]
        await asyncio.sleep(0.1)
        return {
            "id": request.args["id"],
            "kept": g.before,
            "thread": threading.current_thread().name,
        }

    @app.post("/echo")
    async def echo():
        return request.get_data()

    @app.get("/boom")
    async def boom():
        raise RuntimeError("boom")

    return app


@pytest.fixture
async def bridge_client():
    transport = httpx.ASGITransport(app=ASGIApp(make_app()))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_concurrent_requests_overlap_their_awaits(bridge_client):
    started = time.perf_counter()
    responses = await asyncio.gather(
        *(bridge_client.get("/sleep", params={"id": str(n)}) for n in range(20))
    )
    elapsed = time.perf_counter() - started
    assert [r.json()["id"] for r in responses] == [str(n) for n in range(20)]
    # Serialised, 20 requests of 100 ms take 2 s; overlapped, about 0.1 s.
    assert elapsed < 0.8, elapsed


async def test_request_context_is_intact_after_an_await(bridge_client):
    responses = await asyncio.gather(
        *(bridge_client.get("/sleep", params={"id": str(n)}) for n in range(5))
    )
    assert all(r.json()["kept"] == r.json()["id"] for r in responses)


async def test_views_run_on_the_event_loop_thread(bridge_client):
    response = await bridge_client.get("/sleep", params={"id": "1"})
    assert response.json()["thread"] == threading.current_thread().name


async def test_request_body_reaches_the_view(bridge_client):
    response = await bridge_client.post("/echo", content=b"hello")
    assert response.content == b"hello"


async def chunks_of(data, size=3):
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_a_chunked_body_without_a_length_reaches_the_view_whole(bridge_client):
    response = await bridge_client.post("/echo", content=chunks_of(b"sent in chunks"))
    assert response.content == b"sent in chunks"


async def test_a_chunked_body_over_the_limit_is_refused_with_413(bridge_client):
    response = await bridge_client.post("/echo", content=chunks_of(b"x" * 5000, 500))
    assert response.status_code == 413


async def test_body_over_the_limit_is_refused_with_413(bridge_client):
    response = await bridge_client.post("/echo", content=b"x" * 5000)
    assert response.status_code == 413


async def test_an_exception_in_a_view_becomes_a_500_not_a_crash(bridge_client):
    response = await bridge_client.get("/boom")
    assert response.status_code == 500


async def test_run_in_greenlet_passes_results_and_exceptions_through():
    async def double(x):
        await asyncio.sleep(0)
        return 2 * x

    async def fail():
        raise ValueError("nope")

    assert await run_in_greenlet(lambda: await_from_greenlet(double(21))) == 42
    with pytest.raises(ValueError, match="nope"):
        await run_in_greenlet(lambda: await_from_greenlet(fail()))


async def test_greenlet_and_awaited_code_share_context_variables():
    var = contextvars.ContextVar("var")

    async def read():
        return var.get()

    def set_then_await():
        var.set("set in the greenlet")
        return await_from_greenlet(read())

    assert await run_in_greenlet(set_then_await) == "set in the greenlet"


def test_await_from_greenlet_outside_the_bridge_says_so():
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="outside run_in_greenlet"):
        await_from_greenlet(coro)
    coro.close()


async def test_lifespan_runs_the_serving_hooks_in_order():
    app = AsyncFlask(__name__)
    events = []

    @app.before_serving
    async def up():
        events.append("up")

    @app.after_serving
    async def down():
        events.append("down")

    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message["type"])

    await ASGIApp(app)({"type": "lifespan"}, receive, send)
    assert events == ["up", "down"]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_failing_startup_is_reported_to_the_server():
    app = AsyncFlask(__name__)

    @app.before_serving
    async def broken():
        raise RuntimeError("no database")

    sent = []

    async def receive():
        return {"type": "lifespan.startup"}

    async def send(message):
        sent.append(message)

    await ASGIApp(app)({"type": "lifespan"}, receive, send)
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "no database" in sent[0]["message"]


def test_plain_wsgi_callers_run_async_views_on_one_private_loop():
    app = make_app()
    loops = []

    @app.get("/loop")
    async def loop():
        loops.append(asyncio.get_running_loop())
        return "ok"

    client = app.test_client()
    assert client.get("/loop").text == "ok"
    assert client.get("/loop").text == "ok"
    assert loops[0] is loops[1]
    app.stop_private_loop()


async def test_run_coroutine_refuses_to_block_a_running_loop():
    app = make_app()
    with pytest.raises(RuntimeError, match="block the running event loop"):
        app.run_coroutine(asyncio.sleep(0))


def test_wsgi_environ_carries_the_request():
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/caf\u00e9",
        "root_path": "",
        "query_string": b"a=1&b=2",
        "http_version": "1.1",
        "scheme": "https",
        "server": ("example.com", 443),
        "client": ("10.0.0.1", 5000),
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"2"),
            (b"x-thing", b"a"),
            (b"x-thing", b"b"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
        ],
    }
    environ = build_environ(scope, io.BytesIO(b"{}"))
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["PATH_INFO"] == "/caf\u00e9".encode().decode("latin-1")
    assert environ["QUERY_STRING"] == "a=1&b=2"
    assert environ["CONTENT_TYPE"] == "application/json"
    assert environ["CONTENT_LENGTH"] == "2"
    assert environ["HTTP_X_THING"] == "a,b"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["SERVER_PORT"] == "443"
    assert environ["wsgi.input"].read() == b"{}"
