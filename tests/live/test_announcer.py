"""The announcer: committed writes leave in batches that PostgreSQL accepts, in the order they
were written, and none is lost when a send fails or the worker stops."""

from __future__ import annotations

import asyncio

from app.live.announcer import (
    MAX_PAYLOAD_BYTES,
    Announcer,
    RecentIds,
    parse_announcements,
)


class Channel:
    """A stand-in for the listening connection: records payloads, fails when told to."""

    def __init__(self, *, failures: int = 0) -> None:
        self.payloads: list[str] = []
        self.failures = failures
        self.open = asyncio.Event()
        self.open.set()

    async def send(self, payload: str) -> None:
        await self.open.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the answer was lost")
        self.payloads.append(payload)

    def announced(self) -> list[tuple[str, int]]:
        return [pair for payload in self.payloads for pair in parse_announcements(payload)]


async def test_writes_queued_while_a_send_waits_leave_together_in_payloads_postgresql_takes():
    channel = Channel()
    channel.open.clear()  # the first send waits, as for a round trip
    announcer = Announcer(channel.send)
    announcer.start()
    announcer.announce("post", 1)
    await asyncio.sleep(0.01)
    for post_id in range(2, 2002):
        announcer.announce("post", post_id)
    announcer.announce("delete", 7)
    channel.open.set()
    await announcer.stop(within_s=2)

    assert channel.announced() == [
        *(("post", n) for n in range(1, 2002)),
        ("delete", 7),
    ]
    assert channel.payloads[0] == "post:1"  # alone: a quiet worker adds no delay
    assert 3 <= len(channel.payloads) <= 10  # the rest in a few batches, not 2,001 sends
    assert all(len(p.encode()) <= MAX_PAYLOAD_BYTES < 8000 for p in channel.payloads)


async def test_a_failed_send_is_sent_again_in_order_and_nothing_is_lost():
    channel = Channel(failures=2)
    announcer = Announcer(channel.send)
    announcer.start()
    for post_id in (5, 6, 7):
        announcer.announce("post", post_id)
    announcer.announce("edit", 5)
    await announcer.stop(within_s=5)  # two retries, half a second apart

    assert channel.announced() == [("post", 5), ("post", 6), ("post", 7), ("edit", 5)]


async def test_stopping_gives_up_after_its_time_and_says_how_much_was_left(caplog):
    channel = Channel()
    channel.open.clear()  # the database never answers
    announcer = Announcer(channel.send)
    announcer.start()
    announcer.announce("post", 1)
    announcer.announce("post", 2)
    async with asyncio.timeout(2):
        await announcer.stop(within_s=0.2)
    assert channel.payloads == []
    assert "announcements unsent at shutdown" in caplog.text


def test_a_payload_is_read_whether_it_holds_one_entry_or_many_and_junk_is_skipped():
    assert parse_announcements("post:12") == [("post", 12)]
    assert parse_announcements("post:12 edit:7 delete:3") == [
        ("post", 12),
        ("edit", 7),
        ("delete", 3),
    ]
    assert parse_announcements("post:x shout:1 post:-1  post:9") == [("post", 9)]


def test_recent_ids_remember_the_newest_and_forget_the_oldest():
    recent = RecentIds(size=3)
    for post_id in (1, 2, 3, 3, 4):
        recent.add(post_id)
    assert 1 not in recent
    assert all(post_id in recent for post_id in (2, 3, 4))
