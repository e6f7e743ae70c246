"""Failed sign-ins slow the guesser, never lock the owner out.

A wrong password counts against the pair (account, client address). Past a few failures in a
window, that pair must wait before its next attempt, twice as long after each further failure.
Across all addresses, an account takes many more failures before it slows down, and then only
for addresses that have never signed in to it: the owner, from an address they signed in from
before, keeps working while someone elsewhere hammers the account. A success clears its pair.

Every path that checks a password (sign-in page, token, password changes) calls these three
functions, so the rules hold the same on each. The counters live where the rate limits do
(Redis when there is one), and fail open with them.
"""

from __future__ import annotations

from .ratelimit import RateLimited, client_address, rate_limiter, rules

ACCOUNT_WAIT_CAP_S = 60  # an account under attack slows strangers to one attempt a minute
KNOWN_ADDRESS_DAYS = 30


def _keys(username: str) -> tuple[str, str]:
    account = username.lower()
    return account, f"{account}|{client_address()}"


async def refuse_if_throttled(username: str) -> None:
    """``RateLimited`` if this attempt on ``username`` must wait, from where it comes."""
    account, pair = _keys(username)
    if wait := await rate_limiter.seconds_left(f"sign-in-pair-wait:{pair}"):
        raise RateLimited(rules()["sign-in-pair"], wait)
    if await rate_limiter.seconds_left(f"sign-in-known:{pair}"):
        return  # the owner's own address: an attack from elsewhere does not slow it
    if wait := await rate_limiter.seconds_left(f"sign-in-account-wait:{account}"):
        raise RateLimited(rules()["sign-in-account"], wait)


async def record_failed_sign_in(username: str) -> None:
    """Count a wrong password for ``username`` from here, and set the waits it earns."""
    account, pair = _keys(username)
    pair_rule, account_rule = rules()["sign-in-pair"], rules()["sign-in-account"]
    if pair_rule.count:
        failures = await rate_limiter.count(f"sign-in-pair:{pair}", pair_rule.seconds)
        if failures >= pair_rule.count:
            wait = _doubling(failures - pair_rule.count, cap=pair_rule.seconds)
            await rate_limiter.hold(f"sign-in-pair-wait:{pair}", wait)
    if account_rule.count:
        failures = await rate_limiter.count(f"sign-in-account:{account}", account_rule.seconds)
        if failures >= account_rule.count:
            wait = _doubling(failures - account_rule.count, cap=ACCOUNT_WAIT_CAP_S)
            await rate_limiter.hold(f"sign-in-account-wait:{account}", wait)


async def record_sign_in(username: str) -> None:
    """A right password: this address is now the owner's, and its pair starts afresh."""
    _, pair = _keys(username)
    await rate_limiter.hold(f"sign-in-known:{pair}", KNOWN_ADDRESS_DAYS * 86_400)
    await rate_limiter.forget(f"sign-in-pair:{pair}")


def _doubling(past_threshold: int, *, cap: int) -> int:
    """2 s at the threshold, doubling with each failure past it, at most ``cap``."""
    return int(min(cap, 2 ** min(past_threshold + 1, 20)))
