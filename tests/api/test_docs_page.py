"""/api/docs in Chromium: Swagger UI from our own files lists every operation, breaks no rule
of its page policy, and a developer can authorize with a bearer token and try a call."""

import os
from pathlib import Path

import httpx
import pytest
from support.accounts import register_api_user
from support.browser import launched_chromium
from support.processes import uvicorn_serving

pytestmark = pytest.mark.processes

# Where the screenshot goes: a CI artifact when SCREENSHOT_DIR says so, else the test's folder.
SCREENSHOT_DIR = os.environ.get("SCREENSHOT_DIR")


async def test_the_docs_page_lists_every_operation_and_tries_one_with_a_token(tmp_path):
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'docs.sqlite3'}"
    async with (
        uvicorn_serving(database_url) as (base_url, _),
        httpx.AsyncClient(base_url=base_url) as client,
        launched_chromium() as browser,
    ):
        document = (await client.get("/api/openapi.json")).json()
        operations = {
            (method.upper(), path) for path, item in document["paths"].items() for method in item
        }
        alice = await register_api_user(client, "alice")
        page_answer = await client.get("/api/docs")
        assert "script-src 'self';" in page_answer.headers["Content-Security-Policy"]

        context = await browser.new_context(viewport={"width": 1280, "height": 2400})
        page = await context.new_page()
        problems = []
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        outside = []
        page.on("request", lambda r: r.url.startswith(base_url) or outside.append(r.url))
        missing = []
        page.on("response", lambda r: r.status == 404 and missing.append(r.url))
        await page.goto(f"{base_url}/api/docs")
        await page.wait_for_selector(".opblock", timeout=15000)
        listed = set()
        for block in await page.locator(".opblock-summary").all():
            method = await block.locator(".opblock-summary-method").inner_text()
            path = await block.locator(".opblock-summary-path").get_attribute("data-path")
            listed.add((method.strip(), path))
        assert listed == operations

        await page.click("button.authorize")
        bearer = page.locator(".auth-container form").filter(has=page.locator("#auth-bearer-value"))
        await bearer.locator("#auth-bearer-value").fill(alice.token)
        await bearer.locator("button.authorize").click()
        await page.locator("button.btn-done").first.click()
        me = page.locator("#operations-users-who_am_i")
        await me.locator(".opblock-summary").click()
        await me.locator("button.try-out__btn").click()
        await me.locator("button.execute").click()
        status = me.locator(".live-responses-table tbody .response-col_status").first
        await status.wait_for(timeout=10000)
        assert (await status.inner_text()).strip().startswith("200")
        assert '"username": "alice"' in await me.locator(".live-responses-table").inner_text()

        shots = Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path
        shots.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(shots / "api-docs.png"), full_page=False)
        assert missing == [], missing
        assert problems == [], problems  # a policy violation is a console error
        assert outside == [], outside  # nothing fetched from another origin
        await context.close()
