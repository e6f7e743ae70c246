"""Where the machine's CPU went during a run: the server's processes, PostgreSQL's, wrk's.

On two cores shared by the workers, the database and the load generator, what a second worker
can add is capped by what the other two use; this measures it instead of guessing.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuShares:
    """CPU seconds each party used over ``seconds`` of wall time on ``cores`` cores."""

    seconds: float
    cores: int
    server: float
    database: float
    load: float  # wrk, and anything else this process ran and waited for

    @property
    def idle(self) -> float:
        return max(0.0, self.seconds * self.cores - self.server - self.database - self.load)


class CpuMeter:
    """``start()`` before a run and ``stop()`` after it, around one wrk run."""

    def __init__(self, server_session: int) -> None:
        self._session = server_session
        self._started: tuple[float, float, float, float] | None = None

    def start(self) -> None:
        self._started = self._snapshot()

    def stop(self) -> CpuShares:
        assert self._started is not None, "start() first"
        began, now = self._started, self._snapshot()
        wall, server, database, load = (
            after - before for after, before in zip(now, began, strict=True)
        )
        return CpuShares(wall, os.cpu_count() or 1, server, database, load)

    def _snapshot(self) -> tuple[float, float, float, float]:
        server = database = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:  # the process ended meanwhile
                continue
            name = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 2 :].split()
            used = (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime
            if int(fields[3]) == self._session:  # the server and the workers it forked
                server += used
            elif name == "postgres":
                database += used
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return os.times().elapsed, server, database, children.ru_utime + children.ru_stime
