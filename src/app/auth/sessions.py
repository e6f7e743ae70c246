"""Browser sessions: the signed cookie, and who is signed in.

The signed user is loaded from the database asynchronously before each browser request;
Flask-Login's ``user_loader`` is synchronous, so it only reads what that hook loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, Request, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login import UserMixin

from .. import login_manager
from ..api import is_api_path
from ..database import db
from ..store.users import find_user_by_id
from . import bp

NOT_BROWSER_BLUEPRINTS = frozenset({"api", "health"})


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
async def load_signed_in_user() -> None:
    if request.blueprint in NOT_BROWSER_BLUEPRINTS:
        return
    user_id = session.get("_user_id")
    if user_id is None:
        return
    async with db.connect() as conn:
        row = await find_user_by_id(conn, int(user_id))
    g.session_user = SessionUser(row.id, row.username) if row is not None else None


@login_manager.user_loader
def read_loaded_user(user_id: str) -> SessionUser | None:
    user: SessionUser | None = g.get("session_user")
    return user if user is not None and user.get_id() == user_id else None


login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to see that page."
