"""Browser sessions: who is signed in, decided on the server for every request.

The signed cookie carries only a random session id; the session itself is a row in
``browser_sessions`` (``store/sessions.py``), loaded asynchronously before each page request.
Ending the row (sign out, sign out everywhere, a password change) signs that browser out even
if it replays an old cookie. Flask-Login's ``user_loader`` is synchronous, so it only reads
what the hook loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import Flask, Request, current_app, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login import LoginManager, UserMixin, login_user, logout_user

from ..database import db
from ..observability.records import note_user
from ..paths import is_api_path
from ..store.sessions import end_session, find_session_user, start_session
from . import bp

SESSION_ID = "sid"
NOT_BROWSER_BLUEPRINTS = frozenset({"api", "health"})

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to see that page."


class BrowserSessionInterface(SecureCookieSessionInterface):
    """Signed-cookie sessions for pages; API requests get none, so cookies never reach it."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if is_api_path(request.path):
            return self.make_null_session(app)
        return super().open_session(app, request)


@dataclass(frozen=True)
class SessionUser(UserMixin):
    id: int
    username: str

    def get_id(self) -> str:
        return str(self.id)


@bp.before_app_request
def load_signed_in_user() -> None:
    # A sync hook: an async one costs every request (API and probes included) a trip to the
    # event loop and back, though only a browser with a session cookie has anything to load.
    if request.blueprint in NOT_BROWSER_BLUEPRINTS or request.endpoint == "static":
        return
    token = session.get(SESSION_ID)
    if token is not None:
        current_app.ensure_sync(_load_session_owner)(token)


async def _load_session_owner(token: str) -> None:
    async with db.connect() as conn:
        owner = await find_session_user(conn, token)
    if owner is None:  # ended on the server, or expired: this browser is signed out
        session.clear()
        return
    g.session_user = SessionUser(owner.id, owner.username)
    note_user(owner.id)


@login_manager.user_loader
def read_loaded_user(user_id: str) -> SessionUser | None:
    user: SessionUser | None = g.get("session_user")
    return user if user is not None and user.get_id() == user_id else None


async def sign_in(user: SessionUser, *, remember: bool) -> None:
    """A fresh session for ``user``: a new server row, a new cookie, nothing kept from before."""
    config = current_app.config
    lifetime = config["PERMANENT_SESSION_LIFETIME"] if remember else config["SESSION_LIFETIME"]
    async with db.connect() as conn:
        token = await start_session(conn, user.id, lifetime=lifetime, remember=remember)
    session.clear()
    session[SESSION_ID] = token
    session.permanent = remember  # otherwise the cookie ends with the browser
    login_user(user)


async def sign_out() -> None:
    token = session.get(SESSION_ID)
    if token is not None:
        async with db.connect() as conn:
            await end_session(conn, token)
    logout_user()
    session.clear()


def init_login(app: Flask) -> None:
    """Flask-Login on ``app``, its remember-cookie hook on the sign-in pages only.

    The hook sets or clears Flask-Login's remember cookie when the session holds
    ``_remember``, which only ``login_user(remember=True)`` and ``logout_user()`` put there,
    and only this blueprint's views call them (our "keep me signed in" is the server-side
    session's lifetime, not that cookie). Anywhere else it had nothing to do, on every
    request, the API's included: about 3 % of a read's instructions.
    """
    login_manager.init_app(app)
    hook = login_manager._update_remember_cookie
    app.after_request_funcs[None].remove(hook)
    app.after_request_funcs.setdefault(bp.name, []).append(hook)


def session_lifetimes(session_hours: int, remember_days: int) -> dict[str, timedelta]:
    """Flask config: how long a sign-in lasts, with and without "keep me signed in"."""
    return {
        "SESSION_LIFETIME": timedelta(hours=session_hours),
        "PERMANENT_SESSION_LIFETIME": timedelta(days=remember_days),
    }
