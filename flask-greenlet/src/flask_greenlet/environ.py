"""The WSGI environ (PEP 3333) for an ASGI HTTP scope."""

from __future__ import annotations

import io
import sys
from typing import IO, Any

from werkzeug.wsgi import FileWrapper

from .types import Environ, Scope


class LargeBlockFileWrapper(FileWrapper):
    """``send_file`` in 256 KiB blocks: each block costs a thread hop, so fewer is faster."""

    def __init__(self, file: IO[bytes], buffer_size: int = 8192) -> None:
        super().__init__(file, max(buffer_size, 256 * 1024))


def build_environ(scope: Scope, body: IO[bytes] | io.RawIOBase) -> Environ:
    """The environ for ``scope``, its body readable from ``body``."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    script_name, path_info = split_root_path(scope.get("root_path", ""), scope["path"])
    environ: Environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": _latin1(script_name),
        "PATH_INFO": _latin1(path_info),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] or 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        # The body ends where the client's ends, so Werkzeug reads chunked bodies too and
        # applies MAX_CONTENT_LENGTH to them as they arrive.
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.file_wrapper": LargeBlockFileWrapper,
        # Sync views run on worker threads, and a server may start several processes.
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "asgi.scope": scope,
    }
    _add_headers(environ, scope.get("headers", ()))
    return environ


def split_root_path(root_path: str, path: str) -> tuple[str, str]:
    """``SCRIPT_NAME`` and ``PATH_INFO``: the mount prefix comes off the path when it is there."""
    root_path = root_path.rstrip("/")
    if root_path and (path == root_path or path.startswith(root_path + "/")):
        return root_path, path[len(root_path) :]
    return root_path, path


# A request's header names, as environ keys: the same few on nearly every request, so each is
# worked out once; at most so many, because the names are the client's to choose.
_ENVIRON_KEYS: dict[bytes, str] = {}
ENVIRON_KEYS_KEPT = 512


def _add_headers(environ: Environ, headers: Any) -> None:
    keys = _ENVIRON_KEYS
    for raw_name, raw_value in headers:
        key = keys.get(raw_name) or _environ_key(raw_name)
        value = raw_value.decode("latin-1")
        if key in environ:
            separator = "; " if key == "HTTP_COOKIE" else ","
            value = f"{environ[key]}{separator}{value}"
        environ[key] = value


def _environ_key(raw_name: bytes) -> str:
    name = raw_name.decode("latin-1").upper().replace("-", "_")
    key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
    if len(_ENVIRON_KEYS) < ENVIRON_KEYS_KEPT:
        _ENVIRON_KEYS[raw_name] = key
    return key


def _latin1(text: str) -> str:
    """A str as WSGI wants it: the UTF-8 bytes of the path, one character per byte."""
    return text.encode("utf-8").decode("latin-1")
