"""Where Flask users expect Flask: mount prefixes, exceptions, contexts, threads, descriptors."""

import asyncio
import functools
import gc
import os
import subprocess
import sys
import threading
import weakref

import pytest
from asgi_exchange import exchange
from flask import appcontext_pushed, request, url_for
from flask_greenlet import ASGIApp, AsyncFlask, asyncflask
from werkzeug.exceptions import NotFound


def make_app() -> AsyncFlask:
    app = AsyncFlask(__name__)

    @app.get("/where")
    async def where():
        return {
            "path": request.path,
            "script_root": request.script_root,
            "url": url_for("where"),
            "multithread": request.environ["wsgi.multithread"],
        }

    @app.get("/exit")
    async def exit_view():
        raise SystemExit(3)

    @app.get("/interrupt")
    def interrupt():
        raise KeyboardInterrupt

    @app.get("/ok")
    async def ok():
        await asyncio.sleep(0)
        return "ok"

    return app


async def test_the_mount_prefix_moves_from_the_path_to_script_name():
    reply = await exchange(ASGIApp(make_app()), "GET", "/where", root_path="/blog")
    assert reply.status == 200
    assert reply.body.decode().count("/blog") == 2  # script_root and url_for, not the path
    where = __import__("json").loads(reply.body)
    assert where["path"] == "/where"
    assert where["script_root"] == "/blog"
    assert where["url"] == "/blog/where"
    assert where["multithread"] is True


async def test_websockets_are_refused_cleanly():
    sent = []

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        sent.append(message)

    await ASGIApp(make_app())({"type": "websocket", "path": "/ws"}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1003}]


@pytest.mark.parametrize(
    ("path", "exception"), [("/exit", SystemExit), ("/interrupt", KeyboardInterrupt)]
)
def test_a_base_exception_reaches_the_caller_and_the_app_serves_on(path, exception):
    app = make_app()
    client = app.test_client()
    with pytest.raises(exception):
        client.get(path)
    assert client.get("/ok").text == "ok"
    app.stop_private_loop()


async def test_a_base_exception_reaches_the_asgi_server_and_the_app_serves_on():
    asgi = ASGIApp(make_app())
    with pytest.raises(SystemExit):
        await exchange(asgi, "GET", "/exit")
    assert (await exchange(asgi, "GET", "/ok")).body == b"ok"


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_an_app_no_longer_used_leaves_no_thread_or_descriptor_behind():
    def serve_once():
        app = make_app()
        assert app.test_client().get("/ok").text == "ok"

    serve_once()  # warm up whatever is made once per process
    gc.collect()
    threads, descriptors = threading.active_count(), open_descriptors()
    for _ in range(5):
        serve_once()
    gc.collect()
    for _ in range(50):  # the loop threads end, closing their loops, as the apps go
        if threading.active_count() <= threads and open_descriptors() <= descriptors:
            break
        threading.Event().wait(0.05)
    assert threading.active_count() <= threads
    assert open_descriptors() <= descriptors


async def test_no_app_context_is_pushed_for_serving_without_hooks():
    app = make_app()
    pushed = []
    appcontext_pushed.connect(lambda sender, **kw: pushed.append(sender), app, weak=False)
    await app.startup()
    await app.shutdown()
    assert pushed == []

    @app.before_serving
    async def hook():
        pass

    await app.startup()
    assert pushed == [app]


def test_the_bridge_imports_nothing_of_the_microblog():
    check = (
        "import sys, flask_greenlet; "
        "print(sorted(m for m in sys.modules if m == 'app' or m.startswith('app.')))"
    )
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_an_http_exception_becomes_a_response_held_in_memory():
    app = make_app()
    with app.test_request_context("/missing"):
        response = app.make_response(NotFound())
    assert response.status_code == 404
    assert not response.is_streamed  # sent in one message, not chunk by chunk


class Hooks:
    async def async_method(self):
        return "async method"

    def sync_method(self):
        return "sync method"


def test_ensure_sync_gives_flasks_answer_each_time_it_is_asked():
    app = make_app()
    hooks = Hooks()

    async def async_function():
        return "async function"

    for _ in range(2):  # the second time from what the first one learned
        assert app.ensure_sync(async_function)() == "async function"
        assert app.ensure_sync(hooks.async_method)() == "async method"
        assert app.ensure_sync(hooks.sync_method) == hooks.sync_method
        assert app.ensure_sync(functools.partial(async_function))() == "async function"
        assert app.ensure_sync(len) is len


def test_ensure_sync_keeps_no_instance_alive_and_only_so_many_functions(monkeypatch):
    monkeypatch.setattr(asyncflask, "COROUTINE_CACHE_SIZE", 8)
    app = make_app()
    instance = Hooks()
    assert app.ensure_sync(instance.async_method)() == "async method"
    collected = weakref.ref(instance)
    del instance

    def make_closure(n):
        async def closure():
            return n

        return closure

    closures = [weakref.ref(fn) for fn in map(make_closure, range(20)) if app.ensure_sync(fn)]
    gc.collect()
    assert collected() is None
    assert sum(1 for fn in closures if fn() is not None) <= 8  # a closure a call grows nothing
