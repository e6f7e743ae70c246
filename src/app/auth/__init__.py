"""Browser accounts: register, sign in, sign out, with Flask-Login sessions."""

from flask import Blueprint

bp = Blueprint("auth", __name__, url_prefix="/auth")

from . import sessions, views  # noqa: E402, F401  (they register their routes and hooks)
