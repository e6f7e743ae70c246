"""Every error answer comes from here: problem+json under /api, an HTML page elsewhere."""

from __future__ import annotations

import logging

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    SecurityError,
    ServiceUnavailable,
    TooManyRequests,
)

from .api.problems import APIProblem, problem_response
from .database import DATABASE_FAILURES, DatabaseBusy, database_unavailable
from .observability.metrics import metrics
from .observability.records import current_request_id
from .occasionally import Occasionally
from .passwords import PasswordBudgetExhausted
from .paths import is_api_path
from .ratelimit import RateLimited

log = logging.getLogger(__name__)
_database_busy_said, _database_down_said = Occasionally(10), Occasionally(10)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(APIProblem, _api_problem)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DatabaseBusy, _database_busy)
    app.register_error_handler(PasswordBudgetExhausted, _passwords_busy)
    app.register_error_handler(RateLimited, _rate_limited)
    for failure in DATABASE_FAILURES:
        app.register_error_handler(failure, _database_failure)
    app.register_error_handler(Exception, _unexpected_error)


def _wants_problem_json() -> bool:
    return is_api_path(request.path)


def _api_problem(error: APIProblem) -> Response:
    return error.to_response()


def _http_error(error: HTTPException) -> Response | tuple[str, int, dict[str, str]]:
    status = error.code or 500
    if _wants_problem_json():
        headers = {k: v for k, v in error.get_headers() if k.lower() in {"allow", "retry-after"}}
        return problem_response(status, error.description, headers=headers)
    if isinstance(error, SecurityError):  # an untrusted Host: no URL can be built for a page
        return Response("Bad Request: this host is not served here.\n", 400, mimetype="text/plain")
    headers = {k: v for k, v in error.get_headers() if k.lower() == "retry-after"}
    page = render_template("error.html", error=error, request_id=current_request_id())
    return page, status, headers


def _database_busy(error: DatabaseBusy) -> Response | tuple[str, int, dict[str, str]]:
    metrics.shed("database_queue")
    if _database_busy_said():
        log.warning("database queue full (%.2f s to wait): answering 503", error.args[0])
    return _http_error(ServiceUnavailable("The service is busy; try again shortly.", retry_after=1))


def _passwords_busy(error: PasswordBudgetExhausted) -> Response | tuple[str, int, dict[str, str]]:
    metrics.shed("password_queue")
    return _http_error(
        ServiceUnavailable("Too many sign-ins at once; try again shortly.", retry_after=1)
    )


def _rate_limited(error: RateLimited) -> Response | tuple[str, int, dict[str, str]]:
    log.info("rate limit %s hit by %s", error.rule.name, request.remote_addr)
    metrics.rate_limited(error.rule.name)
    return _http_error(TooManyRequests(error.message, retry_after=error.retry_after))


def _database_failure(error: Exception) -> Response | tuple[str, int, dict[str, str]]:
    if not database_unavailable(error):
        return _unexpected_error(error)
    if _database_down_said():
        log.warning("the database is unavailable (%r): answering 503", error)
    return _http_error(
        ServiceUnavailable("The database is unavailable; try again shortly.", retry_after=2)
    )


def _unexpected_error(error: Exception) -> Response | tuple[str, int, dict[str, str]]:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _http_error(InternalServerError())
