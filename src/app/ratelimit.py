"""Rate limits on what can be abused: sign-in, registration, tokens, password changes.

Counters are fixed windows. With ``REDIS_URL`` they live in Redis, shared by every worker and
instance, through redis-py's asyncio client so no call blocks the event loop; without it they
live in this process, which is right only for a single process (production refuses several
workers without Redis). If Redis fails, the limiter fails open: sign-in keeps working, the
failure is logged (at once when it happens at startup, then at most once a minute), and
``/readyz`` says the limits are off.

Each limited view says so with ``@limited_by_address(...)`` or, for the API's writes,
``@limited_by_token(...)``, which also enforce those limits; failed sign-ins are throttled
inside the view, where the account is known (``sign_in_throttle``). Routes that need no limit
say why with ``@not_rate_limited(...)``; a test walks the route map for both marks.

A limited answer tells the client where it stands, in the IETF draft's fields
(draft-ietf-httpapi-ratelimit-headers): ``RateLimit-Policy: "api-write";q=120;w=60``
(quota and window) and ``RateLimit: "api-write";r=119;t=60`` (remaining, seconds to reset).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from flask import Response, after_this_request, current_app, g, request
from flask_greenlet import AsyncFlask

from .observability.tracing import tracing
from .occasionally import Occasionally
from .redis_connection import explain_redis_failure, redis_address, redis_client

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from .config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    """At most ``count`` hits per ``seconds`` for one key; ``count == 0`` turns it off."""

    name: str
    count: int
    seconds: int

    @classmethod
    def parse(cls, name: str, text: str) -> Rule:
        """``"10/900"`` is 10 per 900 seconds; ``"off"`` turns the rule off."""
        if text.strip().lower() == "off":
            return cls(name, 0, 1)
        count, _, seconds = text.partition("/")
        return cls(name, int(count), int(seconds))


class RateLimited(Exception):
    """Over a limit; try again after ``retry_after`` seconds."""

    def __init__(self, rule: Rule, retry_after: int) -> None:
        super().__init__(rule.name)
        self.rule, self.retry_after = rule, max(1, retry_after)

    @property
    def message(self) -> str:
        minutes = math.ceil(self.retry_after / 60)
        wait = f"{minutes} minutes" if minutes > 1 else "a minute"
        return f"Too many attempts; try again in {wait}."

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Counter(Protocol):
    """A store of windows: (hits, seconds left) by key."""

    async def hit(self, key: str, seconds: int) -> tuple[int, int]: ...
    async def peek(self, key: str) -> tuple[int, int]: ...
    async def hold(self, key: str, seconds: int) -> None: ...  # one hit, for exactly seconds
    async def forget(self, key: str) -> None: ...
    async def close(self) -> None: ...


class MemoryCounter:
    """Fixed windows in this process: (window end, hits) by key."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}

    async def hit(self, key: str, seconds: int) -> tuple[int, int]:
        now = time.monotonic()
        ends, hits = self._windows.get(key, (0.0, 0))
        if ends <= now:
            ends, hits = now + seconds, 0
            if len(self._windows) > 100_000:  # forget finished windows now and then
                self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
        self._windows[key] = (ends, hits + 1)
        return hits + 1, math.ceil(ends - now)

    async def peek(self, key: str) -> tuple[int, int]:
        now = time.monotonic()
        ends, hits = self._windows.get(key, (0.0, 0))
        return (hits, math.ceil(ends - now)) if ends > now else (0, 0)

    async def hold(self, key: str, seconds: int) -> None:
        self._windows[key] = (time.monotonic() + seconds, 1)

    async def forget(self, key: str) -> None:
        self._windows.pop(key, None)

    async def close(self) -> None:
        self._windows.clear()


class RedisCounter:
    """Fixed windows in Redis: INCR, and the key expires with its window."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.prefix, self._redis = prefix, redis

    async def hit(self, key: str, seconds: int) -> tuple[int, int]:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(self.prefix + key)
            pipe.expire(self.prefix + key, seconds, nx=True)
            pipe.ttl(self.prefix + key)
            hits, _, ttl = await pipe.execute()
        return int(hits), max(int(ttl), 1)

    async def peek(self, key: str) -> tuple[int, int]:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self.prefix + key)
            pipe.ttl(self.prefix + key)
            hits, ttl = await pipe.execute()
        return int(hits or 0), max(int(ttl), 0)

    async def hold(self, key: str, seconds: int) -> None:
        await self._redis.set(self.prefix + key, 1, ex=seconds)

    async def forget(self, key: str) -> None:
        await self._redis.delete(self.prefix + key)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


class RateLimiter:
    """The Flask extension: one counter store per app, made on the serving loop."""

    def init_app(self, app: AsyncFlask, settings: Settings) -> None:
        state = app.extensions["rate_limits"] = _State(settings)
        app.before_serving(state.open)
        app.after_serving(state.close)

    async def hit(self, rule: Rule, key: str) -> None:
        """Count one hit, and show the client where it stands; ``RateLimited`` if this one is
        over the limit."""
        if rule.count:
            result = await _state().call("hit", f"{rule.name}:{key}", rule.seconds)
            if result is not None:
                hits, reset = result
                _show_standing(rule, remaining=max(rule.count - hits, 0), reset=reset)
                if hits > rule.count:
                    raise RateLimited(rule, reset)

    async def count(self, key: str, seconds: int) -> int:
        """Count one hit in a window of ``seconds``; the hits so far (0 if the store failed)."""
        result = await _state().call("hit", key, seconds)
        return result[0] if result is not None else 0

    async def seconds_left(self, key: str) -> int:
        """How long ``key``'s window (or hold) lasts yet; 0 when there is none."""
        result = await _state().call("peek", key)
        return result[1] if result is not None and result[0] else 0

    async def hold(self, key: str, seconds: int) -> None:
        """Make ``key`` last exactly ``seconds`` from now."""
        await _state().call("hold", key, seconds)

    async def forget(self, key: str) -> None:
        await _state().call("forget", key)

    def failing(self) -> str | None:
        """Why the limits are off right now (their store failed), or None while they hold."""
        return _state().failing


class _State:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.counter: Counter = MemoryCounter()
        self.failing: str | None = None
        self._failure_said = Occasionally(60)

    async def open(self) -> None:
        url = self.settings.redis_url
        if not url:
            return
        redis = redis_client(
            url, tls_verify=self.settings.redis_tls_verify, ca_file=self.settings.redis_tls_ca_file
        )
        self.counter = counter = RedisCounter(redis, self.settings.rate_limit_prefix)
        try:
            await counter.ping()
        except Exception as exc:  # the worker still starts: limits fail open, loudly
            self.failing = explain_redis_failure(exc)
            self._failure_said()  # this line stands for the first minute's warnings
            log.error(
                "RATE LIMITS ARE OFF: Redis at %s failed at startup: %s",
                redis_address(url),
                self.failing,
            )

    async def close(self) -> None:
        await self.counter.close()

    async def call(self, method: str, *args: Any) -> tuple[int, int] | None:
        try:
            with tracing.span(f"rate limit {method}", store=type(self.counter).__name__):
                result: tuple[int, int] | None = await getattr(self.counter, method)(*args)
        except Exception as exc:  # Redis down or slow: fail open, and say so
            self.failing = explain_redis_failure(exc)
            if self._failure_said():
                log.warning("rate limits are off, their store failed: %s", self.failing)
            return None
        self.failing = None
        return result


def _show_standing(rule: Rule, *, remaining: int, reset: int) -> None:
    """Put this rule's ``RateLimit-Policy`` and ``RateLimit`` items on the response, whatever
    it turns out to be (the 429 included)."""
    standings = g.get("rate_limit_standings")
    if standings is None:
        standings = g.rate_limit_standings = []
        after_this_request(_standing_headers)
    standings.append((rule, remaining, reset))


def _standing_headers(response: Response) -> Response:
    standings = g.rate_limit_standings
    response.headers.add(
        "RateLimit-Policy",
        ", ".join(f'"{rule.name}";q={rule.count};w={rule.seconds}' for rule, _, _ in standings),
    )
    response.headers.add(
        "RateLimit",
        ", ".join(f'"{rule.name}";r={remaining};t={reset}' for rule, remaining, reset in standings),
    )
    return response


def _state() -> _State:
    return current_app.extensions["rate_limits"]  # type: ignore[no-any-return]


def client_address() -> str:
    """The address the request came from (as the trusted proxies report it)."""
    return request.remote_addr or "unknown"


def rules() -> dict[str, Rule]:
    return current_app.config["RATE_LIMIT_RULES"]  # type: ignore[no-any-return]


rate_limiter = RateLimiter()


AsyncView = Callable[..., Coroutine[Any, Any, Any]]


def limited_by_address(*rule_names: str) -> Callable[[AsyncView], AsyncView]:
    """Count every request to the view against these rules, per client address."""

    def decorate(view: AsyncView) -> AsyncView:
        @functools.wraps(view)
        async def counted(*args: Any, **kwargs: Any) -> Any:
            if request.method != "GET":  # showing the form is free; sending it counts
                for name in rule_names:
                    await rate_limiter.hit(rules()[name], client_address())
            return await view(*args, **kwargs)

        counted.rate_limits = rule_names  # type: ignore[attr-defined]
        return counted

    return decorate


def limited_by_token(*rule_names: str) -> Callable[[AsyncView], AsyncView]:
    """Count every request to the view against these rules, per bearer token (by digest:
    counted before the token is checked, so a write over its limit costs no database turn)."""

    def decorate(view: AsyncView) -> AsyncView:
        @functools.wraps(view)
        async def counted(*args: Any, **kwargs: Any) -> Any:
            key = _token_key(kwargs.get("bearer"))
            if key is not None:
                for name in rule_names:
                    await rate_limiter.hit(rules()[name], key)
            return await view(*args, **kwargs)

        counted.rate_limits = rule_names  # type: ignore[attr-defined]
        return counted

    return decorate


def _token_key(bearer: Any) -> str | None:
    """The key a request's token is counted under. An API operation hands its view the token
    as ``bearer``, whose digest it computes once a request; other views parse the header."""
    if bearer is not None:
        return bearer.digest[:32]  # type: ignore[no-any-return]
    credentials = request.authorization
    if credentials is None or not credentials.token:
        return None
    return hashlib.sha256(credentials.token.encode()).hexdigest()[:32]


def not_rate_limited(reason: str) -> Callable[[Any], Any]:
    """Say why a state-changing route needs no rate limit; the policy test reads it."""

    def mark(view: Any) -> Any:
        view.rate_limit_exempt = reason
        return view

    return mark


def rate_limit_rules(settings: Any) -> dict[str, Rule]:
    """The rules, from settings such as ``RATE_LIMIT_SIGN_IN_ACCOUNT=10/900``."""
    return {
        name: Rule.parse(name, getattr(settings, f"rate_limit_{name.replace('-', '_')}"))
        for name in (
            "sign-in-pair",
            "sign-in-account",
            "sign-in-address",
            "register-address",
            "api-write",
        )
    }
