"""The per-worker fan-out: every subscriber reads one shared, bounded list of encoded events.

An event is encoded once, however many subscribers it goes to. Publishing appends it and wakes
every waiting subscriber; each subscriber remembers how far it has read. One that falls more
than ``backlog`` events behind is cut off and resumes with ``Last-Event-ID``, so a slow client
costs memory for nothing but its place in the list.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    sequence: int
    encoded: bytes
    post_id: int | None  # set for a new post, so a resuming subscriber can skip it once


class FellBehind(Exception):
    """The subscriber missed events that are no longer kept; it should reconnect."""


class Hub:
    def __init__(self, *, max_subscribers: int, backlog: int = 1024) -> None:
        self.max_subscribers = max_subscribers
        self.subscribers = 0
        self.closed = False
        self._events: deque[Event] = deque(maxlen=backlog)
        self._sequence = 0
        self._published = asyncio.Event()

    @property
    def sequence(self) -> int:
        """The sequence number of the newest event: a subscriber starts reading after it."""
        return self._sequence

    def subscribe(self) -> bool:
        """Take a subscriber's place if there is room; False when full or closed."""
        if self.closed or self.subscribers >= self.max_subscribers:
            return False
        self.subscribers += 1
        return True

    def unsubscribe(self) -> None:
        self.subscribers -= 1

    def publish(self, encoded: bytes, post_id: int | None = None) -> None:
        self._sequence += 1
        self._events.append(Event(self._sequence, encoded, post_id))
        self._published.set()
        self._published.clear()  # the waiters are already woken; later ones wait again

    def close(self) -> None:
        """End every subscription: the worker is stopping."""
        self.closed = True
        self._published.set()

    async def events_after(self, sequence: int) -> list[Event]:
        """The events after ``sequence``, waiting for one if there are none yet; [] once the
        hub closes. ``FellBehind`` if some were already dropped.

        A heartbeat is an event like any other (see ``beat``), so no subscriber needs a timer
        of its own: one wakes them all.
        """
        if self._sequence == sequence and not self.closed:
            await self._published.wait()
        if self.closed:
            return []
        if self._events and self._events[0].sequence > sequence + 1:
            raise FellBehind()
        newer = self._sequence - sequence
        return [self._events[-back] for back in range(newer, 0, -1)]

    async def beat(self, every: float, heartbeat: bytes) -> None:
        """Publish ``heartbeat`` every ``every`` seconds, until cancelled."""
        while not self.closed:
            await asyncio.sleep(every)
            self.publish(heartbeat)
