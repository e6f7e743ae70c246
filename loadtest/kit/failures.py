"""Every failed request, by kind, with enough to find it on the server.

A kind is (method, name, status, problem title). For each, the log keeps a count and the first
few examples: the problem's detail (or the error text) and the request id the app echoed in
``X-Request-ID``. Workers ship theirs to the master with each stats report, as the ledger does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

EXAMPLES_KEPT = 3


@dataclass
class Kind:
    method: str
    name: str
    status: int
    title: str
    count: int = 0
    examples: list[dict[str, str]] = field(default_factory=list)

    def line(self) -> str:
        status = self.status or "no answer"
        return f"{self.count:>6}  {self.method} {self.name}  {status} {self.title}".rstrip()


def describe(response: Any, exception: Any) -> tuple[int, str, dict[str, str]]:
    """(status, problem title, example) of one failed request."""
    status = int(getattr(response, "status_code", 0) or 0)
    headers = getattr(response, "headers", None) or {}
    title, detail = "", str(exception)
    if str(headers.get("content-type", "")).startswith("application/problem+json"):
        try:
            problem = json.loads(response.text or "{}")
        except ValueError:
            problem = {}
        title = str(problem.get("title", ""))
        detail = str(problem.get("detail") or detail)
    example = {"request_id": str(headers.get("x-request-id", "") or "none"), "detail": detail}
    return status, title, example


class FailureLog:
    def __init__(self) -> None:
        self.kinds: dict[tuple[str, str, int, str], Kind] = {}
        self._pending: list[dict[str, Any]] = []
        self._is_worker = False

    def install(self, environment: Environment) -> None:
        events = environment.events
        events.request.add_listener(self._on_request)
        if isinstance(environment.runner, WorkerRunner):
            self._is_worker = True
            events.report_to_master.add_listener(self._ship_with_report)
        elif isinstance(environment.runner, MasterRunner):
            events.worker_report.add_listener(self._receive_report)

    def add(self, method: str, name: str, status: int, title: str, example: dict[str, str]) -> None:
        if self._is_worker:
            self._pending.append(
                {"method": method, "name": name, "status": status, "title": title, **example}
            )
            return
        kind = self.kinds.setdefault(
            (method, name, status, title), Kind(method, name, status, title)
        )
        kind.count += 1
        if len(kind.examples) < EXAMPLES_KEPT:
            kind.examples.append(example)

    def report(self) -> str:
        """The kinds, most frequent first, each with its first examples; '' when none."""
        if not self.kinds:
            return ""
        lines = ["failures by kind (count, request, status, problem title):"]
        for kind in sorted(self.kinds.values(), key=lambda k: -k.count):
            lines.append(kind.line())
            lines += [
                f"          request id {e['request_id']}: {e['detail'][:160]}"
                for e in kind.examples
            ]
        return "\n".join(lines)

    def _on_request(self, request_type: str, name: str, response: Any = None,
                    exception: Any = None, **_: Any) -> None:  # fmt: skip
        if exception is not None:
            self.add(request_type, name, *describe(response, exception))

    def _ship_with_report(self, client_id: str, data: dict[str, Any]) -> None:
        data["failures"], self._pending = self._pending, []

    def _receive_report(self, client_id: str, data: dict[str, Any]) -> None:
        for failure in data.get("failures", []):
            example = {"request_id": failure["request_id"], "detail": failure["detail"]}
            self.add(
                failure["method"], failure["name"], failure["status"], failure["title"], example
            )


FAILURES = FailureLog()
