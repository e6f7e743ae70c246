"""The JSON API under /api: bearer tokens, problem+json errors, an OpenAPI 3.1 document."""

from flask import Blueprint

API_PREFIX = "/api/"
bp = Blueprint("api", __name__, url_prefix=API_PREFIX.rstrip("/"))


def is_api_path(path: str) -> bool:
    """Whether ``path`` belongs to the API (problem+json, no cookies): the one place that says."""
    return path.startswith(API_PREFIX) or path == API_PREFIX.rstrip("/")


from . import openapi, posts, tokens, users  # noqa: E402, F401  (they register their routes)
