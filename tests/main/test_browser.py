"""A real browser (Debian's chromium, driven by Playwright) against uvicorn over HTTPS.

Production settings, a self-signed certificate, PostgreSQL. The browser registers, signs in,
posts, pages back, signs out; a replayed cookie is signed out; HTML in a post stays text; and
a form post without a Referer (as privacy settings send it) still works.
"""

import httpx
import pytest
from playwright.async_api import expect
from support.accounts import PASSWORD
from support.browser import launched_chromium
from support.processes import self_signed_certificate, uvicorn_serving

pytestmark = pytest.mark.processes


@pytest.fixture
def certificate(tmp_path):
    return self_signed_certificate(tmp_path)


@pytest.fixture
async def https_server(postgres_available, certificate):
    key, cert = certificate
    tls = ("--ssl-keyfile", str(key), "--ssl-certfile", str(cert))
    env = {"ALLOWED_HOSTS": "127.0.0.1"}
    async with uvicorn_serving(postgres_available, env=env, args=tls) as (base_url, _):
        yield base_url


@pytest.fixture
async def browser():
    async with launched_chromium() as browser:
        yield browser


async def without_referer(route):
    headers = {k: v for k, v in route.request.headers.items() if k.lower() != "referer"}
    await route.continue_(headers=headers)


async def new_page(browser, dialogs):
    context = await browser.new_context(ignore_https_errors=True)
    page = await context.new_page()
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    # Privacy settings and extensions drop the Referer; the app must not need it.
    await page.route("**/*", without_referer)
    return context, page


async def fill_and_send(page, fields, button):
    for name, value in fields.items():
        await page.fill(f"[name={name}]", value)
    async with page.expect_navigation():
        await page.click(button)


async def test_a_person_uses_the_site_in_a_real_browser(https_server, browser):
    dialogs = []
    context, page = await new_page(browser, dialogs)
    await page.goto(f"{https_server}/auth/register")
    account = {"username": "browser", "email": "b@example.com", "password": PASSWORD}
    await fill_and_send(page, {**account, "password_again": PASSWORD}, "#submit")
    assert page.url.endswith("/auth/login")
    await fill_and_send(page, {"username": "browser", "password": PASSWORD}, "#submit")
    assert await page.is_visible("text=Sign out")

    # 21 older posts through the API, then two from the form: one of them is hostile HTML.
    async with httpx.AsyncClient(base_url=https_server, verify=False) as api:  # noqa: S501
        token = (await api.post("/api/tokens", auth=("browser", PASSWORD))).json()["token"]
        for n in range(21):
            await api.post(
                "/api/posts",
                json={"body": f"older post {n}"},
                headers={"Authorization": f"Bearer {token}"},
            )
    await page.goto(https_server)
    await fill_and_send(page, {"body": "hello from chromium"}, "#submit")
    hostile = "<script>alert('xss')</script><img src=x onerror=alert(2)>"
    await fill_and_send(page, {"body": hostile}, "#submit")
    first = page.locator("article.post p")
    assert await first.nth(0).inner_text() == hostile  # shown as text, not run
    assert await first.nth(1).inner_text() == "hello from chromium"
    async with page.expect_navigation():
        await page.locator("article.post").nth(1).locator("a.edit").click()
    assert await page.input_value("#body") == "hello from chromium"
    await fill_and_send(page, {"body": "hello again from chromium"}, "#submit")
    assert await page.is_visible("text=Your post is edited.")
    assert await first.nth(1).inner_text() == "hello again from chromium"
    assert await page.locator("article.post").nth(1).locator(".edited").is_visible()
    assert "older post 0" not in await page.content()
    async with page.expect_navigation():
        await page.click("a[rel=next]")
    assert "page=2" in page.url and "older post 0" in await page.content()

    captured = await context.cookies()
    await page.goto(https_server)
    async with page.expect_navigation():
        await page.click("text=Sign out")
    assert await page.is_visible("text=You are signed out.")

    replay, replay_page = await new_page(browser, dialogs)
    await replay.add_cookies(captured)
    await replay_page.goto(https_server)
    assert await replay_page.is_visible("text=Sign in")
    assert not await replay_page.is_visible("text=Sign out")
    assert dialogs == [], f"a script ran: {dialogs}"
    await replay.close()
    await context.close()


async def test_the_home_page_shows_posts_as_they_are_written_edited_and_deleted(
    https_server, browser
):
    dialogs = []
    context, page = await new_page(browser, dialogs)
    await page.goto(https_server)
    assert await page.is_visible("text=No posts yet.")
    async with httpx.AsyncClient(base_url=https_server, verify=False) as api:  # noqa: S501
        account = {"username": "writer", "email": "w@example.com", "password": PASSWORD}
        assert (await api.post("/api/users", json=account)).status_code == 201
        token = (await api.post("/api/tokens", auth=("writer", PASSWORD))).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        # Locators, not wait_for_function: its string predicate is eval'd on every poll, which
        # this page's CSP refuses (script-src 'self', no 'unsafe-eval').
        await page.locator("[data-live-stream]").wait_for(state="attached", timeout=5000)
        await page.wait_for_timeout(500)  # EventSource connects
        hostile = "<img src=x onerror=alert(1)> live!"
        post = (await api.post("/api/posts", json={"body": hostile}, headers=auth)).json()
        live = page.locator(f"#post-{post['id']}")
        await live.wait_for(timeout=5000)
        assert await live.locator("p").inner_text() == hostile  # text, never HTML
        assert await live.locator("a").inner_text() == "writer"
        assert not await page.is_visible("text=No posts yet.")
        assert not await live.locator(".edited").is_visible()
        edit = {"body": "<b>edited</b> in place"}
        url = f"/api/posts/{post['id']}"
        assert (await api.patch(url, json=edit, headers=auth)).status_code == 200
        await expect(live.locator("p")).to_have_text(edit["body"], timeout=5000)
        assert await live.locator(".edited").is_visible()
        assert await live.locator("b").count() == 0  # still text, never HTML
        assert (await api.delete(f"/api/posts/{post['id']}", headers=auth)).status_code == 204
        await live.wait_for(state="detached", timeout=5000)
    assert dialogs == [], f"a script ran: {dialogs}"
    await context.close()

    # Without JavaScript the same page still lists the posts; it is only not live.
    still = await browser.new_context(ignore_https_errors=True, java_script_enabled=False)
    static_page = await still.new_page()
    await static_page.goto(https_server)
    assert await static_page.is_visible("h1:has-text('Latest posts')")
    await still.close()
