"""How stale the read replica is, measured in time from write-ahead log positions.

Each worker asks, every ``PROBE_EVERY_S``, the primary how far its log has gone
(``pg_current_wal_lsn()``) and then the replica how far it has replayed
(``pg_last_wal_replay_lsn()``). Whatever the primary had written at a moment whose position
the replica has replayed is visible on the replica: the newest such moment is what the
replica is *fresh through*, and the lag is how long ago that was. An idle primary does not move
its position, so an idle replica is fresh; a replica whose replay stops, or whose probe fails,
ages by itself and is skipped once it is ``max_lag_s`` behind.

Time, not a log position per client, bounds read-your-writes: a client that wrote reads from
the primary for a window longer than the lag bound plus one probe. An LSN per client would cost
a round trip to the primary after every commit and a check on the replica before every read,
and it would have to travel with the client between instances; the window costs nothing but
the primary's reads for that client, for those few seconds.
"""

from __future__ import annotations

from collections import deque


class ReplicaLag:
    """The replica's freshness from (time, primary position) and (replayed position) samples."""

    def __init__(self, max_lag_s: float, *, remembered: int = 64) -> None:
        self.max_lag_s = max_lag_s
        self._primary: deque[tuple[float, int]] = deque(maxlen=remembered)
        self.fresh_through: float | None = None  # loop time; None until a probe succeeds
        self.down_until = 0.0

    def primary_was_at(self, at: float, position: int) -> None:
        self._primary.append((at, position))

    def replica_replayed(self, position: int | None) -> None:
        """The replica's replay position, asked after the primary's; None: it is no standby."""
        if position is None:
            return
        for at, written in reversed(self._primary):
            if written <= position:
                if self.fresh_through is None or at > self.fresh_through:
                    self.fresh_through = at
                return

    def lag(self, now: float) -> float | None:
        return None if self.fresh_through is None else max(0.0, now - self.fresh_through)

    def usable(self, now: float) -> bool:
        lag = self.lag(now)
        return lag is not None and lag <= self.max_lag_s and now >= self.down_until

    def went_down(self, now: float, for_s: float) -> None:
        """Skip the replica for a while: a connect or a query on it just failed."""
        self.down_until = now + for_s
