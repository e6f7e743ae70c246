"""A rolling deploy behind a real load balancer drops nothing: HAProxy (deploy/haproxy.cfg, as a
user copies it) in front of three instances of two workers each, on one PostgreSQL and one
Redis, while the locust kit runs and live subscribers follow the timeline. Each instance in
turn gets SIGTERM, drains, and is replaced by a new process on its port, as a PaaS does."""

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import asyncpg
import httpx
import pytest
from support.databases import TEST_SECRET, fresh_database, make_settings, reset_schema
from support.kit import run_kit
from support.processes import ROOT, end_process_group, free_port, wait_for_port

from app import create_app

pytestmark = pytest.mark.processes

INSTANCES = 3
DRAIN_GRACE_S = 3  # deploy/haproxy.cfg: out after 2 checks 0.5 s apart, so 3 s is plenty
BACK_IN_ROTATION_S = 2.5  # rise 2 x inter 0.5 s, and a check's own time
KIT_SECONDS = 45
FIRST_RESTART_AFTER_S = 8
SUBSCRIBERS = 3


def instance_env(database_url, redis_prefix):
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET,
        "APP_ENV": "production",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "WEB_CONCURRENCY": "2",
        "DRAIN_GRACE_S": str(DRAIN_GRACE_S),
        "TRUSTED_PROXY_HOPS": "1",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "RATE_LIMIT_PREFIX": redis_prefix,
        # The kit's users all come through one address (the balancer's, then its header).
        "RATE_LIMIT_SIGN_IN_ADDRESS": "off",
        "RATE_LIMIT_REGISTER_ADDRESS": "off",
        "DB_POOL_SIZE": "3",
        "DB_MAX_OVERFLOW": "0",
    }


class Instance:
    """One instance of the app on a fixed port: started, stopped and started again there."""

    def __init__(self, port, env):
        self.port, self.env = port, env
        self.process = None

    async def start(self):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "asgi:app", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", "--no-proxy-headers",
             "--timeout-keep-alive", "95", "--timeout-graceful-shutdown", "20"],
            cwd=ROOT, env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        await self.wait_ready()

    async def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, "the instance exited at startup"
                try:
                    if (await client.get(f"http://127.0.0.1:{self.port}/readyz")).is_success:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        pytest.fail(f"the instance on {self.port} did not become ready")

    async def stop(self):
        """SIGTERM to the server, as the platform sends it; then wait for it to exit."""
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.process.wait, 40)
        assert code in (0, -signal.SIGTERM), f"the instance exited with {code}"

    def end(self):
        if self.process is not None and self.process.poll() is None:
            end_process_group(self.process)


def balancer_config(path, listen_port, instance_ports):
    """deploy/haproxy.cfg, with its bind and server lines pointed at loopback."""
    text = (ROOT / "deploy" / "haproxy.cfg").read_text()
    text = text.replace("bind 127.0.0.1:8080", f"bind 127.0.0.1:{listen_port}")
    servers = [line for line in text.splitlines() if line.strip().startswith("server ")]
    assert len(servers) == INSTANCES, "the example lists one server line an instance"
    for line, port in zip(servers, instance_ports, strict=True):
        name = line.split()[1]
        text = text.replace(line, f"    server {name} 127.0.0.1:{port}")
    path.write_text(text)
    return path


async def follow_timeline(base_url, after_id, stop, received, answers):
    """A subscriber as a browser's EventSource is one: on every end of the stream it
    reconnects with Last-Event-ID; records every post it is sent, and each answer's status."""
    last_id = after_id
    async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(10, read=30)) as client:
        while not stop.is_set():
            headers = {"Last-Event-ID": str(last_id), "Accept": "text/event-stream"}
            try:
                async with client.stream("GET", "/api/posts/stream", headers=headers) as stream:
                    answers.append(stream.status_code)
                    if stream.status_code != 200:
                        await asyncio.sleep(float(stream.headers.get("Retry-After", "1")))
                        continue
                    event_id = None
                    async for line in stream.aiter_lines():
                        if line.startswith("id: "):
                            event_id = int(line[4:])
                        elif line.startswith("event: ") and line != "event: post":
                            event_id = None
                        elif line.startswith("data: ") and event_id is not None:
                            received.append(event_id)
                            last_id = event_id
                            event_id = None
                        if stop.is_set():
                            break
            except httpx.TransportError as error:
                answers.append(repr(error))
                await asyncio.sleep(0.5)


@pytest.fixture
async def rolling_database(postgres_available):
    url = await fresh_database(postgres_available, "rolling")
    app = create_app(make_settings(url))
    await app.startup()
    await reset_schema(app)
    await app.shutdown()
    return url


async def test_a_rolling_deploy_behind_haproxy_loses_no_request_write_or_live_post(
    rolling_database, tmp_path
):
    haproxy = shutil.which("haproxy", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if haproxy is None:
        pytest.fail("haproxy is not installed (apt-get install haproxy)")
    env = instance_env(rolling_database, f"rolling-{time.monotonic_ns()}:")
    instances = [Instance(free_port(), env) for _ in range(INSTANCES)]
    listen_port = free_port()
    config = balancer_config(tmp_path / "haproxy.cfg", listen_port, [i.port for i in instances])
    balancer = None
    conn = await asyncpg.connect(rolling_database.replace("+asyncpg", ""))
    try:
        await asyncio.gather(*(instance.start() for instance in instances))
        balancer = subprocess.Popen(
            [haproxy, "-f", str(config), "-db"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        await asyncio.to_thread(wait_for_port, listen_port, balancer)
        host = f"http://127.0.0.1:{listen_port}"
        await asyncio.sleep(BACK_IN_ROTATION_S)  # every server seen up

        start_id = await conn.fetchval("SELECT coalesce(max(id), 0) FROM posts")
        stop = asyncio.Event()
        subscribers = [([], []) for _ in range(SUBSCRIBERS)]
        following = [
            asyncio.ensure_future(follow_timeline(host, start_id, stop, got, said))
            for got, said in subscribers
        ]
        kit_env = {
            "HOST": host,
            "CREDENTIALS": str(tmp_path / "credentials.csv"),
            "SEED_USERS": "20",
            "PROFILE": "steady",
            "USERS": "30",
            "SPAWN_RATE": "15",
            "RUN_TIME": f"{KIT_SECONDS}s",
            # One instance's /metrics is a third of the traffic: no comparison behind a balancer.
            "LOADTEST_ARGS": "--thresholds 'fail_ratio <= 0; transport_errors <= 0' "
            "--server-metrics false",
        }
        kit = asyncio.ensure_future(asyncio.to_thread(run_kit, kit_env))
        await asyncio.sleep(FIRST_RESTART_AFTER_S)
        for instance in instances:  # one at a time, as a PaaS rolls a release
            await instance.stop()
            await instance.start()
            await asyncio.sleep(BACK_IN_ROTATION_S)
        done = await kit
        await asyncio.sleep(2)  # the last posts reach every subscriber
        stop.set()
        for task in following:
            task.cancel()
        await asyncio.gather(*following, return_exceptions=True)
        existing = {
            row["id"] for row in await conn.fetch("SELECT id FROM posts WHERE id > $1", start_id)
        }
    finally:
        await conn.close()
        if balancer is not None:
            end_process_group(balancer)
        for instance in instances:
            instance.end()

    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert "PASS  fail_ratio <= 0" in done.stdout and "PASS  transport_errors <= 0" in done.stdout
    assert "PASS  integrity through the API" in done.stdout, output[-5000:]
    written = re.search(r"(\d+) of \1 acknowledged posts present exactly once", done.stdout)
    assert written and int(written[1]) > 50, "too few writes to prove anything"
    assert existing
    for got, said in subscribers:
        assert all(answer == 200 for answer in said), said
        assert len(said) >= 2, "a subscriber was never moved by the deploy"
        assert len(got) == len(set(got)), "a live post was delivered twice"
        missing = existing - set(got)
        assert not missing, f"{len(missing)} live posts never delivered: {sorted(missing)[:10]}"
    print(json.dumps({"posts": len(existing), "reconnects": [len(s) - 1 for _, s in subscribers]}))
