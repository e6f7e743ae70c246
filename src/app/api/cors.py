"""Cross-origin calls to the API, from the exact origins in ``CORS_ORIGINS`` (none by default).

The API takes bearer tokens, never cookies, so credentials are never allowed: a page on an
allowed origin can call it with a token it holds, and a page elsewhere cannot read an answer.
The HTML pages are never opened to another origin.
"""

from __future__ import annotations

from flask import Flask
from flask_cors import CORS

from ..paths import API_PREFIX

# What a browser app needs to send, and to read back, beyond the CORS-safelisted headers.
ALLOWED_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "If-None-Match"]
EXPOSED_HEADERS = [
    "ETag",
    "Location",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "Idempotent-Replayed",
    "X-Request-ID",
]
PREFLIGHT_CACHE_SECONDS = 600


def init_app(app: Flask, origins: list[str]) -> None:
    if not origins:
        return  # nothing to add to any response: no hook at all
    CORS(
        app,
        resources={f"{API_PREFIX}.*": {"origins": origins}},
        methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        supports_credentials=False,
        max_age=PREFLIGHT_CACHE_SECONDS,
        vary_header=True,
    )
