"""The same two small apps for every server the adopters' bench compares.

``/json`` answers a small JSON document (framework cost only); ``/io`` waits 10 ms, as a view
waits for its database: ``time.sleep`` in the sync app, ``asyncio.sleep`` in the async one.
Each module-level name below is one way to serve one of them.
"""

from __future__ import annotations

import asyncio
import os
import time

from flask import Flask
from flask_greenlet import ASGIApp, AsyncFlask

IO_SECONDS = 0.010
THREADS = int(os.environ.get("BENCH_THREADS", "40"))  # every thread pool gets the same size


def sync_app(flask_class: type[Flask]) -> Flask:
    app = flask_class(__name__)

    @app.get("/json")
    def json_view():
        return {"message": "hello", "items": list(range(10))}

    @app.get("/io")
    def io_view():
        time.sleep(IO_SECONDS)
        return {"waited": IO_SECONDS}

    return app


async def json_async():  # type: ignore[no-untyped-def]
    return {"message": "hello", "items": list(range(10))}


async def io_async():  # type: ignore[no-untyped-def]
    await asyncio.sleep(IO_SECONDS)
    return {"waited": IO_SECONDS}


def async_app(app_class):  # type: ignore[no-untyped-def]
    """The async app, on Flask, AsyncFlask or Quart alike: the same two views."""
    app = app_class(__name__)
    app.add_url_rule("/json", view_func=json_async)
    app.add_url_rule("/io", view_func=io_async)
    return app


def _with_threads(app: AsyncFlask) -> AsyncFlask:
    app.sync_threads = THREADS
    app.worker_threads.max_threads = THREADS
    return app


# flask-greenlet on uvicorn
greenlet_sync = ASGIApp(_with_threads(sync_app(AsyncFlask)))  # type: ignore[arg-type]
greenlet_async = ASGIApp(async_app(AsyncFlask))  # type: ignore[arg-type]

# plain Flask as WSGI: for gunicorn's threads, and behind the two other adapters
wsgi_sync = sync_app(Flask)
wsgi_async = async_app(Flask)  # Flask runs each async view on a new loop (asgiref)


def _a2wsgi(app: Flask):  # type: ignore[no-untyped-def]
    from a2wsgi import WSGIMiddleware

    return WSGIMiddleware(app, workers=THREADS)


def _asgiref(app: Flask):  # type: ignore[no-untyped-def]
    from asgiref.wsgi import WsgiToAsgi

    return WsgiToAsgi(app)


a2wsgi_sync = _a2wsgi(wsgi_sync)
a2wsgi_async = _a2wsgi(wsgi_async)
asgiref_sync = _asgiref(wsgi_sync)
asgiref_async = _asgiref(wsgi_async)


def _quart():  # type: ignore[no-untyped-def]
    from quart import Quart

    return async_app(Quart)


quart_async = _quart()
