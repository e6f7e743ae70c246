"""Telling every worker of a write after it commits, off the commit path.

A ``NOTIFY`` in the writing transaction would make the announcement atomic with the write, but
PostgreSQL serialises every committing transaction that notifies on one database-wide lock,
held while the commit is flushed to disk: writes that notify commit one at a time, about 3,000
a second on the bench machine however many instances write (``bench/write_scaling.py``). So the
views queue what they wrote once it has committed, and each worker sends its queue in batches,
``post:12 edit:7 delete:3``, in one short ``pg_notify`` transaction of its own on the listening
connection, which commits without waiting for the disk (nothing durable rides on a
notification). Writes then commit as concurrently as any others.

What is given up: a worker killed between a commit and the next batch (a millisecond or two)
never announces that write; subscribers see it on their next page load. A batch whose answer is
lost is sent again, so receivers drop a post they have already published (``__init__.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]

# PostgreSQL refuses a payload of 8,000 bytes or more; an entry is at most 27.
MAX_PAYLOAD_BYTES = 7_900
MAX_QUEUED = 100_000  # a worker whose listener is down for long keeps this many, then the newest
RETRY_AFTER_S = 0.5
# After a send, what comes in meanwhile waits this long to go in the next batch: under load a
# worker then commits about 200 announcements a second, not one per write; a quiet worker's
# next write still leaves at once.
GATHER_S = 0.005
SEPARATOR = " "


class Announcer:
    """The worker's queue of committed writes to announce, and the task that sends it."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._queue: deque[str] = deque()
        self._queued = asyncio.Event()
        self._all_sent = asyncio.Event()
        self._all_sent.set()
        self._sending: list[str] = []  # the batch on its way
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def announce(self, kind: str, post_id: int) -> None:
        """Queue ``kind:post_id`` ("post", "edit" or "delete") for every worker; never blocks."""
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped == 1:
                log.warning("live timeline: announcements are not getting out; dropping the oldest")
        self._queue.append(f"{kind}:{post_id}")
        self._queued.set()
        self._all_sent.clear()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._send_forever())

    async def stop(self, *, within_s: float) -> None:
        """Send what is queued, for at most ``within_s``, then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_sent.wait(), within_s)
        if unsent := len(self._queue) + len(self._sending):
            log.warning("live timeline: %d announcements unsent at shutdown", unsent)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _send_forever(self) -> None:
        while True:
            await self._queued.wait()
            batch = self._sending = self._take_batch()
            try:
                await self._send(SEPARATOR.join(batch))
            except Exception as failure:  # the sender must outlive any failure; resend in order
                log.warning("live timeline: announcing failed (%r); retrying", failure)
                self._queue.extendleft(reversed(batch))
                self._queued.set()
                pause = RETRY_AFTER_S
            else:
                if not self._queue:
                    self._all_sent.set()
                pause = GATHER_S
            finally:
                self._sending = []
            await asyncio.sleep(pause)

    def _take_batch(self) -> list[str]:
        batch = [self._queue.popleft()]
        size = len(batch[0])
        while self._queue and size + 1 + len(self._queue[0]) <= MAX_PAYLOAD_BYTES:
            entry = self._queue.popleft()
            batch.append(entry)
            size += 1 + len(entry)
        if not self._queue:
            self._queued.clear()
        return batch


def parse_announcements(payload: str) -> list[tuple[str, int]]:
    """The (kind, post id) pairs of one notification; anything malformed is skipped."""
    pairs = []
    for entry in payload.split(SEPARATOR):
        kind, _, post_id = entry.partition(":")
        if kind in ("post", "edit", "delete") and post_id.isdigit():
            pairs.append((kind, int(post_id)))
    return pairs


class RecentIds:
    """The ids of the last ``size`` posts published, to publish each once: a batch sent again,
    or a post both caught up on and announced, comes in twice."""

    def __init__(self, size: int = 4096) -> None:
        self._order: deque[int] = deque()
        self._ids: set[int] = set()
        self._size = size

    def __contains__(self, post_id: int) -> bool:
        return post_id in self._ids

    def add(self, post_id: int) -> None:
        if post_id in self._ids:
            return
        if len(self._order) >= self._size:
            self._ids.discard(self._order.popleft())
        self._order.append(post_id)
        self._ids.add(post_id)
