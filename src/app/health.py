"""Liveness and readiness probes for the platform's router and deploy checks."""

from __future__ import annotations

import asyncio

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from .database import db
from .draining import drain
from .ratelimit import rate_limiter

bp = Blueprint("health", __name__)


@bp.get("/healthz")
async def healthz() -> Response:
    """The process is up and serving; the database is not consulted."""
    return jsonify(status="ok")


@bp.get("/readyz")
async def readyz() -> tuple[Response, int]:
    """200 when a database round trip succeeds in time, else 503; 503 once draining."""
    if drain.started:
        return jsonify(status="draining"), 503
    try:
        async with asyncio.timeout(current_app.config["READINESS_TIMEOUT"]):
            async with db.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"; the reason goes to the log
        current_app.logger.warning("readiness check failed: %r", exc)
        return jsonify(status="unavailable"), 503
    if failing := rate_limiter.failing():  # still ready: limits fail open, but say so here
        return jsonify(status="ok", rate_limits=f"off: {failing}"), 200
    return jsonify(status="ok"), 200
