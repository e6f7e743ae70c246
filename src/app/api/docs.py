"""``/api/docs``: the OpenAPI document as a reference a developer can read and try, in
Swagger UI, served from this repository (``static/vendor/swagger-ui``), never from a CDN."""

from __future__ import annotations

from flask import Response, render_template

from . import bp

SWAGGER_UI_VERSION = "5.35.0"

# The pages' policy (security.py), widened only as far as Swagger UI needs: it sets inline
# styles from its scripts, and calls the API it documents. Still no script from anywhere else.
DOCS_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


@bp.get("/docs")
async def api_docs() -> Response:
    """The API reference (not itself an API operation: no contract, not in the document)."""
    page = render_template("api_docs.html", version=SWAGGER_UI_VERSION)
    return Response(page, mimetype="text/html", headers={"Content-Security-Policy": DOCS_POLICY})
