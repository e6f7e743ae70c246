"""Binding the URL map to a request as Flask does, for less work on every request.

Flask works the host out twice (once for the request, once in ``bind_to_environ``) and takes
the path through ``bind_to_environ``'s general case; Werkzeug then IDNA-encodes every trusted
host and the bound host again, on every request, though a server sees the same few hosts all
day. Here the host is worked out once per distinct Host header (and scheme, server address
and ``TRUSTED_HOSTS``), and the adapter is made from the values the request already has.
"""

from __future__ import annotations

from flask import Flask, Request
from werkzeug.exceptions import BadHost
from werkzeug.routing import Map, MapAdapter
from werkzeug.wsgi import get_host

from .types import Environ

HOST_CACHE_SIZE = 256  # distinct hosts remembered: the Host header is the client's to choose

HostKey = tuple[str, str | None, str | None, str | None, tuple[str, ...] | None]


class UrlBinder:
    """One app's URL binding, with the hosts it has already checked."""

    def __init__(self) -> None:
        self._hosts: dict[HostKey, tuple[str, str]] = {}

    def adapter(self, app: Flask, request: Request) -> MapAdapter | None:
        """The request's adapter, or None where Flask's own way is needed: ``SERVER_NAME``,
        host or subdomain matching, a WebSocket upgrade (it changes the scheme), a URL map
        whose ``bind`` is not Werkzeug's."""
        config, url_map = app.config, app.url_map
        environ = request.environ
        if (
            config["SERVER_NAME"] is not None
            or url_map.host_matching
            or app.subdomain_matching
            or "HTTP_UPGRADE" in environ
            or type(url_map).bind is not Map.bind
        ):
            return None
        if (trusted_hosts := config["TRUSTED_HOSTS"]) is not None:
            request.trusted_hosts = trusted_hosts
        host, bound_host = self._host(environ, request.trusted_hosts)
        request.host = host  # as Flask sets it
        script, path = environ.get("SCRIPT_NAME"), environ.get("PATH_INFO")
        query = environ.get("QUERY_STRING")
        return MapAdapter(  # with Map.bind's defaults
            url_map,
            bound_host,
            "/" if script is None else _as_text(script),
            url_map.default_subdomain or "",
            environ["wsgi.url_scheme"],
            "/" if path is None else _as_text(path),
            environ["REQUEST_METHOD"],
            None if query is None else _as_text(query),
        )

    def _host(self, environ: Environ, trusted_hosts: list[str] | None) -> tuple[str, str]:
        """(``request.host``, the adapter's server name), as ``get_host`` and ``Map.bind``
        work them out. A host refused (SecurityError, BadHost) is refused every time."""
        key = (
            environ["wsgi.url_scheme"],
            environ.get("HTTP_HOST"),
            environ.get("SERVER_NAME"),
            environ.get("SERVER_PORT"),
            None if trusted_hosts is None else tuple(trusted_hosts),
        )
        found = self._hosts.get(key)
        if found is None:
            host = get_host(environ, trusted_hosts)
            name, colon, port = host.lower().partition(":")
            try:
                name = name.encode("idna").decode("ascii")
            except UnicodeError as error:
                raise BadHost() from error
            found = (host, f"{name}{colon}{port}")
            if len(self._hosts) < HOST_CACHE_SIZE:
                self._hosts[key] = found
        return found


def _as_text(wsgi_string: str) -> str:
    """A WSGI string (Latin-1 code points carrying bytes) as the text it encodes, as Werkzeug
    reads it."""
    return wsgi_string.encode("latin1").decode(errors="replace")
