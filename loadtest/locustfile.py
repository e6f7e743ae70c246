"""Load test the microblog the way people and clients use it.

    locust -f loadtest/locustfile.py --config loadtest/profiles/smoke.conf --host http://...

Users: anonymous readers of the pages and of the API, browser users who sign in through the
forms, post and delete, API clients with bearer tokens, newcomers who register, and open tabs
following the live timeline. Every
write carries a unique key and goes into the ledger; when locust quits, the kit reads the
posts back, judges the thresholds and sets the exit code (see ``loadtest/README.md``).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from kit import live, verdict
from kit.accounts import ACCOUNTS, Account
from kit.cookies import LoopbackIsSecure, is_loopback
from kit.failures import FAILURES
from kit.ledger import LEDGER, new_key
from kit.pages import csrf_token, older_page_link, post_id_from_location
from locust import FastHttpUser, between, events, tag, task
from locust.env import Environment

WORDS = (
    "load steady spike soak latency throughput keyset cursor pool async greenlet flask uvicorn "
    "postgres ledger verdict p95 p99 worker master release deploy coffee morning"
).split()
GOOD_STATUSES_WHEN_GONE = (404,)
DEFAULT_CREDENTIALS = Path(__file__).parent / "results" / "credentials.csv"


@events.init_command_line_parser.add_listener
def add_kit_options(parser: Any) -> None:
    group = parser.add_argument_group("microblog kit")
    group.add_argument(
        "--credentials",
        default=str(DEFAULT_CREDENTIALS),
        help="CSV of seeded sign-ins (flask seed --credentials FILE)",
    )
    group.add_argument(
        "--thresholds", default="", help="rules such as 'fail_ratio <= 0.01; p95 < 300; rps >= 20'"
    )
    group.add_argument("--ledger", default="", help="also write the ledger to this JSON-lines file")
    group.add_argument("--verdict-file", default="", help="also write the verdict to this file")
    group.add_argument(
        "--metrics-token",
        default=os.environ.get("METRICS_TOKEN", ""),
        help="the app's METRICS_TOKEN: its /metrics is read before and after the run",
    )
    group.add_argument(
        "--server-metrics",
        type=_yes,
        default=True,
        help="compare the server's request count with the kit's (one instance only)",
    )
    group.add_argument(
        "--verify-integrity",
        type=_yes,
        default=True,
        help="read every post back after the run (true/false)",
    )


def _yes(value: str | bool) -> bool:
    return value if isinstance(value, bool) else value.strip().lower() in {"1", "true", "yes"}


@events.init.add_listener
def set_up_the_kit(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    ACCOUNTS.load(options.credentials)
    LEDGER.install(environment, options.ledger or None)
    FAILURES.install(environment)
    verdict.install(environment)


WRITE_ATTEMPTS = 4
MAX_RETRY_WAIT_S = 2.0


def post_body() -> tuple[str, str]:
    key = new_key()
    return key, f"[{key}] " + " ".join(random.choices(WORDS, k=random.randint(3, 20)))


def unexpected(action: str, response: Any) -> str:
    """A failure's text; no HTTP answer at all says so, so the transport_errors rule counts it."""
    if not response.status_code:
        return f"{action} got no answer: connection reset or timed out ({response.error!r})"
    return f"{action} answered {response.status_code}"


def retry_after(response: Any, default: float = 1.0) -> float:
    headers = getattr(response, "headers", None) or {}  # no answer at all has no headers
    try:
        return max(0.0, float(headers.get("Retry-After", default)))
    except ValueError:
        return default


class MicroblogUser(FastHttpUser):
    abstract = True
    network_timeout = 10.0
    connection_timeout = 5.0
    pace = between(1, 3)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.resume_at = 0.0
        if is_loopback(self.host or ""):
            self.client.cookiejar.set_policy(LoopbackIsSecure())

    def wait_time(self) -> float:
        """The user's pace, or longer while the app asked it to wait (Retry-After)."""
        return max(float(self.pace()), self.resume_at - time.monotonic())

    def honoured_limit(self, response: Any) -> bool:
        """A 429 is the app's limit at work, not a failure: the user waits as long as
        Retry-After says, and the stats list it apart under "(429, waited)"."""
        if response.status_code != 429:
            return False
        self.resume_at = time.monotonic() + retry_after(response)
        response.request_meta["name"] += " (429, waited)"
        response.success()
        return True

    def sign_in_through_form(self, account: Account) -> bool:
        """GET the form for its CSRF token, POST it; True when the app signed the account in."""
        page = self.client.get("/auth/login", name="/auth/login")
        if page.status_code != 200:
            return False  # no form was served (shed under load): nothing to send
        form = {
            "csrf_token": csrf_token(page.text or "") or "",
            "username": account.username,
            "password": account.password,
        }
        with self.client.post(
            "/auth/login", data=form, name="/auth/login", allow_redirects=False, catch_response=True
        ) as response:
            if self.honoured_limit(response):
                return False
            if response.status_code != 302:
                response.failure(unexpected("sign-in", response))
                return False
        return True


class PageReader(MicroblogUser):
    """Someone reading the timeline and user pages, signed out."""

    weight = 4

    @tag("read", "browser")
    @task(4)
    def timeline(self) -> None:
        """The first page, then a few clicks on "Older" while there is one."""
        page = self.client.get("/", name="/")
        for _ in range(random.choice((0, 0, 1, 2, 3))):
            older = older_page_link(page.text or "") if page.status_code == 200 else None
            if older is None:
                return
            page = self.client.get(older, name="/?page=[n]")

    @tag("read", "browser")
    @task(1)
    def user_page(self) -> None:
        self.client.get(f"/user/{ACCOUNTS.next().username}", name="/user/[name]")


class ApiReader(MicroblogUser):
    """A client following the API's cursors, and reading single posts and profiles."""

    weight = 3

    @tag("read", "api")
    @task(3)
    def follow_cursors(self) -> None:
        response = self.client.get("/api/posts?limit=20", name="/api/posts")
        for _ in range(random.randint(0, 3)):
            cursor = response.json().get("next_cursor") if response.status_code == 200 else None
            if not cursor:
                return
            response = self.client.get(
                f"/api/posts?limit=20&cursor={cursor}", name="/api/posts?cursor=[c]"
            )

    @tag("read", "api")
    @task(2)
    def one_post(self) -> None:
        page = self.client.get("/api/posts?limit=20", name="/api/posts")
        items = page.json()["items"] if page.status_code == 200 else []
        if items:
            post_id = random.choice(items)["id"]
            with self.client.get(
                f"/api/posts/{post_id}", name="/api/posts/[id]", catch_response=True
            ) as response:
                if response.status_code in GOOD_STATUSES_WHEN_GONE:
                    response.success()  # deleted between the two reads

    @tag("read", "api")
    @task(1)
    def profile(self) -> None:
        self.client.get(f"/api/users/{ACCOUNTS.next().username}", name="/api/users/[name]")


class BrowserWriter(MicroblogUser):
    """Signs in through the form, posts, deletes one of their own posts, signs out."""

    weight = 2

    def on_start(self) -> None:
        self.account: Account = ACCOUNTS.next()
        self.my_posts: list[int] = []
        self.signed_in = False
        self.sign_in()

    def on_stop(self) -> None:
        self.sign_out()

    def sign_in(self) -> None:
        self.signed_in = self.sign_in_through_form(self.account)

    def form_token(self) -> str | None:
        """The CSRF token of the timeline page, as a browser has it before sending a form."""
        home = self.client.get("/", name="/")
        return csrf_token(home.text or "") if home.status_code == 200 else None

    def sign_out(self) -> None:
        if not self.signed_in:
            return
        self.signed_in = False
        home = self.client.get("/", name="/")
        token = csrf_token(home.text or "")
        if token:
            self.client.post(
                "/auth/logout",
                data={"csrf_token": token},
                name="/auth/logout",
                allow_redirects=False,
            )

    @tag("write", "browser")
    @task(3)
    def write_post(self) -> None:
        if not self.signed_in:  # the last sign-in was turned away (503): try again first
            return self.sign_in()
        token = self.form_token()
        if token is None:
            return  # the page was not served (shed under load): no form to send
        key, body = post_body()
        form = {"csrf_token": token, "body": body}
        LEDGER.record("post_sent", key=key, author=self.account.username, body=body)
        with self.client.post(
            "/", data=form, name="/ (post)", allow_redirects=False, catch_response=True
        ) as response:
            post_id = post_id_from_location(response.headers.get("Location"))
            if response.status_code != 302 or post_id is None:
                response.failure(unexpected("posting", response))
                return
        LEDGER.record("post_acked", key=key, id=post_id)
        self.my_posts.append(post_id)

    @tag("write", "browser")
    @task(1)
    def delete_post(self) -> None:
        if not self.my_posts or not self.signed_in:
            return
        token = self.form_token()
        if token is None:
            return
        post_id = self.my_posts.pop(random.randrange(len(self.my_posts)))
        form = {"csrf_token": token}
        LEDGER.record("delete_sent", id=post_id)
        with self.client.post(
            f"/post/{post_id}/delete",
            data=form,
            name="/post/[id]/delete",
            allow_redirects=False,
            catch_response=True,
        ) as response:
            if response.status_code != 302:
                response.failure(unexpected("deleting", response))
                return
        LEDGER.record("delete_acked", id=post_id)

    @tag("auth", "browser")
    @task(1)
    def sign_out_and_back_in(self) -> None:
        self.sign_out()
        self.sign_in()


class ApiClient(MicroblogUser):
    """Gets a token with HTTP Basic, writes, reads back, pages, deletes, revokes the token."""

    weight = 2

    def on_start(self) -> None:
        self.account = ACCOUNTS.next()
        self.my_posts: list[int] = []
        self.headers: dict[str, str] = {}
        self.get_token()

    def on_stop(self) -> None:
        self.revoke_token()

    def get_token(self) -> None:
        with self.client.post(
            "/api/tokens",
            name="/api/tokens",
            catch_response=True,
            auth=(self.account.username, self.account.password),
        ) as response:
            if self.honoured_limit(response):
                self.headers = {}
                return
            if response.status_code != 201:
                response.failure(unexpected("token", response))
                self.headers = {}
                return
            self.headers = {"Authorization": f"Bearer {response.json()['token']}"}

    def revoke_token(self) -> None:
        if self.headers:
            self.client.delete("/api/tokens", headers=self.headers, name="/api/tokens")
            self.headers = {}

    @tag("write", "api")
    @task(3)
    def write_and_read_back(self) -> None:
        if not self.headers:
            return self.get_token()
        key, body = post_body()
        LEDGER.record("post_sent", key=key, author=self.account.username, body=body)
        post_id = self.write_once(key, body)
        if post_id is None:
            return
        LEDGER.record("post_acked", key=key, id=post_id)
        self.my_posts.append(post_id)
        with self.client.get(
            f"/api/posts/{post_id}", name="/api/posts/[id]", catch_response=True
        ) as read:
            if read.status_code == 200 and read.json()["body"] != body:
                read.failure("the post read back differs from the one written")

    def write_once(self, key: str, body: str) -> int | None:
        """Send the post with its ledger key as ``Idempotency-Key``, and retry with the same
        key after a 503, a 409, a timeout or a lost connection, as a careful client does: the
        integrity check then demands exactly one post for the key, however many were sent."""
        headers = {**self.headers, "Idempotency-Key": key}
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            name = "/api/posts (write)" if attempt == 1 else "/api/posts (write, retried)"
            with self.client.post(
                "/api/posts", json={"body": body}, headers=headers, name=name, catch_response=True
            ) as response:
                if response.status_code == 201:
                    if response.headers.get("Idempotent-Replayed") == "true":
                        LEDGER.record("post_replayed", key=key, attempt=attempt)
                    return int(response.json()["id"])
                retryable = response.status_code in (0, 409, 503)
                response.failure(unexpected("writing", response))
            if not retryable:
                return None
            time.sleep(min(retry_after(response), MAX_RETRY_WAIT_S))
        return None

    @tag("read", "api")
    @task(2)
    def page_my_posts(self) -> None:
        url = f"/api/users/{self.account.username}/posts?limit=10"
        response = self.client.get(url, name="/api/users/[name]/posts")
        cursor = response.json().get("next_cursor") if response.status_code == 200 else None
        if cursor:
            self.client.get(f"{url}&cursor={cursor}", name="/api/users/[name]/posts?cursor=[c]")

    @tag("write", "api")
    @task(1)
    def delete_post(self) -> None:
        if not self.my_posts or not self.headers:
            return
        post_id = self.my_posts.pop(random.randrange(len(self.my_posts)))
        LEDGER.record("delete_sent", id=post_id)
        with self.client.delete(
            f"/api/posts/{post_id}",
            headers=self.headers,
            name="/api/posts/[id] (delete)",
            catch_response=True,
        ) as response:
            if response.status_code != 204:
                response.failure(unexpected("deleting", response))
                return
        LEDGER.record("delete_acked", id=post_id)

    @tag("auth", "api")
    @task(1)
    def renew_token(self) -> None:
        self.revoke_token()
        self.get_token()


class LiveReader(MicroblogUser):
    """A tab left open on the home page: it follows the live timeline for a while, then goes."""

    weight = 1
    listen_seconds = 8.0

    @tag("read", "live", "api")
    @task
    def follow_the_live_timeline(self) -> None:
        live.listen(
            self.host or "",
            self.listen_seconds,
            live.reporter(self.environment),
            timed_deliveries=is_loopback(self.host or ""),
        )


class Newcomer(MicroblogUser):
    """Registers through the form and signs in: the journey that measures registration."""

    weight = 1
    pace = between(2, 6)

    @tag("auth", "register", "browser")
    @task
    def register_and_sign_in(self) -> None:
        username = f"lt_{new_key()[3:]}"
        password = f"pw {new_key()}"
        page = self.client.get("/auth/register", name="/auth/register")
        form = {
            "csrf_token": csrf_token(page.text or "") or "",
            "username": username,
            "email": f"{username}@example.com",
            "password": password,
            "password_again": password,
        }
        with self.client.post(
            "/auth/register",
            data=form,
            name="/auth/register",
            allow_redirects=False,
            catch_response=True,
        ) as response:
            if self.honoured_limit(response):
                return
            if response.status_code != 302:
                response.failure(unexpected("registering", response))
                return
        self.sign_in_through_form(Account(username, password))
        self.client.cookiejar.clear()
