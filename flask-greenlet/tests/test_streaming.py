"""Bodies stream both ways through the bridge: request bodies as they arrive, responses as
they are made, and a stream stops when its client goes away."""

import asyncio
import hashlib
import time

import pytest
from asgi_exchange import exchange
from flask import Response, request, send_file, stream_with_context
from flask_greenlet import ASGIApp, AsyncFlask


def make_app(events: list[str]) -> AsyncFlask:
    app = AsyncFlask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1024

    @app.post("/first-piece")
    def first_piece():
        events.append(f"view read {request.stream.read(5)!r}")
        return {"rest": len(request.stream.read())}

    @app.post("/echo")
    async def echo():
        return request.get_data()

    @app.get("/ticks")
    def ticks():
        def generate():
            try:
                for n in range(int(request.args.get("n", "3"))):
                    yield f"tick {n}\n"
                    time.sleep(float(request.args.get("pause", "0.2")))
            finally:
                events.append("sync generator closed")

        return Response(stream_with_context(generate()), mimetype="text/plain")

    @app.get("/async-ticks")
    async def async_ticks():
        async def generate():
            try:
                for n in range(int(request.args.get("n", "3"))):
                    yield f"{request.args.get('label', 'tick')} {n}\n"
                    await asyncio.sleep(0.2)
            finally:
                events.append("async generator closed")

        return Response(generate(), mimetype="text/plain")

    @app.get("/async-tuple")
    async def async_tuple():
        async def generate():
            yield b"made "
            yield "in pieces"

        return generate(), 201, {"X-Kind": "async"}

    @app.get("/closing")
    async def closing():
        response = Response(b"payload")
        response.call_on_close(lambda: events.append("call_on_close"))
        return response

    @app.get("/fast")
    async def fast():
        return "fast"

    @app.get("/file")
    def file():
        return send_file(app.config["FILE"], mimetype="application/octet-stream")

    return app


@pytest.fixture
def events():
    return []


@pytest.fixture
def asgi(events):
    return ASGIApp(make_app(events), body_timeout=5)


async def test_the_view_reads_the_body_before_the_client_has_sent_it_all(asgi, events):
    more = asyncio.Event()

    async def body_arriving():
        events.append("client sent first piece")
        return {"type": "http.request", "body": b"hello", "more_body": True}

    sent = []

    async def receive():
        if not sent:
            sent.append(1)
            return await body_arriving()
        await more.wait()
        events.append("client sent the rest")
        return {"type": "http.request", "body": b" world", "more_body": False}

    async def send(message):
        pass

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/first-piece",
        "headers": [(b"transfer-encoding", b"chunked")],
    }
    task = asyncio.ensure_future(asgi(scope, receive, send))
    await asyncio.sleep(0.1)
    assert events == ["client sent first piece", "view read b'hello'"]
    more.set()
    await task
    assert events[-1] == "client sent the rest"


@pytest.mark.parametrize(
    ("pieces", "status"),
    [
        ([b"x" * 512, b"x" * 512], 200),  # exactly the limit
        ([b"x" * 512, b"x" * 512, b"x"], 413),  # one byte past it, in a piece of its own
        ([b"x" * 500] * 10, 413),
    ],
)
async def test_max_content_length_applies_to_chunked_bodies(asgi, pieces, status):
    reply = await exchange(
        asgi, "POST", "/echo", body=pieces, headers=[("transfer-encoding", "chunked")]
    )
    assert reply.status == status
    if status == 200:
        assert reply.body == b"".join(pieces)


async def test_a_413_comes_before_the_rest_of_the_body_is_read(asgi):
    pieces = [b"x" * 512] * 100
    reply = await exchange(
        asgi, "POST", "/echo", body=pieces, headers=[("transfer-encoding", "chunked")]
    )
    assert reply.status == 413
    assert reply.received <= 4


async def test_each_chunk_is_sent_as_the_generator_yields_it(asgi):
    reply = await exchange(asgi, "GET", "/ticks", query="n=3&pause=0.2")
    assert reply.status == 200
    assert [c for c in reply.chunks if c] == [b"tick 0\n", b"tick 1\n", b"tick 2\n"]
    gaps = [b - a for a, b in zip(reply.sent_at, reply.sent_at[1:], strict=False)][:2]
    assert all(gap > 0.15 for gap in gaps), gaps


async def test_a_sleeping_sync_generator_does_not_hold_up_other_requests(asgi):
    stream = asyncio.ensure_future(exchange(asgi, "GET", "/ticks", query="n=3&pause=0.5"))
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    fast = await exchange(asgi, "GET", "/fast")
    assert fast.body == b"fast"
    assert time.perf_counter() - started < 0.3
    assert not stream.done()
    await stream


async def test_an_async_generator_streams_inside_the_request_context(asgi):
    reply = await exchange(asgi, "GET", "/async-ticks", query="n=2&label=hi")
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.body == b"hi 0\nhi 1\n"
    assert reply.sent_at[1] - reply.sent_at[0] > 0.15


async def test_an_async_generator_may_come_with_a_status_and_headers(asgi):
    reply = await exchange(asgi, "GET", "/async-tuple")
    assert (reply.status, reply.headers["x-kind"], reply.body) == (201, "async", b"made in pieces")


async def test_head_does_not_run_the_async_generator(asgi, events):
    reply = await exchange(asgi, "HEAD", "/async-ticks")
    assert reply.status == 200
    assert reply.body == b""
    assert "async generator closed" not in events


@pytest.mark.parametrize(("path", "closed"), [("/ticks", "sync"), ("/async-ticks", "async")])
async def test_a_stream_is_closed_soon_after_its_client_goes_away(asgi, events, path, closed):
    gone = asyncio.Event()
    streaming = asyncio.ensure_future(
        exchange(asgi, "GET", path, query="n=1000&pause=0.2", gone=gone)
    )
    await asyncio.sleep(0.3)
    gone.set()
    left = time.perf_counter()
    await asyncio.wait_for(streaming, timeout=2)
    assert f"{closed} generator closed" in events
    assert time.perf_counter() - left < 1
    assert len(streaming.result().chunks) < 10


async def test_call_on_close_runs_after_the_body_is_sent(asgi, events):
    def record(message):
        if message["type"] == "http.response.body":
            events.append("body sent")

    reply = await exchange(asgi, "GET", "/closing", on_send=record)
    assert reply.body == b"payload"
    assert events == ["body sent", "call_on_close"]


@pytest.fixture
def big_file(tmp_path, asgi):
    path = tmp_path / "big.bin"
    data = bytes(range(256)) * 4096 * 3  # 3 MiB
    path.write_bytes(data)
    asgi.flask_app.config["FILE"] = str(path)
    return data


async def test_send_file_streams_in_blocks(asgi, big_file):
    reply = await exchange(asgi, "GET", "/file")
    assert reply.status == 200
    assert int(reply.headers["content-length"]) == len(big_file)
    assert hashlib.sha256(reply.body).digest() == hashlib.sha256(big_file).digest()
    assert len([c for c in reply.chunks if c]) > 1  # never one whole-file message


async def test_send_file_answers_ranges_and_conditions(asgi, big_file):
    ranged = await exchange(asgi, "GET", "/file", headers=[("range", "bytes=10-19")])
    assert ranged.status == 206
    assert ranged.body == big_file[10:20]
    assert ranged.headers["content-range"] == f"bytes 10-19/{len(big_file)}"

    etag = (await exchange(asgi, "HEAD", "/file")).headers["etag"]
    unchanged = await exchange(asgi, "GET", "/file", headers=[("if-none-match", etag)])
    assert unchanged.status == 304
    assert unchanged.body == b""
