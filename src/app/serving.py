"""What uvicorn serves: the Flask app behind the bridge, with the layers that must run before
Flask does, outermost first: the request's record (id, access line, metrics), then shedding."""

from __future__ import annotations

from typing import Any

from flask_greenlet import ASGIApp, AsyncFlask

from .config import Settings
from .observability.access import Observed
from .observability.metrics import metrics
from .overload import LoadShedding
from .security import security_headers


class ServedApp:
    """The ASGI application, and the Flask app it serves (``flask_app``)."""

    def __init__(self, flask_app: AsyncFlask, settings: Settings) -> None:
        self.flask_app = flask_app
        self.shedding = LoadShedding(
            ASGIApp(flask_app, body_timeout=settings.request_body_timeout),
            flask_app,
            max_lag_ms=settings.overload_max_lag_ms,
            headers=security_headers(production=settings.is_production),
        )
        self._app = Observed(self.shedding, metrics, access_log=settings.access_log)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)
