"""An async Flask microblog, served over ASGI. ``create_app`` builds everything."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask_greenlet import AsyncFlask
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import Settings
from .database import db
from .draining import drain
from .live import live
from .observability.access import RoutedRequest
from .observability.logs import configure_logging
from .observability.metrics import metrics
from .observability.tracing import tracing
from .passwords import password_budget
from .ratelimit import rate_limit_rules, rate_limiter

if TYPE_CHECKING:
    from .serving import ServedApp

csrf = CSRFProtect()


def create_app(settings: Settings | None = None, **overrides: Any) -> AsyncFlask:
    """Build the Flask app from ``settings`` (default: read from the environment)."""
    settings = settings or Settings()
    app = AsyncFlask(__name__, instance_path=str(settings.instance_path))
    app.request_class = RoutedRequest
    app.config.from_mapping(_flask_config(settings), **overrides)
    configure_logging(settings)

    db.init_app(app, settings)
    drain.init_app(app, grace_s=settings.drain_grace_s)
    password_budget.init_app(
        app,
        threads=settings.password_hash_threads,
        queue_timeout=settings.password_queue_timeout,
    )
    csrf.init_app(app)
    rate_limiter.init_app(app, settings)
    if settings.trusted_proxy_hops:
        # The client address is the one the platform's router saw: the last N entries of
        # X-Forwarded-For, never the client-supplied left end.
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]

    from . import api, auth, cli, health, main, security
    from .auth.sessions import BrowserSessionInterface, init_login, session_lifetimes

    init_login(app)
    app.config.update(session_lifetimes(settings.session_hours, settings.remember_days))
    from .errors import register_error_handlers

    app.session_interface = BrowserSessionInterface()

    live.init_app(app, settings, encode_post=api.stream.encode_post)
    api.token_uses.token_uses.init_app(app)
    csrf.exempt(api.bp)  # the API takes bearer tokens, never cookies
    app.register_blueprint(api.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(main.bp)
    app.register_blueprint(health.bp)
    register_error_handlers(app)
    security.init_app(
        app,
        production=settings.is_production,
        check_form_token=lambda: csrf.protect(apply_exemptions=True),
    )
    api.cors.init_app(app, settings.cors_origin_list)
    if settings.compress_responses:
        api.compression.init_app(app, api.bp.name)
    cli.register_commands(app)
    metrics.init_app(app, settings)
    tracing.init_app(settings)
    metrics.sample(app, pool=db.connections_in_use, subscribers=live.subscriber_count)
    return app


def create_asgi_app(settings: Settings | None = None) -> ServedApp:
    """The app as an ASGI server such as uvicorn serves it (request ids, load shedding)."""
    from .serving import ServedApp

    settings = settings or Settings()
    return ServedApp(create_app(settings), settings)


def _flask_config(settings: Settings) -> dict[str, Any]:
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    return {
        "SECRET_KEY": secret,
        "SETTINGS": settings,
        "MAX_CONTENT_LENGTH": settings.max_content_length,
        "TRUSTED_HOSTS": settings.trusted_hosts,
        "TOKEN_LIFETIME_HOURS": settings.token_lifetime_hours,
        "RATE_LIMIT_RULES": rate_limit_rules(settings),
        "READINESS_TIMEOUT": settings.readiness_timeout,
        "POSTS_PER_PAGE": 20,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": settings.is_production,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": settings.is_production,
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
        # Flask-WTF's own hook works out the view's exemptions on every request, GETs and the
        # API's included; security.py checks the token only where a form can be posted.
        "WTF_CSRF_CHECK_DEFAULT": False,
        # Browsers with strict privacy settings send no Referer over HTTPS; the token, SameSite
        # cookies and the Origin check (security.py) stand without it.
        "WTF_CSRF_SSL_STRICT": False,
        "SESSION_REFRESH_EACH_REQUEST": False,  # a sign-in ends when it ends; it never slides
        "TESTING": settings.app_env == "test",
    }
