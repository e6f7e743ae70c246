"""In debug mode, a sync call that holds the event loop is logged with its stack and its hook."""

import asyncio
import logging
import time

from asgi_exchange import exchange
from flask_greenlet import ASGIApp, AsyncFlask


def make_app(debug: bool) -> AsyncFlask:
    app = AsyncFlask(__name__)
    app.debug = debug

    def fetch_session_with_a_sync_client():
        time.sleep(0.4)  # what a sync Redis client does while it waits for the network

    @app.before_request
    def load_session():
        if app.config.get("BLOCK_IN_HOOK"):
            fetch_session_with_a_sync_client()

    @app.get("/async")
    async def index():
        await asyncio.sleep(0)
        return "ok"

    @app.get("/blocks")
    async def blocks():
        time.sleep(0.4)  # noqa: ASYNC251 - the very mistake the watchdog is for
        return "slow"

    return app


async def test_a_blocking_hook_is_named_with_its_stack_and_request(caplog):
    app = make_app(debug=True)
    app.config["BLOCK_IN_HOOK"] = True
    asgi = ASGIApp(app)
    with caplog.at_level(logging.WARNING, logger="flask_greenlet.watchdog"):
        reply = await exchange(asgi, "GET", "/async")
    asgi.watchdog.stop()
    assert reply.status == 200
    [record] = caplog.records
    message = record.getMessage()
    assert "before_request hook make_app.<locals>.load_session" in message
    assert "GET /async" in message
    assert "fetch_session_with_a_sync_client" in message  # the stack, down to the call
    assert "time.sleep(0.4)" in message


async def test_a_blocking_async_view_is_named(caplog):
    asgi = ASGIApp(make_app(debug=True))
    with caplog.at_level(logging.WARNING, logger="flask_greenlet.watchdog"):
        await exchange(asgi, "GET", "/blocks")
    [record] = caplog.records
    assert "the view make_app.<locals>.blocks (endpoint 'blocks')" in record.getMessage()
    asgi.watchdog.stop()


async def test_no_watchdog_outside_debug_mode_unless_asked(caplog):
    app = make_app(debug=False)
    with caplog.at_level(logging.WARNING, logger="flask_greenlet.watchdog"):
        await exchange(ASGIApp(app), "GET", "/blocks")
    assert caplog.records == []
    asgi = ASGIApp(app, blocking_threshold=0.1)
    with caplog.at_level(logging.WARNING, logger="flask_greenlet.watchdog"):
        await exchange(asgi, "GET", "/blocks")
    assert len(caplog.records) == 1
    asgi.watchdog.stop()


async def test_a_loop_that_only_awaits_is_never_reported(caplog):
    asgi = ASGIApp(make_app(debug=True), blocking_threshold=0.1)
    with caplog.at_level(logging.WARNING, logger="flask_greenlet.watchdog"):
        for _ in range(5):
            await exchange(asgi, "GET", "/async")
        await asyncio.sleep(0.5)
    assert caplog.records == []
    asgi.watchdog.stop()
