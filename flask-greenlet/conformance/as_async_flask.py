"""pytest plugin: every ``flask.Flask`` the tests make is an ``AsyncFlask``; the test client
drives it on the app's private loop, one greenlet per request."""

import flask
from flask_greenlet import AsyncFlask

flask.Flask = AsyncFlask  # type: ignore[misc]
