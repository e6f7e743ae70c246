"""Where Flask users expect Flask: mount prefixes, exceptions, contexts, threads, descriptors."""

import asyncio
import functools
import gc
import os
import subprocess
import sys
import threading
import weakref

import flask
import flask_greenlet
import pytest
from asgi_exchange import exchange
from flask import Flask, appcontext_pushed, request, url_for
from flask_greenlet import ASGIApp, AsyncFlask, asyncflask, environ, response_body, url_binding
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


@pytest.mark.parametrize("trusted", [None, ["example.com", ".bücher.example"]])
@pytest.mark.parametrize(
    "host",
    ["example.com", "ExAmple.COM:8080", "www.bücher.example", "[::1]:5000", "evil.test", "a b"],
)
def test_hosts_are_checked_and_bound_as_flask_does_it_on_every_request(trusted, host):
    def answers(app_class):
        app = app_class(__name__)
        app.config["TRUSTED_HOSTS"] = trusted

        @app.get("/where")
        def where():
            return {"host": request.host, "url": url_for("where", _external=True, q=1)}

        client = app.test_client()
        seen = [client.get("/where", headers={"Host": host}) for _ in range(2)]
        app.config["TRUSTED_HOSTS"] = ["elsewhere.test"]  # a new list applies at once
        seen.append(client.get("/where", headers={"Host": host}))
        return [(response.status_code, response.get_data()) for response in seen]

    assert answers(AsyncFlask) == answers(Flask)


def test_a_client_choosing_new_hosts_grows_the_remembered_hosts_no_further(monkeypatch):
    monkeypatch.setattr(url_binding, "HOST_CACHE_SIZE", 4)
    app = make_app()
    client = app.test_client()
    for n in range(10):
        assert client.get("/where", headers={"Host": f"host{n}.test"}).status_code == 200
    assert len(app._url_binder._hosts) == 4


async def test_header_names_pass_both_ways_after_the_remembered_names_fill_up(monkeypatch):
    monkeypatch.setattr(environ, "_ENVIRON_KEYS", {})
    monkeypatch.setattr(environ, "ENVIRON_KEYS_KEPT", 2)
    monkeypatch.setattr(response_body, "_HEADER_NAMES", {})
    monkeypatch.setattr(response_body, "HEADER_NAMES_KEPT", 2)
    app = make_app()

    @app.get("/echo")
    async def echo():
        seen = {f"X-Seen-{name[2:]}": value for name, value in request.headers if name[:2] == "X-"}
        return "", 204, seen

    asgi = ASGIApp(app)
    for n in range(4):  # the names a client makes up, then ones it made up before
        made_up = [(f"X-Made-Up-{n}-{m}", f"value {n} {m}") for m in range(3)]
        answer = await exchange(
            asgi, "GET", "/echo", headers=[*made_up, ("X-Made-Up-0-0", "again")]
        )
        assert answer.status == 204
        seen = {name: value for name, value in answer.headers.items() if name.startswith("x-seen")}
        expected = {f"x-seen-made-up-{n}-{m}": f"value {n} {m}" for m in range(3)}
        if n == 0:
            expected["x-seen-made-up-0-0"] = "value 0 0,again"  # repeated: joined, as WSGI has it
        else:
            expected["x-seen-made-up-0-0"] = "again"
        assert seen == expected
    assert len(environ._ENVIRON_KEYS) == len(response_body._HEADER_NAMES) == 2


def responses_of(response_class):
    """Responses that Werkzeug sends as they are, and ones whose headers it rewrites."""
    plain = response_class(b'{"a": 1}', mimetype="application/json")
    plain.headers.add("ETag", 'W/"1"')
    moved = response_class(b"", 201)
    moved.headers["Location"] = "/caf\u00e9?q=\u00e9"
    described = response_class(b"x")
    described.headers["Content-Location"] = "/b\u00fccher"
    empty = response_class(b"gone", 204)
    unchanged = response_class(b"body", 304)
    unchanged.headers["Content-Type"] = "text/plain"
    pieces = response_class(b"")
    pieces.response = [b"ab", b"cd"]  # a sequence with no Content-Length yet
    del pieces.headers["Content-Length"]
    streamed = response_class(iter([b"a", b"b"]))
    located = []
    for location in ("/api/posts/7", "/a;b=c/@d~e", "/a b", "/a?", "/a?q=1", "//evil.test/x",
                     "https://Example.COM/x", "/x#top", "relative/path"):  # fmt: skip
        answer = response_class(b"{}", 201)
        answer.headers["Location"] = location
        located.append(answer)
    return [plain, moved, described, empty, unchanged, pieces, streamed, *located]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_bridges_responses_go_out_as_werkzeug_sends_them(method):
    app = make_app()
    assert app.response_class is flask_greenlet.Response
    environ = {**make_app().test_request_context("/", method=method).request.environ}
    ours, flasks = responses_of(flask_greenlet.Response), responses_of(flask.Response)
    for mine, theirs in zip(ours, flasks, strict=True):
        body, status, headers = mine.get_wsgi_response(environ)
        expected_body, expected_status, expected_headers = theirs.get_wsgi_response(environ)
        assert (list(body), status, headers) == (
            list(expected_body),
            expected_status,
            expected_headers,
        )
        headers.append(("X-Added", "by the server"))  # the list is the caller's, not the response's
        assert "X-Added" not in mine.headers
