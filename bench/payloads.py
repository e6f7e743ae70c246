"""Same requests to every stack, answers compared: status codes, headers that matter, and JSON
documents (with created_at compared as instants, not as strings)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int
    document: Any  # parsed JSON for 2xx answers, else None: error bodies are not in the contract
    location: str | None


def cursor_for(post_id: int) -> str:
    return base64.urlsafe_b64encode(str(post_id).encode()).rstrip(b"=").decode()


def read_requests(max_post_id: int) -> list[tuple[str, str]]:
    """``(label, path)`` of the GETs every stack must answer alike, on the seeded data."""
    middle = max_post_id // 2
    return [
        ("newest page", "/api/posts"),
        ("limit 5", "/api/posts?limit=5"),
        ("page after a cursor", f"/api/posts?limit=5&cursor={cursor_for(middle)}"),
        ("largest page", f"/api/posts?limit=100&cursor={cursor_for(middle + 1000)}"),
        ("last page", f"/api/posts?limit=10&cursor={cursor_for(6)}"),
        ("first post", "/api/posts/1"),
        ("a middle post", f"/api/posts/{middle}"),
        ("newest post", f"/api/posts/{max_post_id}"),
        ("missing post", "/api/posts/999999999"),
        ("limit 0", "/api/posts?limit=0"),
        ("limit 101", "/api/posts?limit=101"),
        ("bad cursor", "/api/posts?cursor=%21%21"),
    ]


def capture(base_url: str, token: str, max_post_id: int) -> dict[str, Answer]:
    """Ask one stack everything in the contract; the writes go last, after every read."""
    answers = {label: _call(base_url, "GET", path) for label, path in read_requests(max_post_id)}
    answers["cursor chain"] = _follow_cursor(base_url, answers["limit 5"])
    good = {"Authorization": f"Bearer {token}"}
    writes = {
        "write": (good, {"body": "  written by the contract check  "}),
        "write 280 chars": (good, {"body": "x" * 280}),
        "write no token": ({}, {"body": "hello"}),
        "write bad token": ({"Authorization": "Bearer not-a-token"}, {"body": "hello"}),
        "write blank body": (good, {"body": "   "}),
        "write 281 chars": (good, {"body": "x" * 281}),
        "write no body": (good, {}),
    }
    for label, (headers, document) in writes.items():
        answers[label] = _call(base_url, "POST", "/api/posts", headers, document)
    written = answers["write"]
    if written.location:
        answers["read back the write"] = _call(base_url, "GET", written.location)
    return answers


def _follow_cursor(base_url: str, first_page: Answer) -> Answer:
    cursor = (first_page.document or {}).get("next_cursor")
    return _call(base_url, "GET", f"/api/posts?limit=5&cursor={cursor}")


def _call(
    base_url: str,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    document: Any = None,
) -> Answer:
    data = json.dumps(document).encode() if document is not None else None
    all_headers = {**(headers or {}), **({"Content-Type": "application/json"} if data else {})}
    request = urllib.request.Request(base_url + path, data, all_headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            kind = response.headers.get("Content-Type", "")
            if not kind.startswith("application/json"):
                raise ValueError(f"{method} {path} answered {kind!r}, not JSON")
            return Answer(
                response.status, json.loads(response.read()), response.headers["Location"]
            )
    except urllib.error.HTTPError as error:
        return Answer(error.code, None, None)


def differences(reference: dict[str, Answer], other: dict[str, Answer]) -> list[str]:
    """What ``other`` answered unlike ``reference``, one line per request."""
    found = []
    for label, expected in reference.items():
        got = other.get(label)
        if got is None:
            found.append(f"{label}: no answer")
        elif got.status != expected.status:
            found.append(f"{label}: status {got.status}, expected {expected.status}")
        elif _comparable(got.document, label) != _comparable(expected.document, label):
            found.append(
                f"{label}: JSON differs\n  got      {got.document}\n  expected {expected.document}"
            )
        elif (got.location is None) != (expected.location is None):
            found.append(f"{label}: Location {got.location!r}, expected {expected.location!r}")
    found += _own_write_problems(other)
    return found


def _comparable(document: Any, label: str) -> Any:
    """``document`` with created_at as datetimes; a write's id and time are its own."""
    if isinstance(document, list):
        return [_comparable(item, label) for item in document]
    if not isinstance(document, dict):
        return document
    normal = {key: _comparable(value, label) for key, value in document.items()}
    if isinstance(normal.get("created_at"), str):
        normal["created_at"] = datetime.fromisoformat(normal["created_at"])
    if label.startswith(("write", "read back")):
        normal["id"] = normal["created_at"] = "own"
    return normal


def _own_write_problems(answers: dict[str, Answer]) -> list[str]:
    written, read_back = answers.get("write"), answers.get("read back the write")
    if written is None or written.status != 201 or read_back is None:
        return []
    problems = []
    if written.location != f"/api/posts/{written.document['id']}":
        problems.append(f"write: Location {written.location!r} is not the new post's URL")
    if read_back.document != written.document:
        problems.append(f"read back the write: {read_back.document} != {written.document}")
    if not written.document["created_at"].endswith("Z"):
        problems.append(f"write: created_at {written.document['created_at']!r} is not UTC 'Z'")
    return problems
