"""Did the data survive the load? The kit's own records against the posts that exist.

The expectation comes only from the ledger (what the kit sent, and what the app acknowledged);
the observed posts are whatever the API or the database shows afterwards. Nothing here imports
locust, so the verifier runs in a plain Python process too.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

# Every post the kit writes starts with its unique key: "[lt-<16 hex digits>] ...".
KEY_PATTERN = re.compile(r"^\[(lt-[0-9a-f]{16})\]")


def key_of(body: str) -> str | None:
    match = KEY_PATTERN.match(body)
    return match.group(1) if match else None


@dataclass(frozen=True)
class ObservedPost:
    id: int
    author: str
    body: str


@dataclass
class IntegrityReport:
    """What was checked and every way it went wrong; ``ok`` when nothing did."""

    acknowledged: int = 0
    present: int = 0
    deletes_acknowledged: int = 0
    writes_unconfirmed: int = 0  # sent, never acknowledged (in flight at the stop, or refused)
    writes_unconfirmed_landed: int = 0
    replayed: int = 0  # acknowledged by a retry that the app answered from its first attempt
    deletes_unconfirmed: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        counts = (
            f"{self.present} of {self.acknowledged} acknowledged posts present exactly once, "
            f"{self.deletes_acknowledged} acknowledged deletes gone, "
            f"{self.replayed} retried writes answered by a replay; "
            f"counted apart: {self.writes_unconfirmed} unconfirmed writes "
            f"({self.writes_unconfirmed_landed} landed), "
            f"{self.deletes_unconfirmed} unconfirmed deletes"
        )
        if self.ok:
            return counts
        shown = "; ".join(self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        return f"{len(self.problems)} problems: {shown}{more}. {counts}"


@dataclass
class Expectation:
    """What the ledger says should be true, folded from its records."""

    sent: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (author, body)
    acked: dict[str, int] = field(default_factory=dict)  # key -> post id
    replayed: set[str] = field(default_factory=set)  # keys whose 201 said Idempotent-Replayed
    deletes_sent: set[int] = field(default_factory=set)
    deletes_acked: set[int] = field(default_factory=set)
    baseline: int | None = None
    missing_workers: list[str] = field(default_factory=list)

    @classmethod
    def from_records(cls, records: Iterable[dict]) -> Expectation:
        expectation = cls()
        for record in records:
            kind = record["kind"]
            if kind == "post_sent":
                expectation.sent[record["key"]] = (record["author"], record["body"])
            elif kind == "post_acked":
                expectation.acked[record["key"]] = record["id"]
            elif kind == "post_replayed":
                expectation.replayed.add(record["key"])
            elif kind == "delete_sent":
                expectation.deletes_sent.add(record["id"])
            elif kind == "delete_acked":
                expectation.deletes_acked.add(record["id"])
            elif kind == "baseline" and expectation.baseline is None:
                expectation.baseline = record["post_id"]
            elif kind == "missing_workers":
                expectation.missing_workers.extend(record["ids"])
        return expectation

    @property
    def authors(self) -> set[str]:
        return {author for author, _ in self.sent.values()}


def check(expectation: Expectation, observed: Iterable[ObservedPost]) -> IntegrityReport:
    """Compare the posts created since the baseline with what the kit sent and was told."""
    report = IntegrityReport(
        deletes_acknowledged=len(expectation.deletes_acked), replayed=len(expectation.replayed)
    )
    if expectation.missing_workers:
        report.problems.append(f"the ledger lacks workers {expectation.missing_workers}")
    by_key: dict[str, list[ObservedPost]] = defaultdict(list)
    for post in observed:
        key = key_of(post.body)
        if key is None or key not in expectation.sent:
            if key is not None or post.author in expectation.authors:
                report.problems.append(f"post {post.id} by {post.author} was never sent")
            continue
        by_key[key].append(post)

    for key, (author, body) in expectation.sent.items():
        found = by_key.get(key, [])
        post_id = expectation.acked.get(key)
        if len(found) > 1:
            ids = ", ".join(str(post.id) for post in found)
            report.problems.append(f"{key} is stored {len(found)} times (posts {ids})")
        elif post_id is None:
            report.writes_unconfirmed += 1
            report.writes_unconfirmed_landed += len(found)
        elif post_id in expectation.deletes_acked:
            if found:
                report.problems.append(f"post {post_id} was deleted (204) but still exists")
        elif post_id in expectation.deletes_sent:
            pass  # its delete was in flight at the stop: present or gone are both right
        else:
            report.acknowledged += 1
            _check_live_post(report, key, post_id, author, body, found)
    report.deletes_unconfirmed = len(expectation.deletes_sent - expectation.deletes_acked)
    return report


def _check_live_post(
    report: IntegrityReport,
    key: str,
    post_id: int,
    author: str,
    body: str,
    found: list[ObservedPost],
) -> None:
    if not found:
        report.problems.append(f"post {post_id} ({key}) was acknowledged but is missing")
    elif found[0].id != post_id:
        report.problems.append(f"{key} was acknowledged as post {post_id}, stored as {found[0].id}")
    elif found[0].author != author or found[0].body != body:
        report.problems.append(f"post {post_id} differs from what was sent")
    else:
        report.present += 1
