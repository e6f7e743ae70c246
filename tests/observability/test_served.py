"""Read back from real uvicorn processes: production logs are one JSON object a line with one
access line a request and no secret in any of them; a two-worker server's /metrics sums both
workers."""

import asyncio
import base64
import contextlib
import gzip
import http.server
import json
import os
import secrets
import tempfile
import threading
from typing import ClassVar

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families
from support.accounts import PASSWORD, login, register, register_api_user
from support.processes import uvicorn_serving

pytestmark = pytest.mark.processes

METRICS_TOKEN = "metrics-token-" + "Zr8Wq3Lm6Kx1Vb9Tn4Hs7Jd2"
ROUTER_ID = "heroku-router-id-42-abcdef"
QUERY_SECRET = "query-secret-9f8e7d6c5b4a"
COOKIE_SECRET = "cookie-secret-1a2b3c4d5e6f"


def log_lines(process):
    output = process.stdout.read().decode()
    return [json.loads(line) for line in output.splitlines() if line.strip()], output


async def test_production_logs_are_json_with_one_access_line_a_request_and_no_secrets(
    database_url,
):
    sent = 0

    async def count(_response):
        nonlocal sent
        sent += 1

    env = {"RATE_LIMIT_REGISTER_ADDRESS": "off", "METRICS_TOKEN": METRICS_TOKEN}
    async with uvicorn_serving(database_url, env=env) as (base_url, process):
        async with httpx.AsyncClient(
            base_url=base_url, event_hooks={"response": [count]}
        ) as client:
            await register(client, "erin")
            await login(client, "erin")
            session_cookies = [cookie.value for cookie in client.cookies.jar]
            alice = await register_api_user(client, "alice")
            await client.get(
                f"/api/posts?access_token={QUERY_SECRET}",
                headers={**alice.auth, "X-Request-ID": ROUTER_ID},
            )
            await client.post("/api/posts", json={"body": "hello"}, headers=alice.auth)
            await client.get("/", headers={"Cookie": f"session={COOKIE_SECRET}"})
            await client.get("/api/posts/999999")
        await asyncio.sleep(0.5)  # the writing thread's last lines
    lines, output = log_lines(process)

    assert lines, "the server wrote no log line"
    assert all({"timestamp", "level", "logger", "message"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "app.access"]
    health_checks = [line for line in access if line["route"] == "/healthz"]  # its start-up
    assert len(access) - len(health_checks) == sent
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]
    [listed] = [line for line in access if line["request_id"] == ROUTER_ID]
    assert (listed["method"], listed["route"], listed["status"]) == ("GET", "/api/posts", 200)
    assert listed["user_id"] is None and listed["duration_ms"] >= listed["db_ms"] >= 0
    [written] = [
        line
        for line in access
        if line["method"] == "POST" and line["status"] == 201 and line["route"] == "/api/posts"
    ]
    assert written["user_id"] is not None
    [missing] = [line for line in access if line["route"] == "/api/posts/<int:post_id>"]
    assert missing["status"] == 404

    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, alice.token, QUERY_SECRET, COOKIE_SECRET, basic, *session_cookies):
        assert secret not in output


async def test_two_workers_count_together_what_they_served(postgres_available):
    env = {
        "WEB_CONCURRENCY": "2",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    requests = 60
    async with uvicorn_serving(postgres_available, env=env, args=("--workers", "2")) as (
        base_url,
        process,
    ):
        # A connection each, closed after its request, so that both workers take some.
        for _ in range(requests):
            async with httpx.AsyncClient(base_url=base_url) as client:
                assert (await client.get("/api/posts")).status_code == 200
        async with httpx.AsyncClient(base_url=base_url) as client:
            auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
            scrapes = [(await client.get("/metrics", headers=auth)).text for _ in range(4)]
        shared = os.path.join(tempfile.gettempdir(), "microblog-metrics", str(process.pid))
        files = [name for name in os.listdir(shared) if name.startswith("counter_")]
        writers = {name.rsplit("_", 1)[-1] for name in files}

    assert len(writers) == 2, "both workers should have counted"
    for text in scrapes:  # whichever worker answered the scrape
        assert served_count(text, "/api/posts") == requests


async def test_two_workers_sum_their_waits_refusals_pools_and_streams(postgres_available):
    env = {
        "WEB_CONCURRENCY": "2",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "RATE_LIMIT_PREFIX": f"microblog-test:{secrets.token_hex(6)}:",  # this test's own
        "RATE_LIMIT_SIGN_IN_ADDRESS": "3/60",
        "RATE_LIMIT_REGISTER_ADDRESS": "off",
        "DB_MAX_CONNECTIONS": "12",  # 5 pooled connections a worker, and its listener
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    async with (
        uvicorn_serving(postgres_available, env=env, args=("--workers", "2")) as (base_url, _),
        contextlib.AsyncExitStack() as streams,
    ):
        await register_api_user_in(base_url, "carol")
        answers = []
        for _ in range(5):  # a connection each: the workers share them
            async with httpx.AsyncClient(base_url=base_url) as client:
                answered = await client.post("/api/tokens", auth=("carol", PASSWORD))
                answers.append(answered.status_code)
        for _ in range(2):
            client = await streams.enter_async_context(httpx.AsyncClient(base_url=base_url))
            stream = await streams.enter_async_context(client.stream("GET", "/api/posts/stream"))
            assert stream.status_code == 200
        await asyncio.sleep(1.5)  # each worker writes its gauges every second
        async with httpx.AsyncClient(base_url=base_url) as client:
            auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
            scraped = (await client.get("/metrics", headers=auth)).text

    assert answers == [201, 201, 201, 429, 429]  # the limit is shared through Redis
    figures = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
    }
    assert figures[("microblog_rate_limited_total", (("rule", "sign-in-address"),))] == 2
    assert figures[("microblog_password_queue_wait_seconds_count", ())] == 1 + 3  # hash, checks
    assert figures[("microblog_db_pool_connections", (("state", "capacity"),))] == 2 * 5
    assert figures[("microblog_live_subscribers", ())] == 2


async def register_api_user_in(base_url, username):
    async with httpx.AsyncClient(base_url=base_url) as client:
        body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
        assert (await client.post("/api/users", json=body)).status_code == 201


def served_count(text, route):
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "microblog_http_requests_total" and sample.labels["route"] == route
    )


class OtlpReceiver(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: decodes each export with the protocol's own messages."""

    spans: ClassVar[list] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append((self.path, service.get("service.name"), span))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args):
        pass


async def test_traces_reach_a_real_otlp_receiver(database_url):
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OtlpReceiver)
    OtlpReceiver.spans = []
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # milliseconds between exports
    }
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    try:
        async with uvicorn_serving(database_url, env=env) as (base_url, _process):
            async with httpx.AsyncClient(base_url=base_url) as client:
                traceparent = f"00-{trace_id}-b7ad6b7169203331-01"
                answered = await client.get("/api/posts", headers={"traceparent": traceparent})
                assert answered.status_code == 200
            for _ in range(50):
                if any(span.trace_id.hex() == trace_id for *_, span in OtlpReceiver.spans):
                    break
                await asyncio.sleep(0.1)
    finally:
        receiver.shutdown()
        receiver.server_close()
    ours = [
        (path, service, s)
        for path, service, s in OtlpReceiver.spans
        if s.trace_id.hex() == trace_id
    ]
    assert ours, "no span of the request reached the receiver"
    [(path, service, server)] = [item for item in ours if item[2].name == "GET /api/posts"]
    assert path == "/v1/traces" and service == "microblog"
    assert server.parent_span_id.hex() == "b7ad6b7169203331"
    assert any(s.parent_span_id == server.span_id for *_, s in ours)  # its statement
