"""/metrics: Prometheus text of what the worker counted, behind a bearer token, never shed."""

import os
import subprocess
import sys
import tempfile

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.accounts import register_api_user
from support.databases import make_settings, reset_schema

from app import create_asgi_app
from app.observability.metrics import _shared_directory

TOKEN = "metrics-token-" + "k7Qx2vLp9RtZ4wYb8NcD3fGh"


def samples(text):
    """{(name, frozenset(labels)): value} of a scrape."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped, name, **labels):
    return scraped.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def served(database_url):
    served = []

    async def serve(**overrides):
        asgi_app = create_asgi_app(make_settings(database_url, **overrides))
        await asgi_app.flask_app.startup()
        await reset_schema(asgi_app.flask_app)
        served.append(asgi_app)
        transport = httpx.ASGITransport(app=asgi_app)
        return asgi_app, httpx.AsyncClient(transport=transport, base_url="http://t")

    yield serve
    for asgi_app in served:
        await asgi_app.flask_app.shutdown()


async def scrape(client, token=TOKEN):
    answer = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(answer.text)


async def test_requests_are_counted_by_route_template_method_and_status(served):
    _, client = await served(metrics_token=TOKEN)
    for post_id in (1, 2, 3):
        await client.get(f"/api/posts/{post_id}")
    await client.get("/api/posts")
    await client.get("/no/such/path")
    scraped = await scrape(client)
    by_id = {"route": "/api/posts/<int:post_id>", "method": "GET", "status": "404"}
    assert value(scraped, "microblog_http_requests_total", **by_id) == 3
    listed = {"route": "/api/posts", "method": "GET", "status": "200"}
    assert value(scraped, "microblog_http_requests_total", **listed) == 1
    unrouted = {"route": "<not routed>", "method": "GET", "status": "404"}
    assert value(scraped, "microblog_http_requests_total", **unrouted) == 1
    timed = value(
        scraped, "microblog_http_request_duration_seconds_count", route="/api/posts/<int:post_id>"
    )
    assert timed == 3
    assert value(scraped, "microblog_db_pool_wait_seconds_count") >= 4


async def test_a_rate_limited_request_is_counted_by_its_rule(served):
    _, client = await served(metrics_token=TOKEN, rate_limit_sign_in_address="1/60")
    for _ in range(3):
        await client.post("/api/tokens", auth=("nobody", "wrong"))
    scraped = await scrape(client)
    assert value(scraped, "microblog_rate_limited_total", rule="sign-in-address") == 2


async def test_the_pool_and_password_waits_are_measured(served):
    asgi_app, client = await served(metrics_token=TOKEN)
    await register_api_user(client, "alice")
    scraped = await scrape(client)
    assert value(scraped, "microblog_password_queue_wait_seconds_count") == 2  # hash, verify
    capacity = value(scraped, "microblog_db_pool_connections", state="capacity")
    assert capacity == sum(asgi_app.flask_app.config["SETTINGS"].connection_budget)


async def test_without_the_token_a_scrape_is_refused(served):
    _, client = await served(metrics_token=TOKEN)
    assert (await client.get("/metrics")).status_code == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")


async def test_production_without_a_token_serves_no_metrics(served):
    production = {"app_env": "production", "allowed_hosts": "t"}
    _, client = await served(**production)
    assert (await client.get("/metrics")).status_code == 404


async def test_a_scrape_is_answered_while_the_worker_sheds_load(served):
    asgi_app, client = await served(metrics_token=TOKEN, overload_max_lag_ms=100)
    await asgi_app.shedding.lag.stop()
    asgi_app.shedding.lag.seconds = 5.0  # what the probe finds when the loop is far behind
    assert (await client.get("/api/posts")).status_code == 503
    scraped = await scrape(client)
    assert value(scraped, "microblog_requests_shed_total", reason="overload") == 1
    shed = {"route": "<not routed>", "method": "GET", "status": "503"}
    assert value(scraped, "microblog_http_requests_total", **shed) == 1


async def test_scrapes_are_not_counted_as_requests(served):
    _, client = await served(metrics_token=TOKEN)
    for _ in range(3):
        await scrape(client)
    scraped = await scrape(client)
    assert not [key for key in scraped if key[0] == "microblog_http_requests_total"]


def test_a_servers_workers_share_a_directory_and_stale_ones_are_removed(monkeypatch, tmp_path):
    # Set, then removed: monkeypatch then restores it (unset) after the test, though
    # _shared_directory sets it; left set, every server started later would share one folder.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    parent = tmp_path / "microblog-metrics"
    gone = parent / str(dead_pid())
    gone.mkdir(parents=True)
    (gone / "counter_123.db").write_bytes(b"old figures")
    running = parent / str(os.getpid())  # a server still running keeps its figures
    running.mkdir()

    shared = _shared_directory()

    assert shared == parent / str(os.getppid())
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(shared)
    assert not gone.exists() and running.exists() and shared.is_dir()


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid
