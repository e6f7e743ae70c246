"""Did every write that wrk saw acknowledged (201) land in the database exactly once?

wrk's write script gives every request a unique body, ``bench <run tag> <thread>-<n>``, and
reports, per thread, how many it sent and answered and the ``id=<thread>-<n>`` of each 201.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_BODY_KEY = re.compile(r"^bench (\S+) (\d+-\d+)$")


@dataclass
class WriteAudit:
    acknowledged: int  # 201s wrk received
    rows: int  # posts inserted during the run
    unanswered: int  # requests wrk sent but stopped before reading the answer of
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if not self.ok:
            return f"MISMATCH: {self.acknowledged} acknowledged, {self.rows} rows"
        extra = self.rows - self.acknowledged
        note = f" (+{extra} in flight when wrk stopped: committed, never acknowledged)"
        return f"OK: {self.acknowledged} acknowledged, {self.rows} rows{note if extra else ''}"


def audit_writes(run_tag: str, script_lines: list[str], rows: list[tuple[int, str]]) -> WriteAudit:
    """Compare what wrk saw acknowledged with ``rows``, the ``(id, body)`` inserted meanwhile."""
    sent, answered, acknowledged = _read_script_lines(script_lines)
    audit = WriteAudit(len(acknowledged), len(rows), sum(sent.values()) - sum(answered.values()))
    row_keys = Counter()
    row_id_of: dict[str, int] = {}
    for post_id, body in rows:
        match = _BODY_KEY.match(body)
        if match is None or match.group(1) != run_tag:
            audit.problems.append(f"post {post_id} was not written by this run: {body[:60]!r}")
            continue
        row_keys[match.group(2)] += 1
        row_id_of[match.group(2)] = post_id
    for key, count in row_keys.items():
        if count > 1:
            audit.problems.append(f"request {key} is in the database {count} times")
    for key, post_id in acknowledged.items():
        if key not in row_keys:
            audit.problems.append(
                f"acknowledged request {key} (post {post_id}) is not in the database"
            )
        elif row_id_of[key] != post_id:
            audit.problems.append(
                f"request {key} acknowledged as post {post_id}, stored as {row_id_of[key]}"
            )
    unacknowledged = set(row_keys) - set(acknowledged)
    for key in unacknowledged:
        thread, n = (int(part) for part in key.split("-"))
        if n > sent.get(thread, 0):
            audit.problems.append(f"request {key} is stored but wrk never sent it")
    # Requests in flight when wrk stopped may have been committed without wrk reading the 201;
    # only they may be stored unacknowledged.
    if len(unacknowledged) > audit.unanswered:
        audit.problems.append(
            f"{len(unacknowledged)} unacknowledged rows, "
            f"more than the {audit.unanswered} unanswered requests"
        )
    return audit


def _read_script_lines(lines: list[str]) -> tuple[dict[int, int], dict[int, int], dict[str, int]]:
    sent: dict[int, int] = {}
    answered: dict[int, int] = {}
    acknowledged: dict[str, int] = {}
    for line in lines:
        words = line.split()
        if words[0] == "bench-thread":
            thread = int(words[1])
            sent[thread], answered[thread] = int(words[3]), int(words[5])
        elif words[0] == "bench-acks" and len(words) > 2:
            for pair in words[2].split(","):
                post_id, key = pair.split("=")
                if not post_id.isdigit() or key == "?":
                    raise RuntimeError(f"a 201 without the post's id or body: {pair!r}")
                acknowledged[key] = int(post_id)
    if not sent:
        raise RuntimeError("the write script reported nothing: was wrk run with write_post.lua?")
    return sent, answered, acknowledged
