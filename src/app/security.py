"""Headers every response carries, and the Origin check on browser form posts.

One hook for all of it, so error pages, redirects and static files get the same headers as
the pages; the load-shedding 503s, answered before Flask runs, take the same list.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, request
from werkzeug.datastructures import Headers

from .paths import is_api_path

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",  # no inline script, ever
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HSTS = "max-age=63072000; includeSubDomains"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def security_headers(*, production: bool) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if production:
        headers["Strict-Transport-Security"] = HSTS
    return headers


def init_app(app: Flask, *, production: bool, check_form_token: Callable[[], None]) -> None:
    # Lowercased once: a response's own header names are compared against these.
    headers = [
        (name.lower(), name, value)
        for name, value in Headers(security_headers(production=production)).items()
    ]  # through Headers once, which refuses a value that could split a header

    @app.before_request
    def refuse_forged_form_posts() -> None:
        if request.method not in UNSAFE_METHODS or is_api_path(request.path):
            return  # nothing to forge: a read, or the API's bearer tokens (never cookies)
        # Browsers send Origin on every form post; one naming another site is a forged request,
        # whatever token it carries. (No Origin at all: older browsers; the CSRF token decides.)
        origin = request.headers.get("Origin")
        if origin and urlsplit(origin).netloc != request.host:
            abort(400, "This form was sent from another site.")
        if current_app.config["WTF_CSRF_ENABLED"]:
            check_form_token()

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        # Not Headers.setdefault: it raises and catches a KeyError for every header missing,
        # which is every one of them on nearly every response (a third of this hook's cost).
        # Appended to the header list itself: the values are constants, checked once at
        # startup, and Headers.add would check each for newlines again on every response.
        present = {name.lower() for name, _ in response.headers.items()}
        response.headers._list.extend(
            (name, value) for lowered, name, value in headers if lowered not in present
        )
        return response
