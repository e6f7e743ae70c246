"""API: list, read, write, edit and delete posts."""

from __future__ import annotations

from collections.abc import Sequence

from flask import Response, request

from ..database import db
from ..live import live
from ..models import MAX_ID
from ..paths import API_PREFIX
from ..ratelimit import limited_by_token
from ..store.idempotency import keep_answer
from ..store.posts import (
    NotAuthor,
    PostRow,
    create_post,
    create_post_for_token,
    delete_post,
    edit_post,
    find_post,
    select_posts_older,
)
from . import bp
from .contract import Bearer, operation
from .idempotency import claim, purge_now_and_then, request_digest, sent_key
from .problems import APIProblem
from .responses import json_response, json_with_etag, no_content
from .schemas import (
    PageQuery,
    PostCreate,
    PostEdit,
    PostPage,
    PostPublic,
    Problem,
    encode_cursor,
)


def post_page(rows: Sequence[PostRow], limit: int) -> PostPage:
    """The page of the first ``limit`` rows; ``rows`` holds one more if a next page exists."""
    items = [PostPublic(*row) for row in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return PostPage(items, next_cursor)


def no_such_post() -> APIProblem:
    return APIProblem(404, "No post has that id.")


@bp.get("/posts")
@operation(query=PageQuery, responses={200: PostPage, 422: Problem}, tag="posts", conditional=True)
async def list_posts(query: PageQuery) -> Response:
    """Everyone's posts, newest first, a page at a time."""
    posts = await db.read(select_posts_older, limit=query.limit + 1, before=query.before)
    return json_with_etag(post_page(posts, query.limit))


@bp.post("/posts")
@operation(
    auth="bearer",
    body=PostCreate,
    responses={201: PostPublic, 401: Problem, 409: Problem, 422: Problem},
    tag="posts",
    idempotency_key=True,
)
@limited_by_token("api-write")
async def write_post(bearer: Bearer, body: PostCreate) -> Response:
    """Write a post as the token's user. With an ``Idempotency-Key``, a retry writes nothing
    and gets the first answer again."""
    key = sent_key()
    if key is not None:
        return await write_post_once(bearer, body, key)
    async with db.connect() as conn:
        found = await create_post_for_token(conn, token_hash=bearer.digest, body=body.body)
    row = bearer.accept(found)
    live.post_created(row)
    return created(row)


async def write_post_once(bearer: Bearer, body: PostCreate, key: str) -> Response:
    """The write, its key and its answer in one transaction: all of them, or none."""
    async with db.begin() as conn:
        user = await bearer.user(conn)
        claimed = await claim(conn, user_id=user.id, key=key, digest=request_digest(body))
        if isinstance(claimed, Response):
            return claimed
        row = await create_post(conn, author_id=user.id, author=user.username, body=body.body)
        response = created(row)
        await keep_answer(
            conn,
            claimed,
            status=response.status_code,
            body=response.get_data(as_text=True),
            location=response.headers["Location"],
        )
    live.post_created(row)
    await purge_now_and_then()
    return response


def created(row: PostRow) -> Response:
    post = PostPublic(*row)
    # The route's path written out: url_for builds it at several times the cost, on every write.
    location = f"{request.script_root}{API_PREFIX}posts/{post.id}"
    return json_response(post, 201, {"Location": location})


@bp.get("/posts/<int:post_id>")
@operation(responses={200: PostPublic, 404: Problem}, tag="posts", conditional=True)
async def get_post(post_id: int) -> Response:
    """One post."""
    post = None
    if post_id <= MAX_ID:
        post = await db.read(find_post, post_id, primary_on_miss=True)
    if post is None:
        raise no_such_post()
    return json_with_etag(PostPublic(*post))


@bp.patch("/posts/<int:post_id>")
@operation(
    auth="bearer",
    body=PostEdit,
    responses={200: PostPublic, 401: Problem, 403: Problem, 404: Problem, 422: Problem},
    tag="posts",
)
@limited_by_token("api-write")
async def change_post(bearer: Bearer, post_id: int, body: PostEdit) -> Response:
    """Edit one of your own posts: its new body, under the same rules as a new post's."""
    async with db.connect() as conn:
        user = await bearer.user(conn)
        if post_id > MAX_ID:
            raise no_such_post()
        try:
            row = await edit_post(
                conn, post_id=post_id, author_id=user.id, author=user.username, body=body.body
            )
        except NotAuthor:
            raise APIProblem(403, "Only its author can edit a post.") from None
    if row is None:
        raise no_such_post()
    live.post_edited(row)
    return json_response(PostPublic(*row))


@bp.delete("/posts/<int:post_id>")
@operation(
    auth="bearer", responses={204: None, 401: Problem, 403: Problem, 404: Problem}, tag="posts"
)
@limited_by_token("api-write")
async def remove_post(bearer: Bearer, post_id: int) -> Response:
    """Delete one of your own posts."""
    async with db.connect() as conn:
        user = await bearer.user(conn)
        if post_id > MAX_ID:
            raise no_such_post()
        try:
            deleted = await delete_post(conn, post_id=post_id, author_id=user.id)
        except NotAuthor:
            raise APIProblem(403, "Only its author can delete a post.") from None
    if not deleted:
        raise no_such_post()
    live.post_deleted(post_id)
    return no_content()
