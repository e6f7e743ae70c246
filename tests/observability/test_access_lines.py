"""The JSON access line is written out by hand for speed: it must be, byte for byte, what
json.dumps makes of the same fields, whatever the route, user and figures hold."""

import json
from datetime import UTC, datetime

import pytest

from app.observability.logs import _access_fields, _access_message, _json_access, access_log
from app.observability.records import RequestRecord


def as_json_dumps_writes_it(record, status, seconds, at):
    """The line as it was made before: json.dumps of a dict of the access fields."""
    line = {
        "level": "INFO",
        "logger": access_log.name,
        "message": _access_message(record, status, seconds),
        "request_id": record.request_id,
        **_access_fields(record, status, seconds),
        "timestamp": datetime.fromtimestamp(at, tz=UTC).isoformat(),
    }
    return json.dumps(line) + "\n"


@pytest.mark.parametrize(
    ("route", "user_id", "seconds", "db_seconds", "at"),
    [
        ("/api/posts/<int:post_id>", None, 0.0023, 0.00123, 1_765_000_000.123456),
        (None, 42, 12.5, 0.0, 1_765_000_000.0),  # no route matched; a whole second
        ('/odd/"quoted"\\path/ünïcode\t', 7, 1e-7, 3.14159, 0.5),
    ],
)
def test_the_access_line_is_what_json_dumps_writes(route, user_id, seconds, db_seconds, at):
    record = RequestRecord("0123456789abcdef0123456789abcdef", "PATCH")
    record.route, record.user_id, record.db_seconds = route, user_id, db_seconds
    record.pool_wait = db_seconds / 3
    line = _json_access(record, 201, seconds, at)
    assert line == as_json_dumps_writes_it(record, 201, seconds, at)
    assert json.loads(line)["route"] == route
