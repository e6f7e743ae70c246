"""Traces: one server span a request, joined to the router's traceparent, with a child span for
each SQL statement, Redis call and password hash (the SDK's in-memory exporter)."""

import secrets

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from support.accounts import register_api_user
from support.databases import make_settings, reset_schema

from app import create_asgi_app
from app.observability.tracing import tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
ROUTER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{ROUTER_SPAN}-01"


@pytest.fixture
async def traced(database_url):
    exporter = InMemorySpanExporter()
    settings = make_settings(
        database_url,
        redis_url="redis://127.0.0.1:6379/0",
        rate_limit_prefix=f"microblog-test:{secrets.token_hex(6)}:",  # counts of its own
    )
    asgi_app = create_asgi_app(settings)
    tracing.init_app(settings, exporter=exporter)
    await asgi_app.flask_app.startup()
    await reset_schema(asgi_app.flask_app)
    transport = httpx.ASGITransport(app=asgi_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client, exporter
    await asgi_app.flask_app.shutdown()
    tracing.shutdown()


def server_span(exporter, trace_id):
    [span] = [
        s
        for s in exporter.get_finished_spans()
        if s.kind == SpanKind.SERVER and f"{s.context.trace_id:032x}" == trace_id
    ]
    return span


def children_of(exporter, parent):
    return [s for s in exporter.get_finished_spans() if s.parent and s.parent.span_id == parent]


async def test_a_request_joins_the_routers_trace_with_its_sql_as_child_spans(traced):
    client, exporter = traced
    alice = await register_api_user(client, "alice")
    exporter.clear()
    written = await client.post(
        "/api/posts", json={"body": "traced"}, headers={**alice.auth, "traceparent": TRACEPARENT}
    )
    assert written.status_code == 201
    span = server_span(exporter, TRACE_ID)
    assert span.name == "POST /api/posts" and f"{span.parent.span_id:016x}" == ROUTER_SPAN
    assert span.attributes["http.response.status_code"] == 201
    assert span.attributes["http.route"] == "/api/posts"
    limit, *statements = children_of(exporter, span.context.span_id)
    assert limit.name == "rate limit hit"  # the per-token write limit, counted first
    assert [s.name for s in statements] == ["INSERT"]
    assert (
        "$1" in statements[0].attributes["db.query.text"]
        or "?" in (statements[0].attributes["db.query.text"])
    )
    assert "traced" not in statements[0].attributes["db.query.text"]  # never a value


async def test_a_sign_in_traces_its_redis_calls_and_its_password_hash(traced):
    client, exporter = traced
    await register_api_user(client, "bob")
    exporter.clear()
    signed_in = await client.post(
        "/api/tokens", auth=("bob", "wrong password"), headers={"traceparent": TRACEPARENT}
    )
    assert signed_in.status_code == 401
    span = server_span(exporter, TRACE_ID)
    names = {
        s.name for s in exporter.get_finished_spans() if s.context.trace_id == span.context.trace_id
    }
    assert "password verify" in names
    assert any(name.startswith("rate limit ") for name in names)
    assert {"SELECT"} & names or any(n.startswith(("WITH", "SELECT")) for n in names)


async def test_a_request_without_traceparent_starts_a_trace_of_its_own(traced):
    client, exporter = traced
    await client.get("/api/posts")
    [span] = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert span.parent is None and span.name == "GET /api/posts"


async def test_a_shed_request_has_a_span_too(traced):
    client, exporter = traced
    shedding = client._transport.app.shedding
    await shedding.lag.stop()
    shedding.lag.seconds = 5.0
    shedding.max_lag = 0.1
    refused = await client.get("/api/posts", headers={"traceparent": TRACEPARENT})
    assert refused.status_code == 503
    span = server_span(exporter, TRACE_ID)
    assert span.attributes["http.response.status_code"] == 503 and span.name == "GET"
