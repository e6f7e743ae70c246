"""``Response``: Flask's, handed to the server without a second pass over its headers."""

from __future__ import annotations

import re
from collections.abc import Iterable

import flask

from .types import Environ

# Werkzeug passes these through iri_to_uri in get_wsgi_headers; a path on this host made only
# of characters it never quotes (no query: it drops an empty one) comes out as it went in.
_REWRITTEN = frozenset({"location", "content-location"})
_PLAIN_PATH = re.compile(r"/(?!/)[A-Za-z0-9\-._~%!$&'()*+,/:;=@]*")


class Response(flask.Response):
    """Werkzeug's ``get_wsgi_headers`` copies a response's headers on every response, checking
    each value for newlines again (they were checked when they were set), only to change
    nothing in most of them: a response with no ``Location`` or ``Content-Location`` that
    Werkzeug would change (a plain path on this host it would not), with a
    ``Content-Length`` (or a body whose length is not Werkzeug's to work out) and a status
    that keeps its body goes out with its headers as they are. Anything else takes Werkzeug's
    way. It is ``AsyncFlask.response_class``; a response an app builds itself gets it by
    being one of these (or of ``app.response_class``).
    """

    def get_wsgi_response(
        self, environ: Environ
    ) -> tuple[Iterable[bytes], str, list[tuple[str, str]]]:
        status = self.status_code
        if status < 200 or status == 204 or status == 304 or not self._headers_go_as_they_are():
            return super().get_wsgi_response(environ)
        return self.get_app_iter(environ), self.status, self.headers.to_wsgi_list()

    def _headers_go_as_they_are(self) -> bool:
        has_length = False
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == "content-length":
                has_length = True
            elif lowered in _REWRITTEN and (
                self.autocorrect_location_header or not _PLAIN_PATH.fullmatch(value)
            ):
                return False
        return has_length or not (self.automatically_set_content_length and self.is_sequence)
