"""The locust kit, run for real: distributed smoke on PostgreSQL, and runs that must fail."""

import asyncio
import csv
import json
import re

import asyncpg
import httpx
import pytest
from support.accounts import PASSWORD
from support.databases import fresh_database
from support.kit import results_folder, run_kit
from support.processes import uvicorn_serving

pytestmark = pytest.mark.processes

KIT_DATABASE = "kit"


@pytest.fixture
async def kit_database_url(postgres_available):
    """A database of its own, dropped first: the kit creates, migrates and seeds it itself."""
    return await fresh_database(postgres_available, KIT_DATABASE, create=False)


async def test_a_distributed_smoke_run_passes_and_a_lost_write_is_then_caught(
    kit_database_url, tmp_path
):
    env = {
        "PROFILE": "smoke",
        "RUN_TIME": "12s",
        "WORKERS": "2",
        "DATABASE_URL": kit_database_url,
        "CREDENTIALS": str(tmp_path / "credentials.csv"),
        "SEED_USERS": "30",
    }
    run = await asyncio.to_thread(run_kit, env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "VERDICT PASS" in run.stdout and "PASS  integrity in the database" in run.stdout
    assert "PASS  server and kit agree on the requests" in run.stdout
    journeys = ("POST / (post)", "POST /api/posts (write)", "POST /auth/register")
    for journey in (*journeys, "GET /api/posts/stream"):
        row = next(line for line in run.stdout.splitlines() if line.startswith(journey + " "))
        assert int(row.split()[-6]) > 0, f"{journey} never ran"
    results = results_folder(run.stdout)
    assert (results / "report.html").exists() and (results / "stats_stats.csv").exists()
    records = [json.loads(line) for line in (results / "ledger.jsonl").read_text().splitlines()]
    acknowledged = {r["id"] for r in records if r["kind"] == "post_acked"}
    deleted = {r["id"] for r in records if r["kind"] == "delete_sent"}
    assert acknowledged, "the smoke run wrote nothing"

    # Behind the kit's back, a post it was told exists goes away: the verifier must say so.
    lost = min(acknowledged - deleted)
    conn = await asyncpg.connect(kit_database_url.replace("+asyncpg", ""))
    await conn.execute("DELETE FROM posts WHERE id = $1", lost)
    await conn.close()
    verify = await asyncio.to_thread(
        run_kit,
        {},
        "--ledger",
        str(results / "ledger.jsonl"),
        "--database-url",
        kit_database_url,
        script="verify.py",
    )
    assert verify.returncode == 1
    assert f"post {lost}" in verify.stdout and "acknowledged but is missing" in verify.stdout


@pytest.fixture
async def served_app(postgres_available):
    """uvicorn on the PostgreSQL test database, production settings, three API users."""
    env = {"RATE_LIMIT_SIGN_IN_ADDRESS": "off", "RATE_LIMIT_REGISTER_ADDRESS": "off"}
    async with uvicorn_serving(postgres_available, env=env) as (base_url, _):
        async with httpx.AsyncClient(base_url=base_url) as client:
            for name in ("kit1", "kit2", "kit3"):
                body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
                assert (await client.post("/api/users", json=body)).status_code == 201
        yield base_url


def credentials_file(path, *accounts):
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["username", "password"])
        writer.writerows(accounts)
    return str(path)


def quick_run(host, credentials, thresholds):
    return {
        "HOST": host,
        "CREDENTIALS": credentials,
        "PROFILE": "smoke",
        "USERS": "10",
        "RUN_TIME": "6s",
        "LOADTEST_ARGS": f"--thresholds '{thresholds}'",
    }


async def test_a_threshold_that_cannot_be_met_fails_the_run(served_app, tmp_path):
    credentials = credentials_file(tmp_path / "c.csv", *[(f"kit{n}", PASSWORD) for n in (1, 2, 3)])
    run = await asyncio.to_thread(
        run_kit, quick_run(served_app, credentials, "p50 < 0.001; fail_ratio <= 0")
    )
    assert run.returncode != 0
    assert "FAIL  p50 < 0.001 ms" in run.stdout and "PASS  fail_ratio <= 0" in run.stdout
    assert "VERDICT FAIL" in run.stdout and "LOADTEST FAIL" in run.stdout


async def test_failures_within_the_tolerated_ratio_do_not_fail_the_run(served_app, tmp_path):
    # The kit's one account has a wrong password: every sign-in fails, and locust on its own
    # would exit 1 for a single failed request.
    credentials = credentials_file(tmp_path / "c.csv", ("kit1", "not the password"))
    run = await asyncio.to_thread(
        run_kit,
        quick_run(served_app, credentials, "Aggregated: fail_ratio <= 0.5; transport_errors <= 0"),
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    aggregated = next(line for line in run.stdout.splitlines() if line.startswith("Aggregated  "))
    assert int(aggregated.split()[2]) > 0, "no request failed: the test proves nothing"
    assert "VERDICT PASS" in run.stdout
    # Each kind of failure is listed with its problem title and the request ids to look up.
    report = run.stdout[run.stdout.index("failures by kind") :]
    kind = next(line for line in report.splitlines() if "POST /api/tokens" in line)
    assert "401 Unauthorized" in kind
    examples = re.findall(r"request id ([0-9a-f]{32}): Wrong username or password", report)
    assert 1 <= len(examples) <= 3 and len(set(examples)) == len(examples)


async def test_against_a_deployed_app_with_its_default_limits_fifty_users_pass(
    postgres_available, tmp_path
):
    """As from a laptop against a deployed app: production settings and the default rate
    limits (20 registrations an hour from one address), no accounts given, 50 users."""
    remote = await fresh_database(postgres_available, "remote")
    async with uvicorn_serving(remote) as (host, _):
        env = {
            "HOST": host,
            "CREDENTIALS": str(tmp_path / "credentials.csv"),
            "PROFILE": "smoke",
            "USERS": "50",
            "SPAWN_RATE": "25",
            "RUN_TIME": "15s",
        }
        run = await asyncio.to_thread(run_kit, env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "registered 20 of 50 accounts" in run.stdout
    assert "VERDICT PASS" in run.stdout and "PASS  integrity through the API" in run.stdout
    assert len((tmp_path / "credentials.csv").read_text().splitlines()) == 21


METRICS_TOKEN = "kit-metrics-token-" + "Hq7Lw2Xz9Vr4Tb6Nc1Md8Kp"


async def test_requests_the_kit_did_not_send_make_the_server_counts_disagree(
    postgres_available, tmp_path
):
    env = {"RATE_LIMIT_SIGN_IN_ADDRESS": "off", "METRICS_TOKEN": METRICS_TOKEN}
    async with (
        uvicorn_serving(postgres_available, env=env) as (host, _),
        httpx.AsyncClient(base_url=host) as client,
    ):
        body = {"username": "kit1", "email": "kit1@example.com", "password": PASSWORD}
        assert (await client.post("/api/users", json=body)).status_code == 201
        credentials = credentials_file(tmp_path / "c.csv", ("kit1", PASSWORD))
        run_env = {**quick_run(host, credentials, "fail_ratio <= 1"), "USERS": "4"}
        run_env["METRICS_TOKEN"] = METRICS_TOKEN
        agreeing = await asyncio.to_thread(run_kit, run_env)

        async def traffic_nobody_told_the_kit_about():
            await asyncio.sleep(2)
            for _ in range(300):
                await client.get("/healthz")

        extra = asyncio.create_task(traffic_nobody_told_the_kit_about())
        disagreeing = await asyncio.to_thread(run_kit, run_env)
        await extra
    assert "PASS  server and kit agree on the requests" in agreeing.stdout, agreeing.stdout[-3000:]
    assert "server  requests answered" in agreeing.stdout
    assert "FAIL  server and kit agree on the requests" in disagreeing.stdout
    assert disagreeing.returncode != 0
