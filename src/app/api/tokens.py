"""API: trade HTTP Basic credentials for a bearer token, and revoke it."""

from __future__ import annotations

from datetime import timedelta

from flask import Response, current_app
from werkzeug.datastructures import Authorization

from ..database import db
from ..models import is_username
from ..passwords import verify_password
from ..ratelimit import limited_by_address, not_rate_limited
from ..sign_in_throttle import record_failed_sign_in, record_sign_in, refuse_if_throttled
from ..store.tokens import issue_token, revoke_live_token
from ..store.users import find_user_by_username, update_password_hash
from . import bp
from .contract import BASIC_CHALLENGE, Bearer, operation
from .problems import APIProblem
from .responses import json_response, no_content
from .schemas import Problem, TokenIssued


@bp.post("/tokens")
@operation(auth="basic", responses={201: TokenIssued, 401: Problem}, tag="tokens")
@limited_by_address("sign-in-address")
async def create_token(credentials: Authorization) -> Response:
    """Get a bearer token for a username and password sent as HTTP Basic credentials."""
    username = credentials.username or ""
    await refuse_if_throttled(username)
    user = None
    if is_username(username):  # anything else cannot exist: no need to ask the database
        async with db.connect() as conn:
            user = await find_user_by_username(conn, username)
    # No connection is held while the password is checked: a hash takes far longer than a query.
    password_hash = user.password_hash if user is not None else None
    verdict = await verify_password(password_hash, credentials.password or "")
    if user is None or not verdict.matches:
        await record_failed_sign_in(username)
        raise APIProblem(401, "Wrong username or password.", headers=BASIC_CHALLENGE)
    await record_sign_in(username)
    lifetime = timedelta(hours=current_app.config["TOKEN_LIFETIME_HOURS"])
    async with db.connect() as conn:
        if verdict.new_hash is not None:
            await update_password_hash(conn, user.id, verdict.new_hash)
        token, expires_at = await issue_token(conn, user.id, lifetime)
    return json_response(TokenIssued(token=token, expires_at=expires_at), 201)


@bp.delete("/tokens")
@operation(auth="bearer", responses={204: None, 401: Problem}, tag="tokens")
@not_rate_limited("it only revokes the caller's own token")
async def delete_token(bearer: Bearer) -> Response:
    """Revoke the bearer token this request carries."""
    async with db.connect() as conn:
        bearer.accept(await revoke_live_token(conn, bearer.digest))
    return no_content()
