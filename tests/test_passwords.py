"""The password budget: bounded hashing, never while holding a connection, re-hash on change."""

import asyncio
import os
import sys
import threading
import time

import httpx
import pytest
from argon2 import PasswordHasher
from flask_greenlet import ASGIApp
from sqlalchemy import select
from support.accounts import PASSWORD, login, register
from support.databases import make_settings, reset_schema

from app import create_app, passwords
from app.database import db
from app.models import User


def slow_down_hashing(monkeypatch, seconds):
    """Every hash and verify takes ``seconds`` longer, on the hashing thread."""
    real_verify, real_hash = passwords._verify, passwords._hash

    def slow_verify(*args):
        time.sleep(seconds)
        return real_verify(*args)

    def slow_hash(password):
        time.sleep(seconds)
        return real_hash(password)

    monkeypatch.setattr(passwords, "_verify", slow_verify)
    monkeypatch.setattr(passwords, "_hash", slow_hash)


async def stored_hash(app, username):
    with app.app_context():
        async with db.connect() as conn:
            return await conn.scalar(select(User.password_hash).where(User.username == username))


async def test_hashes_use_argon2id_at_owasps_minimum_or_above(client, alice, app):
    params = (await stored_hash(app, "alice")).split("$")[3]
    memory, time_cost, lanes = (int(part.split("=")[1]) for part in params.split(","))
    assert memory >= 19 * 1024 and time_cost >= 2 and lanes >= 1


async def test_checking_a_password_holds_no_database_connection(database_url, monkeypatch):
    app = create_app(make_settings(database_url, db_pool_size=1, db_pool_timeout=5))
    await app.startup()
    await reset_schema(app)
    transport = httpx.ASGITransport(app=ASGIApp(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        registered = await client.post(
            "/api/users", json={"username": "alice", "email": "a@example.com", "password": PASSWORD}
        )
        assert registered.status_code == 201
        slow_down_hashing(monkeypatch, 2.0)
        token = asyncio.ensure_future(client.post("/api/tokens", auth=("alice", PASSWORD)))
        await asyncio.sleep(0.2)  # the token request is now hashing
        started = time.perf_counter()
        read = await client.get("/api/posts")
        # With the only pooled connection held by the hashing request, this read would wait
        # the rest of the 2 s hash.
        assert read.status_code == 200 and time.perf_counter() - started < 1.0
        assert (await token).status_code == 201
    await app.shutdown()


async def test_a_taken_username_is_refused_before_any_hashing(client, alice, monkeypatch):
    hashed = []
    real_hash = passwords._hash
    monkeypatch.setattr(passwords, "_hash", lambda p: hashed.append(p) or real_hash(p))
    response = await client.post(
        "/api/users", json={"username": "alice", "email": "new@example.com", "password": PASSWORD}
    )
    assert response.status_code == 409 and hashed == []
    page = await register(client, username="alice")
    assert "That username is taken." in page.text and hashed == []


async def test_when_every_hashing_slot_stays_busy_sign_in_answers_503(database_url, monkeypatch):
    settings = make_settings(database_url, password_hash_threads=1, password_queue_timeout=0.2)
    app = create_app(settings)
    await app.startup()
    await reset_schema(app)
    transport = httpx.ASGITransport(app=ASGIApp(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await register(client)
        slow_down_hashing(monkeypatch, 0.6)
        first = asyncio.ensure_future(client.post("/api/tokens", auth=("erin", PASSWORD)))
        await asyncio.sleep(0.05)
        shed = await client.post("/api/tokens", auth=("erin", PASSWORD))
        assert shed.status_code == 503 and shed.headers["Retry-After"] == "1"
        assert shed.headers["Content-Type"] == "application/problem+json"
        assert (await first).status_code == 201
        busy = asyncio.ensure_future(client.post("/api/tokens", auth=("erin", PASSWORD)))
        await asyncio.sleep(0.05)
        page = await login(client)
        assert page.status_code == 503 and "try again" in page.text
        assert (await busy).status_code == 201
    await app.shutdown()


async def test_a_hash_made_with_older_parameters_is_redone_at_sign_in(client, app):
    await register(client)
    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    with app.app_context():
        async with db.connect() as conn:
            await conn.execute(
                User.__table__.update().where(User.username == "erin").values(password_hash=old)
            )
    assert (await login(client)).status_code == 302
    renewed = await stored_hash(app, "erin")
    assert renewed != old and not passwords.HASHER.check_needs_rehash(renewed)
    assert (await client.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 201


@pytest.mark.parametrize("wrong", ["", "correct horse"])
async def test_a_wrong_password_never_renews_the_hash(client, app, wrong):
    await register(client)
    before = await stored_hash(app, "erin")
    assert (await client.post("/api/tokens", auth=("erin", wrong))).status_code == 401
    assert await stored_hash(app, "erin") == before


@pytest.mark.parametrize("password", ["password123", "12345678", "Qwertyuiop", "iloveyou1"])
async def test_common_passwords_are_refused_by_the_api_and_the_form(client, password):
    body = {"username": "carol", "email": "c@example.com", "password": password}
    response = await client.post("/api/users", json=body)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "password"
    page = await register(client, username="carol", password=password)
    assert page.status_code == 200 and "most common" in page.text


@pytest.mark.parametrize("password", [" " * 8, "\t" * 10, "short"])
async def test_blank_or_short_passwords_are_refused_alike(client, password):
    body = {"username": "carol", "email": "c@example.com", "password": password}
    assert (await client.post("/api/users", json=body)).status_code == 422
    page = await register(client, username="carol", password=password)
    assert page.status_code == 200 and "Welcome" not in page.text


@pytest.mark.parametrize("password", ["  ünïcødé pass  ", "密码是一个很长的句子", "x" * 128])
async def test_any_unicode_password_is_kept_exactly_as_typed(client, password):
    body = {"username": "carol", "email": "c@example.com", "password": password}
    assert (await client.post("/api/users", json=body)).status_code == 201
    assert (await client.post("/api/tokens", auth=("carol", password))).status_code == 201
    assert (await login(client, username="carol", password=password)).status_code == 302
    if password != password.strip():
        stripped = await client.post("/api/tokens", auth=("carol", password.strip()))
        assert stripped.status_code == 401


async def test_a_password_over_128_characters_is_refused(client):
    body = {"username": "carol", "email": "c@example.com", "password": "x" * 129}
    assert (await client.post("/api/users", json=body)).status_code == 422


def test_the_shipped_list_holds_at_least_ten_thousand_passwords():
    listed = passwords.common_passwords()
    assert len(listed) >= 10_000 and {"123456", "password", "qwerty"} <= listed


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread priorities are Linux's")
async def test_hashing_threads_run_at_the_lowest_cpu_priority(app):
    def own_priority():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    with app.app_context():
        slots = passwords.password_budget.slots()
        priorities = await asyncio.gather(*(slots.run(own_priority) for _ in range(4)))
    assert set(priorities) == {passwords.LOWEST_PRIORITY}
    assert own_priority() < passwords.LOWEST_PRIORITY  # the event loop's thread is untouched
