"""Password hashing with Argon2id, run in worker threads so the event loop never waits on it."""

from __future__ import annotations

import asyncio
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; an unknown user (``None``) costs the same time as a miss."""
    return await asyncio.to_thread(
        _verify, password_hash or _dummy_hash(), password, password_hash is not None
    )


def _verify(password_hash: str, password: str, is_real: bool) -> bool:
    try:
        return _hasher.verify(password_hash, password) and is_real
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    return _hasher.hash("not a password anyone has")
