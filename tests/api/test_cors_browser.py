"""A page on a second origin calls the API from Chromium: allowed by CORS_ORIGINS, it writes
and reads with a bearer token; the same page from an origin not listed can do neither."""

import subprocess
import sys
from contextlib import contextmanager

import httpx
import pytest
from support.accounts import register_api_user
from support.browser import launched_chromium
from support.processes import end_process_group, free_port, uvicorn_serving, wait_for_port

pytestmark = pytest.mark.processes

# Run in the page: a write (its preflight: Authorization, JSON, Idempotency-Key), a read of
# exposed headers, and a credentialed call, which must fail since credentials are never allowed.
CALLS = """async ({api, token}) => {
  const auth = {Authorization: `Bearer ${token}`};
  const outcome = async (call) => {
    try { return await call(); } catch (error) { return `refused: ${error.name}`; }
  };
  return {
    write: await outcome(async () => {
      const r = await fetch(`${api}/api/posts`, {
        method: "POST",
        headers: {...auth, "Content-Type": "application/json", "Idempotency-Key": "from-page"},
        body: JSON.stringify({body: "from another origin"}),
      });
      return {status: r.status, location: r.headers.get("Location"),
              limit: r.headers.get("RateLimit")};
    }),
    me: await outcome(async () => {
      const r = await fetch(`${api}/api/users/me`, {headers: auth});
      return {status: r.status, username: (await r.json()).username, etag: r.headers.get("ETag")};
    }),
    withCookies: await outcome(async () =>
      (await fetch(`${api}/api/posts`, {credentials: "include"})).status),
    page: await outcome(async () => (await fetch(`${api}/`)).status),
  };
}"""


@contextmanager
def static_site(directory, port):
    """A second origin: Python's own file server, with one empty page."""
    (directory / "index.html").write_text("<!doctype html><title>another app</title>")
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, process)
        yield
    finally:
        end_process_group(process)


async def test_an_allowed_origin_calls_the_api_and_another_cannot(tmp_path):
    site_port = free_port()
    allowed = f"http://127.0.0.1:{site_port}"
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'cors.sqlite3'}"
    env = {"CORS_ORIGINS": allowed}
    with static_site(tmp_path, site_port):
        async with (
            uvicorn_serving(database_url, env=env) as (api, _),
            httpx.AsyncClient(base_url=api) as client,
            launched_chromium() as browser,
        ):
            alice = await register_api_user(client, "alice")
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(f"{allowed}/index.html")
            results = await page.evaluate(CALLS, {"api": api, "token": alice.token})
            assert results["write"]["status"] == 201
            assert results["write"]["location"].startswith("/api/posts/")
            assert results["write"]["limit"].startswith('"api-write";r=')
            assert results["me"] == {
                "status": 200,
                "username": "alice",
                "etag": results["me"]["etag"],
            } and results["me"]["etag"].startswith('W/"')
            assert results["withCookies"] == "refused: TypeError"
            assert results["page"] == "refused: TypeError"

            # The same page from localhost is another origin, not in CORS_ORIGINS.
            await page.goto(f"http://localhost:{site_port}/index.html")
            elsewhere = await page.evaluate(CALLS, {"api": api, "token": alice.token})
            assert elsewhere["write"] == elsewhere["me"] == "refused: TypeError"
            await context.close()
            posts = (await client.get("/api/posts")).json()["items"]
            assert [p["body"] for p in posts] == ["from another origin"]  # once, from 127.0.0.1
