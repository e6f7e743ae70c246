"""The public pages: everyone's posts, one user's posts, and the post form."""

from flask import Blueprint

bp = Blueprint("main", __name__)

from . import views  # noqa: E402, F401  (it registers the routes)
