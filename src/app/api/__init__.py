"""The JSON API under /api: bearer tokens, problem+json errors, an OpenAPI 3.1 document."""

from flask import Blueprint

from ..paths import API_PREFIX

bp = Blueprint("api", __name__, url_prefix=API_PREFIX.rstrip("/"))


from . import compression, cors, docs, openapi, posts, stream, token_uses, tokens, users  # noqa: E402, F401  (they register their routes)
