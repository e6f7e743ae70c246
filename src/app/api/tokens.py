"""API: trade HTTP Basic credentials for a named bearer token; list and revoke tokens."""

from __future__ import annotations

from datetime import timedelta

from flask import Response, current_app
from werkzeug.datastructures import Authorization

from ..database import db
from ..models import MAX_ID, is_username
from ..passwords import verify_password
from ..ratelimit import limited_by_address, not_rate_limited
from ..sign_in_throttle import record_failed_sign_in, record_sign_in, refuse_if_throttled
from ..store.tokens import (
    issue_token,
    list_live_tokens,
    revoke_live_token,
    revoke_token_by_id,
)
from ..store.users import find_user_by_username, update_password_hash
from . import bp
from .contract import BASIC_CHALLENGE, Bearer, operation
from .problems import APIProblem
from .responses import json_response, no_content
from .schemas import Problem, TokenCreate, TokenInfo, TokenIssued, TokenList
from .token_uses import token_uses


@bp.post("/tokens")
@operation(
    auth="basic",
    body=TokenCreate,
    body_optional=True,
    responses={201: TokenIssued, 401: Problem},
    tag="tokens",
)
@limited_by_address("sign-in-address")
async def create_token(credentials: Authorization, body: TokenCreate) -> Response:
    """Get a bearer token for a username and password sent as HTTP Basic credentials,
    named if the body gives a name."""
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
        new = await issue_token(conn, user.id, lifetime, name=body.name)
    issued = TokenIssued(id=new.id, token=new.secret, name=new.name, expires_at=new.expires_at)
    return json_response(issued, 201)


@bp.get("/tokens")
@operation(auth="bearer", responses={200: TokenList, 401: Problem}, tag="tokens")
async def list_tokens(bearer: Bearer) -> Response:
    """The caller's live tokens, newest first: names and times, never the secrets."""
    async with db.connect() as conn:
        user = await bearer.user(conn)
        rows = await list_live_tokens(conn, user.id)
    items = [
        TokenInfo(
            id=token_id,
            name=name,
            created_at=created_at,
            last_used_at=token_uses.unwritten(token_hash) or last_used_at,
            expires_at=expires_at,
            current=token_hash == bearer.digest,
        )
        for token_id, name, created_at, last_used_at, expires_at, token_hash in rows
    ]
    return json_response(TokenList(items))


@bp.delete("/tokens")
@operation(auth="bearer", responses={204: None, 401: Problem}, tag="tokens")
@not_rate_limited("it only revokes the caller's own token")
async def delete_token(bearer: Bearer) -> Response:
    """Revoke the bearer token this request carries."""
    async with db.connect() as conn:
        bearer.accept(await revoke_live_token(conn, bearer.digest))
    return no_content()


@bp.delete("/tokens/<int:token_id>")
@operation(auth="bearer", responses={204: None, 401: Problem, 404: Problem}, tag="tokens")
@not_rate_limited("it only revokes one of the caller's own tokens")
async def revoke_token(bearer: Bearer, token_id: int) -> Response:
    """Revoke one of your live tokens by its id (from ``GET /api/tokens``)."""
    async with db.connect() as conn:
        user = await bearer.user(conn)
        revoked = token_id <= MAX_ID and await revoke_token_by_id(
            conn, user_id=user.id, token_id=token_id
        )
    if not revoked:
        raise APIProblem(404, "You have no live token with that id.")
    return no_content()
