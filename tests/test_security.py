"""Security headers on every response, trusted hosts, and form posts judged by their Origin."""

import re

import httpx
import pytest
from flask_greenlet import ASGIApp
from support.accounts import PASSWORD, csrf_token, login, register
from support.databases import make_settings, reset_schema
from support.processes import ROOT

from app import create_app
from app.security import CONTENT_SECURITY_POLICY

TEMPLATES = ROOT / "src" / "app" / "templates"


@pytest.mark.parametrize(
    "path", ["/", "/auth/login", "/api/posts", "/api/nothing", "/nothing", "/static/style.css"]
)
async def test_every_response_carries_the_security_headers(client, path):
    response = await client.get(path)
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers  # not outside production


async def test_redirects_and_csrf_errors_carry_them_too(client):
    await register(client)
    signed_in = await login(client)
    refused = await client.post("/", data={"body": "no token"})
    for response in (signed_in, refused):
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_no_template_has_inline_script_style_or_event_handlers():
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template
        assert not re.search(r"\sstyle=|<style", text), template
        assert not re.search(r"\son[a-z]+=", text), template


@pytest.fixture
async def production_client(database_url):
    settings = make_settings(
        database_url, app_env="production", allowed_hosts="microblog.example,.example.org"
    )
    app = create_app(settings)
    await app.startup()
    await reset_schema(app)
    transport = httpx.ASGITransport(app=ASGIApp(app))
    async with httpx.AsyncClient(transport=transport, base_url="https://microblog.example") as c:
        yield c
    await app.shutdown()


async def test_production_adds_hsts(production_client):
    response = await production_client.get("/api/posts")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=63072000")


@pytest.mark.parametrize("host", ["evil.example", "microblog.example.evil.example", "example.org2"])
async def test_production_answers_400_to_a_host_it_does_not_serve(production_client, host):
    for path in ("/", "/api/posts"):
        response = await production_client.get(path, headers={"Host": host})
        assert response.status_code == 400


@pytest.mark.parametrize("host", ["microblog.example", "www.example.org", "example.org"])
async def test_production_serves_its_configured_hosts(production_client, host):
    assert (await production_client.get("/", headers={"Host": host})).status_code == 200


async def test_over_https_a_form_post_without_referer_still_works(production_client):
    """Browsers with strict privacy settings send no Referer; the CSRF token is enough."""
    page = await register(production_client)
    assert page.status_code == 302, page.text
    assert (await login(production_client)).status_code == 302
    home = await production_client.get("/")
    response = await production_client.post(
        "/", data={"csrf_token": csrf_token(home.text), "body": "no referer here"}
    )
    assert response.status_code == 302
    assert "no referer here" in (await production_client.get("/")).text


async def test_a_form_post_from_another_origin_is_refused(client):
    await register(client)
    await login(client)
    home = await client.get("/")
    data = {"csrf_token": csrf_token(home.text), "body": "forged"}
    forged = await client.post("/", data=data, headers={"Origin": "https://evil.example"})
    assert forged.status_code == 400
    same = await client.post("/", data=data, headers={"Origin": "http://testserver"})
    assert same.status_code == 302
    assert (await client.post("/api/tokens", auth=("erin", PASSWORD))).status_code == 201
