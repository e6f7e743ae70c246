"""One log format for the whole process: ours, SQLAlchemy's and uvicorn's lines alike.

``LOG_FORMAT=json`` (production's default) writes one JSON object a line, through
python-json-logger, which formats standard ``logging`` records: every library's lines come out
the same way without changing how any of them logs. Every record made while a request runs
carries its id (``request_id``), from whichever thread or greenlet made it. Lines are written by
a thread of their own, so a slow log drain never stalls the event loop.
"""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _quoted  # json.dumps' own quoting
from logging.handlers import QueueHandler, QueueListener
from typing import Any, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from ..config import Settings
from .records import RequestRecord, current_request_id

access_log = logging.getLogger("app.access")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = ("levelname", "name", "message", "request_id")
RENAMED = {"levelname": "level", "name": "logger"}
NOT_FIELDS = (*RESERVED_ATTRS, "color_message")  # uvicorn's message again, with colours

_made_records = logging.getLogRecordFactory()


def _record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _made_records(*args, **kwargs)
    record.request_id = current_request_id()
    return record


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = "-"
        return super().format(record)


class _HandOver(QueueHandler):
    """Hands each record to the writing thread as it is: the standard QueueHandler formats it
    here first and keeps only the text, which would lose the JSON fields."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg, record.args = record.getMessage(), None
        return record


class _Output:
    """The root logger's one handler, and the thread behind it."""

    def __init__(self, formatter: logging.Formatter) -> None:
        lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        writer = logging.StreamHandler(sys.stderr)
        writer.setFormatter(formatter)
        self.handler = _HandOver(lines)
        self.listener = QueueListener(lines, writer)
        self.listener.start()
        atexit.register(self.stop)

    def stop(self) -> None:
        if self.listener._thread is not None:
            self.listener.stop()


class _AccessLines:
    """The access lines, the one kind written on every request, take a shorter road than
    ``logging``: a tuple per request on a queue, formatted and written in batches by a thread
    that wakes every ``FLUSH_EVERY_S``, or sooner once ``BATCH`` lines wait, in the same format
    as every other line. Through ``logging`` each line cost about 30 µs of the request's CPU (a
    LogRecord, its fields, a thread woken per line); this costs about 6."""

    FLUSH_EVERY_S = 0.25
    BATCH = 64

    def __init__(self, stream: TextIO, *, as_json: bool) -> None:
        self.pending: deque[tuple[Any, ...]] = deque()  # append and popleft are thread-safe
        self._stream, self._format = stream, _json_access if as_json else _text_access
        self._stopped, self._wake = False, threading.Event()
        self._thread = threading.Thread(target=self._write_forever, name="access-log", daemon=True)
        self._thread.start()

    def add(self, entry: tuple[Any, ...]) -> None:
        pending = self.pending
        pending.append(entry)
        if len(pending) == self.BATCH:
            self._wake.set()

    def _write_forever(self) -> None:
        while not self._stopped:
            self._wake.wait(self.FLUSH_EVERY_S)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        pending, lines = self.pending, []
        while pending:
            lines.append(self._format(*pending.popleft()))
        if lines:
            self._stream.write("".join(lines))
            self._stream.flush()

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._wake.set()
            self._thread.join(timeout=2)
            self.flush()


def _access_fields(record: RequestRecord, status: int, seconds: float) -> dict[str, Any]:
    return {
        "method": record.method,
        "route": record.route,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "db_ms": round(record.db_seconds * 1000, 2),
        "pool_wait_ms": round(record.pool_wait * 1000, 2),
        "user_id": record.user_id,
    }


def _access_message(record: RequestRecord, status: int, seconds: float) -> str:
    return f"{record.method} {record.route or '-'} {status} {seconds * 1000:.1f}ms"


def _json_access(record: RequestRecord, status: int, seconds: float, at: float) -> str:
    # json.dumps of the same fields, written out: building a dict and walking it through the
    # encoder took 17 µs a request, a twentieth of a read. Strings go through json.dumps' own
    # C quoting; numbers as json.dumps writes them (repr); tests hold the two equal.
    route, user = record.route, record.user_id
    return (
        f"{_JSON_ACCESS_START}{_quoted(_access_message(record, status, seconds))}, "
        f'"request_id": {_quoted(record.request_id)}, "method": {_quoted(record.method)}, '
        f'"route": {"null" if route is None else _quoted(route)}, "status": {status}, '
        f'"duration_ms": {round(seconds * 1000, 2)!r}, '
        f'"db_ms": {round(record.db_seconds * 1000, 2)!r}, '
        f'"pool_wait_ms": {round(record.pool_wait * 1000, 2)!r}, '
        f'"user_id": {"null" if user is None else int(user)}, '
        f'"timestamp": "{datetime.fromtimestamp(at, tz=UTC).isoformat()}"}}\n'
    )


_JSON_ACCESS_START = f'{{"level": "INFO", "logger": {_quoted(access_log.name)}, "message": '


def _text_access(record: RequestRecord, status: int, seconds: float, at: float) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) + f",{int(at % 1 * 1000):03d}"
    message = _access_message(record, status, seconds)
    return f"{stamp} INFO {access_log.name} [{record.request_id}] {message}\n"


_output: _Output | None = None
_access_lines: _AccessLines | None = None


def configure_logging(settings: Settings) -> None:
    """Set up the process's logging, unless something else (pytest, an app that embeds ours)
    has configured the root logger already."""
    global _output, _access_lines
    logging.setLogRecordFactory(_record_with_request_id)
    root = logging.getLogger()
    if any(_output is None or handler is not _output.handler for handler in root.handlers):
        return
    if _output is not None:
        root.removeHandler(_output.handler)
        _output.stop()
    if _access_lines is not None:
        _access_lines.stop()
    _output = _Output(_formatter(json=settings.logs_as_json))
    _access_lines = _AccessLines(sys.stderr, as_json=settings.logs_as_json)
    atexit.register(_access_lines.stop)
    root.addHandler(_output.handler)
    root.setLevel(logging.INFO)
    # uvicorn gave its loggers handlers of its own format: its lines come here instead. Its
    # access line is replaced by ours (write_access_line), which knows the route and the user.
    uvicorn = logging.getLogger("uvicorn")
    uvicorn.handlers.clear()
    uvicorn.propagate = True
    logging.getLogger("uvicorn.access").disabled = True


def _formatter(*, json: bool) -> logging.Formatter:
    if not json:
        return _TextFormatter(TEXT_FORMAT)
    return JsonFormatter(
        JSON_FIELDS, rename_fields=RENAMED, reserved_attrs=NOT_FIELDS, timestamp=True
    )


def write_access_line(record: RequestRecord, status: int, seconds: float) -> None:
    """The request's one access line: route template, never the path or its query string."""
    if _access_lines is not None:
        _access_lines.add((record, status, seconds, time.time()))
    elif access_log.isEnabledFor(logging.INFO):  # logging set up by someone else (pytest)
        fields = _access_fields(record, status, seconds)
        access_log.info(_access_message(record, status, seconds), extra=fields)
