"""Hooks for the schemathesis run (SCHEMATHESIS_HOOKS=schemathesis_hooks).

The fuzzer draws the same few small values again and again, so it would send one
Idempotency-Key with many bodies and get the 422 that reuse deserves, or replay a post it has
deleted since. Each key it draws is made unique: every keyed write is then a first write, as
a client's would be; tests/api/test_idempotency.py covers repeats."""

import uuid

import schemathesis


@schemathesis.hook
def map_headers(context, headers):
    if headers and "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = f"{uuid.uuid4().hex}-{headers['Idempotency-Key']}"[:255]
    return headers
