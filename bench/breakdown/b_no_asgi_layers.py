"""Without the request record, access line and load shedding: the bridge straight."""

from _served import flask_app
from flask_greenlet import ASGIApp

app = ASGIApp(flask_app)
