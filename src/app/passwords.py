"""Password hashing with Argon2id on a small, bounded pool of threads: the password budget.

Argon2id is meant to be expensive, so an unbounded number of hashes at once would eat the
worker's CPU and memory and stall every other request. The budget admits a fixed number of
hashes at a time (one thread each); a request that cannot get a slot within
``PASSWORD_QUEUE_TIMEOUT`` seconds is turned away with a 503 instead of queueing without end.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import resources
from typing import NamedTuple, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_greenlet import AsyncFlask

from .observability.metrics import metrics
from .observability.tracing import tracing

log = logging.getLogger(__name__)
T = TypeVar("T")

PASSWORD_MIN, PASSWORD_MAX = 8, 128
LOWEST_PRIORITY = 19  # the nice value of the hashing threads

# OWASP's minimum for Argon2id (m=19 MiB, t=2, p=1): about 18 ms a hash on our CI machines,
# and 19 MiB a thread, so the default budget of two threads fits a 512 MB dyno easily.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


class PasswordBudgetExhausted(Exception):
    """Every hashing slot stayed busy for the whole queue timeout."""


class Verdict(NamedTuple):
    matches: bool
    new_hash: str | None  # set when the stored hash used older parameters and was redone


class PasswordBudget:
    """The Flask extension that owns the hashing threads; wired with ``init_app``."""

    def init_app(self, app: AsyncFlask, *, threads: int, queue_timeout: float) -> None:
        slots = app.extensions["passwords"] = _HashingSlots(threads, queue_timeout)
        app.after_serving(slots.close)

    @staticmethod
    def slots() -> _HashingSlots:
        return current_app.extensions["passwords"]  # type: ignore[no-any-return]


class _HashingSlots:
    def __init__(self, threads: int, queue_timeout: float) -> None:
        self.threads, self.queue_timeout = threads, queue_timeout
        self._executor: ThreadPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        slots = self._semaphore()
        loop = asyncio.get_running_loop()
        asked = loop.time()
        try:
            async with asyncio.timeout(self.queue_timeout):
                await slots.acquire()
        except TimeoutError:
            log.warning("no password hashing slot came free in %ss", self.queue_timeout)
            raise PasswordBudgetExhausted(self.queue_timeout) from None
        metrics.password_waited(loop.time() - asked)
        try:
            # In a copy of the request's context, so the thread's log lines name the request.
            with tracing.span(f"password {fn.__name__.lstrip('_')}"):
                context = contextvars.copy_context()
                return await loop.run_in_executor(self._threads(), context.run, fn, *args)
        finally:
            slots.release()

    async def close(self) -> None:
        executor, self._executor, self._slots = self._executor, None, None
        if executor is not None:
            executor.shutdown(wait=False)

    def _semaphore(self) -> asyncio.Semaphore:
        # Made on first use, on the loop that serves requests.
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.threads)
        return self._slots

    def _threads(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self.threads, thread_name_prefix="argon2", initializer=_lowest_cpu_priority
            )
        return self._executor


def _lowest_cpu_priority() -> None:
    """Hashing takes only the CPU that requests leave: a storm of sign-ins slows sign-ins
    (and sheds them with 503s), never the reads and writes that share the worker's core."""
    if sys.platform == "linux":  # there, a thread id names just this thread
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_PRIORITY)


password_budget = PasswordBudget()


async def hash_password(password: str) -> str:
    return await password_budget.slots().run(_hash, password)


async def verify_password(password_hash: str | None, password: str) -> Verdict:
    """Whether ``password`` matches; an unknown user (``None``) costs the same time as a miss."""
    return await password_budget.slots().run(
        _verify, password_hash or _dummy_hash(), password, password_hash is not None
    )


def _hash(password: str) -> str:
    return HASHER.hash(password)


def _verify(password_hash: str, password: str, is_real: bool) -> Verdict:
    try:
        matches = HASHER.verify(password_hash, password) and is_real
    except (VerificationError, InvalidHashError):
        return Verdict(False, None)
    if matches and HASHER.check_needs_rehash(password_hash):
        return Verdict(True, HASHER.hash(password))
    return Verdict(matches, None)


@cache
def _dummy_hash() -> str:
    return HASHER.hash("not a password anyone has")


def password_problem(password: str) -> str | None:
    """Why ``password`` cannot be chosen, or None: the one rule for the API and the forms.

    Any Unicode is fine and is kept exactly as typed; the length counts characters.
    """
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return f"Use {PASSWORD_MIN} to {PASSWORD_MAX} characters."
    if not password.strip():
        return "A password needs more than spaces."
    if password.lower() in common_passwords():
        return "That password is one of the most common ones; choose another."
    return None


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of the 10,000 most common passwords, read once."""
    text = resources.files("app").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))
