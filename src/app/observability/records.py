"""Every request carries an id and a record of what it did, for its log lines and metrics.

The id is the router's ``X-Request-ID`` when it is well formed (Heroku sends one), otherwise a
fresh one. The record is made at the outermost ASGI layer, before load shedding, so even a shed
request has one; it lives in a context variable, which the bridge carries into the Flask
request, its sync views' threads and the password threads. It is one mutable object, so what
the Flask side notes (the route, the user, time on the database) is seen by the ASGI layer.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

REQUEST_ID_HEADER = b"x-request-id"
WELL_FORMED = re.compile(rb"[A-Za-z0-9._:+=@/-]{8,128}")  # a UUID, Heroku's, a trace id


class RequestRecord:
    """What one request did, filled in as it runs."""

    __slots__ = ("db_seconds", "method", "pool_wait", "request_id", "route", "user_id")

    def __init__(self, request_id: str, method: str) -> None:
        self.request_id, self.method = request_id, method
        self.route: str | None = None  # the URL rule's template, once Flask has matched one
        self.user_id: int | None = None
        self.db_seconds = 0.0  # holding a database connection, connect included
        self.pool_wait = 0.0  # waiting for a turn at one


current_record: ContextVar[RequestRecord | None] = ContextVar("request_record", default=None)


def current_request_id() -> str | None:
    record = current_record.get()
    return record.request_id if record is not None else None


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's or router's id if it is well formed, else a new one."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if WELL_FORMED.fullmatch(value):
                return value.decode()
            break
    return os.urandom(16).hex()  # as random as uuid4, without building a UUID object


def note_user(user_id: int) -> None:
    """The request speaks for this user (a token or a browser session said so)."""
    record = current_record.get()
    if record is not None:
        record.user_id = user_id


def note_database_turn(waited: float, held: float) -> None:
    record = current_record.get()
    if record is not None:
        record.pool_wait += waited
        record.db_seconds += held
