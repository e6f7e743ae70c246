"""Serve Flask over ASGI with async views awaited on the server's event loop.

    from flask_greenlet import AsyncFlask, ASGIApp
    app = AsyncFlask(__name__)
    asgi = ASGIApp(app)          # uvicorn module:asgi

See ``handover`` for how a greenlet lets Flask's sync core await, ``asyncflask`` for the Flask
subclass and its private loop, ``asgi`` for the server side.
"""

from .asgi import ASGIApp
from .asyncflask import AsyncFlask
from .handover import await_from_greenlet, in_request_greenlet, run_in_greenlet, wait_for
from .wrappers import Response

__all__ = [
    "ASGIApp",
    "AsyncFlask",
    "Response",
    "await_from_greenlet",
    "in_request_greenlet",
    "run_in_greenlet",
    "wait_for",
]
