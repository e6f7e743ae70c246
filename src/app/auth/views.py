"""Register, sign in, sign out (here or everywhere), change the password."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from ..database import db
from ..passwords import hash_password, verify_password
from ..ratelimit import RateLimited, limited_by_address, not_rate_limited
from ..sign_in_throttle import record_failed_sign_in, record_sign_in, refuse_if_throttled
from ..store.sessions import end_all_sessions
from ..store.users import (
    EmailTaken,
    UsernameTaken,
    create_user,
    find_user_by_username,
    refuse_taken,
    replace_password,
    update_password_hash,
)
from . import bp
from .forms import LoginForm, PasswordChangeForm, RegistrationForm, SignOutEverywhereForm
from .sessions import SessionUser, sign_in, sign_out

LOGIN_FAILED = "Wrong username or password."


@bp.route("/register", methods=["GET", "POST"])
@limited_by_address("register-address")
async def register() -> Response | str:
    form = RegistrationForm()
    if form.validate_on_submit():
        username, email = form.username.data, form.email.data.lower()
        try:
            async with db.connect() as conn:
                await refuse_taken(conn, username=username, email=email)
            password_hash = await hash_password(form.password.data)
            async with db.connect() as conn:
                await create_user(conn, username=username, email=email, password_hash=password_hash)
        except UsernameTaken:
            form.username.errors.append("That username is taken.")
        except EmailTaken:
            form.email.errors.append("That email address is already registered.")
        else:
            flash("Welcome! You can sign in now.")
            return redirect(url_for("auth.login"))
    return render_template("auth/register.html", form=form)


@bp.route("/login", methods=["GET", "POST"])
@limited_by_address("sign-in-address")
async def login() -> Response | str | tuple[str, int, dict[str, str]]:
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if form.validate_on_submit():
        username = form.username.data
        try:
            await refuse_if_throttled(username)
        except RateLimited as limited:
            form.form_errors.append(limited.message)
            return render_template("auth/login.html", form=form), 429, limited.headers
        async with db.connect() as conn:
            user = await find_user_by_username(conn, username)
        password_hash = user.password_hash if user is not None else None
        verdict = await verify_password(password_hash, form.password.data)
        if user is not None and verdict.matches:
            if verdict.new_hash is not None:
                async with db.connect() as conn:
                    await update_password_hash(conn, user.id, verdict.new_hash)
            await record_sign_in(username)
            await sign_in(SessionUser(user.id, user.username), remember=form.remember.data)
            return redirect(local_path_or(request.args.get("next"), url_for("main.index")))
        await record_failed_sign_in(username)
        form.form_errors.append(LOGIN_FAILED)
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@not_rate_limited("it only ends the caller's own session")
async def logout() -> Response:
    await sign_out()
    flash("You are signed out.")
    return redirect(url_for("main.index"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
@limited_by_address("sign-in-address")
async def change_password() -> Response | str | tuple[str, int, dict[str, str]]:
    form = PasswordChangeForm()
    everywhere = SignOutEverywhereForm()
    if form.validate_on_submit():
        try:
            await refuse_if_throttled(current_user.username)
        except RateLimited as limited:
            form.form_errors.append(limited.message)
            page = render_template("auth/password.html", form=form, everywhere=everywhere)
            return page, 429, limited.headers
        async with db.connect() as conn:
            user = await find_user_by_username(conn, current_user.username)
        stored = user.password_hash if user is not None else None
        verdict = await verify_password(stored, form.current_password.data)
        if user is not None and verdict.matches:
            await record_sign_in(current_user.username)
            password_hash = await hash_password(form.new_password.data)
            async with db.begin() as conn:
                await replace_password(conn, current_user.id, password_hash)
            await sign_in(SessionUser(current_user.id, current_user.username), remember=False)
            flash("Your password is changed, and every other device is signed out.")
            return redirect(url_for("main.index"))
        await record_failed_sign_in(current_user.username)
        form.current_password.errors.append("That is not your current password.")
    return render_template("auth/password.html", form=form, everywhere=everywhere)


@bp.post("/sign-out-everywhere")
@not_rate_limited("it only ends the caller's own sessions")
@login_required
async def sign_out_everywhere() -> Response:
    form = SignOutEverywhereForm()
    if form.validate_on_submit():
        async with db.connect() as conn:
            await end_all_sessions(conn, current_user.id)
        await sign_out()
        flash("Every device, this one included, is signed out.")
    return redirect(url_for("main.index"))


def local_path_or(target: str | None, fallback: str) -> str:
    """``target`` if it is a path on this site, else ``fallback`` (no open redirects)."""
    if not target or "\\" in target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return fallback
    return target
