"""Logging under load: one line per burst, not one per request."""

from __future__ import annotations

import time


class Occasionally:
    """Truthy at most once every ``seconds``: ``if every_ten_seconds(): log.warning(...)``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last = -seconds

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.seconds:
            return False
        self._last = now
        return True
