"""Everyone's posts, one user's posts, and writing, editing and deleting a post."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from ..database import db
from ..live import live
from ..models import MAX_ID, is_username
from ..ratelimit import not_rate_limited
from ..store.posts import (
    NotAuthor,
    create_post,
    delete_post,
    edit_post,
    find_post,
    select_posts_page,
)
from ..store.users import find_user_by_username
from . import bp
from .forms import PostForm

MAX_PAGE_DIGITS = 7  # a million pages of 20 posts: further than anyone pages


def requested_page() -> int:
    """The ``?page=N`` number (from 1); anything else, or a page no one could reach, is a 404."""
    raw = request.args.get("page", "1")
    if not raw.isascii() or not raw.isdigit() or len(raw) > MAX_PAGE_DIGITS or int(raw) < 1:
        abort(404)
    return int(raw)


@bp.route("/", methods=["GET", "POST"])
@not_rate_limited("writing needs a signed-in session, and each post is at most 280 characters")
async def index() -> Response | str:
    form = PostForm()
    if request.method == "POST" and not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()  # type: ignore[attr-defined,no-any-return]
    if form.validate_on_submit():
        async with db.connect() as conn:
            post = await create_post(
                conn, author_id=current_user.id, author=current_user.username, body=form.body.data
            )
        live.post_created(post)
        post_id = post[0]
        flash("Your post is live.")
        return redirect(url_for("main.index", _anchor=f"post-{post_id}"))
    return await _render_posts("index.html", form=form)


@bp.route("/post/<int:post_id>/edit", methods=["GET", "POST"])
@not_rate_limited("only an author edits, and only their own posts")
@login_required
async def change_post(post_id: int) -> Response | str:
    if post_id > MAX_ID:
        abort(404)
    form = PostForm()
    if form.validate_on_submit():
        try:
            async with db.connect() as conn:
                row = await edit_post(
                    conn,
                    post_id=post_id,
                    author_id=current_user.id,
                    author=current_user.username,
                    body=form.body.data,
                )
        except NotAuthor:
            abort(403)
        if row is None:
            abort(404)
        live.post_edited(row)
        flash("Your post is edited.")
        return redirect(url_for("main.index", _anchor=f"post-{post_id}"))
    if request.method == "GET":
        async with db.connect() as conn:
            post = await find_post(conn, post_id)
        if post is None:
            abort(404)
        if post[2] != current_user.username:
            abort(403)
        form.body.data = post[1]
    return render_template("edit.html", form=form, post_id=post_id)


@bp.post("/post/<int:post_id>/delete")
@not_rate_limited("only an author deletes, and only their own posts")
@login_required
async def remove_post(post_id: int) -> Response:
    if post_id > MAX_ID:
        abort(404)
    try:
        async with db.connect() as conn:
            deleted = await delete_post(conn, post_id=post_id, author_id=current_user.id)
    except NotAuthor:
        abort(403)
    if not deleted:
        abort(404)
    live.post_deleted(post_id)
    flash("Your post is deleted.")
    return redirect(url_for("main.index"))


@bp.get("/user/<username>")
async def user_posts(username: str) -> str:
    if not is_username(username):
        abort(404)
    user = await db.read(find_user_by_username, username, primary_on_miss=True)
    if user is None:
        abort(404)
    return await _render_posts("user.html", author=user)


async def _render_posts(template: str, **context: object) -> str:
    page = requested_page()
    author = context.get("author")
    posts, has_older = await db.read(
        select_posts_page,
        page=page,
        per_page=current_app.config["POSTS_PER_PAGE"],
        author_id=getattr(author, "id", None),
    )
    if page > 1 and not posts:
        abort(404)
    return render_template(template, posts=posts, page=page, has_older=has_older, **context)
