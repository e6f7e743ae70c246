"""API: register a user, read a user, list a user's posts."""

from __future__ import annotations

from flask import Response, url_for

from ..database import db
from ..models import is_username
from ..passwords import hash_password, verify_password
from ..ratelimit import limited_by_address
from ..sign_in_throttle import record_failed_sign_in, record_sign_in, refuse_if_throttled
from ..store.posts import select_user_posts_older
from ..store.tokens import UserRef
from ..store.users import (
    EmailTaken,
    UsernameTaken,
    create_user,
    find_own_profile,
    find_profile,
    find_user_by_username,
    refuse_taken,
    replace_password,
)
from . import bp
from .contract import Bearer, operation, refused_token
from .posts import post_page
from .problems import APIProblem
from .responses import json_response, json_with_etag, no_content
from .schemas import (
    PageQuery,
    PasswordChange,
    PostPage,
    Problem,
    UserCreate,
    UserPublic,
    UserSelf,
)


@bp.post("/users")
@operation(body=UserCreate, responses={201: UserPublic, 409: Problem, 422: Problem}, tag="users")
@limited_by_address("register-address")
async def register(body: UserCreate) -> Response:
    """Register a new user."""
    try:
        async with db.connect() as conn:
            await refuse_taken(conn, username=body.username, email=body.email)
        password_hash = await hash_password(body.password)
        async with db.connect() as conn:
            profile = await create_user(
                conn, username=body.username, email=body.email, password_hash=password_hash
            )
    except UsernameTaken:
        raise APIProblem(409, "That username is taken.") from None
    except EmailTaken:
        raise APIProblem(409, "That email address is already registered.") from None
    location = url_for("api.get_user", username=profile.username)
    return json_response(UserPublic(*profile), 201, {"Location": location})


def no_such_user() -> APIProblem:
    return APIProblem(404, "No user has that username.")


@bp.put("/users/me/password")
@operation(
    auth="bearer",
    body=PasswordChange,
    responses={204: None, 401: Problem, 403: Problem, 422: Problem},
    tag="users",
)
@limited_by_address("sign-in-address")
async def change_password(user: UserRef, body: PasswordChange) -> Response:
    """Change the token user's password; every token and browser session of theirs ends."""
    await refuse_if_throttled(user.username)
    async with db.connect() as conn:
        account = await find_user_by_username(conn, user.username)
    verdict = await verify_password(
        account.password_hash if account else None, body.current_password
    )
    if account is None or not verdict.matches:
        await record_failed_sign_in(user.username)
        raise APIProblem(403, "The current password is wrong.")
    await record_sign_in(user.username)
    password_hash = await hash_password(body.new_password)
    async with db.begin() as conn:
        await replace_password(conn, user.id, password_hash)
    return no_content()


@bp.get("/users/me")
@operation(auth="bearer", responses={200: UserSelf, 401: Problem}, tag="users", conditional=True)
async def who_am_i(bearer: Bearer) -> Response:
    """The token's user, email address included."""
    async with db.connect() as conn:
        user = await bearer.user(conn)
        profile = await find_own_profile(conn, user.id)
    if profile is None:  # deleted between the two statements
        raise refused_token()
    return json_with_etag(UserSelf(*profile))


@bp.get("/users/<username>")
@operation(responses={200: UserPublic, 404: Problem}, tag="users", conditional=True)
async def get_user(username: str) -> Response:
    """A user's public profile, with its post count."""
    if not is_username(username):
        raise no_such_user()
    profile = await db.read(find_profile, username, primary_on_miss=True)
    if profile is None:
        raise no_such_user()
    return json_with_etag(UserPublic(*profile))


@bp.get("/users/<username>/posts")
@operation(
    query=PageQuery,
    responses={200: PostPage, 404: Problem, 422: Problem},
    tag="users",
    conditional=True,
)
async def list_user_posts(username: str, query: PageQuery) -> Response:
    """A user's posts, newest first, a page at a time."""
    if not is_username(username):
        raise no_such_user()
    posts = await db.read(
        select_user_posts_older, username, limit=query.limit + 1, before=query.before,
        primary_on_miss=True,
    )  # fmt: skip
    if posts is None:
        raise no_such_user()
    return json_with_etag(post_page(posts, query.limit))
