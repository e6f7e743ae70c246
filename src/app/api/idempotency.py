"""``Idempotency-Key``: a client that retries a write (after a 503, a timeout, a lost
connection) sends the same key, and the write happens once.

The first request with a key does the work and keeps its answer with the key, in the same
transaction. A repeat with the same key and the same body gets that answer again, marked
``Idempotent-Replayed: true``, and writes nothing; the same key with another body is a 422;
a repeat while the first is still running gets 409 with ``Retry-After``. Keys belong to the
token's user and are forgotten after ``IDEMPOTENCY_KEY_HOURS``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from flask import Response, current_app, request
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..database import db
from ..models import IDEMPOTENCY_KEY_MAX
from ..occasionally import Occasionally
from ..store.idempotency import StoredAnswer, claim_key, purge_expired_keys
from .problems import APIProblem

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
WELL_FORMED = re.compile(rf"[\x21-\x7e]{{1,{IDEMPOTENCY_KEY_MAX}}}")  # visible ASCII
LOCK_NOT_AVAILABLE = "55P03"
# How long a repeat waits for the first request with its key before a 409: the first usually
# commits well within it, and then the repeat gets its answer instead.
WAIT_FOR_THE_FIRST = "250ms"
PURGE_EVERY_S = 600
_purge_due = Occasionally(PURGE_EVERY_S)


def sent_key() -> str | None:
    """The request's ``Idempotency-Key``, None when it sent none, or a 422."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not WELL_FORMED.fullmatch(key):
        raise APIProblem(
            422, f"{HEADER} must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters."
        )
    return key


def request_digest(body: BaseModel) -> str:
    """What the request asked, in a form that ignores JSON spacing and key order."""
    asked = f"{request.method} {request.path} {body.model_dump_json()}"
    return hashlib.sha256(asked.encode()).hexdigest()


async def claim(conn: AsyncConnection, *, user_id: int, key: str, digest: str) -> int | Response:
    """Claim ``key`` for this write (its row id, for ``keep_answer``); or, if it was used
    before, the answer it got again. A 422 if it was used for another request, a 409 while
    the first request with it is still running."""
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{WAIT_FOR_THE_FIRST}'")
    hours = current_app.config["SETTINGS"].idempotency_key_hours
    try:
        found = await claim_key(
            conn, user_id=user_id, key=key, request_digest=digest, lifetime=timedelta(hours=hours)
        )
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            raise APIProblem(
                409,
                f"A request with this {HEADER} is still being handled; retry shortly.",
                headers={"Retry-After": "1"},
            ) from None
        raise
    if isinstance(found, StoredAnswer):
        if found.request_digest != digest:
            raise APIProblem(422, f"This {HEADER} was used for a different request.")
        return replay(found)
    return found


def replay(answer: StoredAnswer) -> Response:
    response = Response(answer.body, status=answer.status, mimetype="application/json")
    if answer.location:
        response.headers["Location"] = answer.location
    response.headers[REPLAYED] = "true"
    return response


async def purge_now_and_then() -> None:
    """Each worker forgets expired keys every ``PURGE_EVERY_S``, after a keyed write."""
    if _purge_due():
        async with db.connect() as conn:
            await purge_expired_keys(conn)
