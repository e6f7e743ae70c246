"""pytest plugin: every ``flask.Flask`` the tests make is served through ``ASGIApp``.

The test client speaks WSGI, so each request it makes is turned into an ASGI scope and
messages here, run through the adapter on the app's private loop, and the ASGI reply is
handed back to the client as a WSGI response.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

import flask
from flask_greenlet import ASGIApp, AsyncFlask

# What the test client puts in the environ beyond HTTP (the hook that keeps a request's
# context for ``with client:``, ``wsgi.errors``, ``environ_base`` extras) cannot cross a
# socket; the harness carries it over the adapter, so the tests check the bridge, not that.
_HTTP_ONLY = {
    "wsgi.input",
    "wsgi.input_terminated",
    "wsgi.version",
    "wsgi.url_scheme",
    "wsgi.multithread",
    "wsgi.multiprocess",
    "wsgi.run_once",
    "wsgi.file_wrapper",
}


class ASGIAppWithTestEnviron(ASGIApp):
    def build_environ(self, scope: Any, body: Any) -> dict[str, Any]:
        environ = super().build_environ(scope, body)
        client_environ = scope["client environ"]
        environ.update(
            (key, value)
            for key, value in client_environ.items()
            if "." in key and key not in _HTTP_ONLY
        )
        return environ


class FlaskThroughASGI(AsyncFlask):
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        asgi = ASGIAppWithTestEnviron(self)
        status, headers, chunks = self.run_coroutine(_exchange(asgi, environ))
        start_response(f"{status} {_reason(status)}", headers)
        return chunks


async def _exchange(asgi: ASGIApp, environ: dict[str, Any]) -> tuple[int, list, list[bytes]]:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    left = int(length) if length else None  # None: read to the end (chunked)
    done = False
    reply: dict[str, Any] = {"chunks": []}

    async def receive() -> dict[str, Any]:
        # Sent as the app asks for it, so a body the app never reads stays unread, as the
        # test client expects when it follows a 307 with the same body.
        nonlocal left, done
        if not done:
            piece = stream.read(65536 if left is None else min(left, 65536))
            if left is not None:
                left -= len(piece)
            done = not piece or left == 0
            return {"type": "http.request", "body": piece, "more_body": not done}
        await asyncio.Event().wait()  # the client stays until the response is complete
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            reply["status"] = message["status"]
            reply["headers"] = [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in message["headers"]
            ]
        else:
            reply["chunks"].append(message.get("body", b""))

    await asgi(_scope(environ), receive, send)
    return reply["status"], reply["headers"], reply["chunks"]


def _scope(environ: dict[str, Any]) -> dict[str, Any]:
    script_name = environ.get("SCRIPT_NAME", "").encode("latin-1").decode("utf-8")
    path_info = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
    headers = [
        (name[5:].replace("_", "-").lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in environ.items()
        if name.startswith("HTTP_")
    ]
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers.append(
                (name.replace("_", "-").lower().encode(), environ[name].encode("latin-1"))
            )
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": environ.get("SERVER_PROTOCOL", "HTTP/1.1").partition("/")[2] or "1.1",
        "method": environ["REQUEST_METHOD"],
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "path": script_name + path_info,
        "raw_path": None,
        "root_path": script_name,
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "headers": headers,
        "server": (environ.get("SERVER_NAME", "localhost"), int(environ.get("SERVER_PORT") or 80)),
        "client": (environ.get("REMOTE_ADDR", "127.0.0.1"), int(environ.get("REMOTE_PORT") or 0)),
        "client environ": environ,
    }


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "UNKNOWN"


flask.Flask = FlaskThroughASGI  # type: ignore[misc]
