"""The ledger: what the kit sent and what the app acknowledged, gathered on one process.

Users call ``LEDGER.record(...)`` wherever they run. On a worker the records wait in a buffer
that rides along with every stats report to the master; on the master (or a single local
process) they land in memory and in a JSON-lines file. When a test stops, the master asks
every worker to stop its users and send what is left, and waits for each answer, so the
verdict never judges a ledger with records still on the wire. Locust fires ``test_stop`` on
the master and on each worker, sometimes more than once; every step here is safe to repeat.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from pathlib import Path
from typing import Any, TextIO

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from .observe import newest_post_id

log = logging.getLogger("loadtest.ledger")
FINAL_WAIT_S = 30.0


def new_key() -> str:
    """A key no other write of any process or run will carry."""
    return f"lt-{secrets.token_hex(8)}"


class Ledger:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._pending: list[dict[str, Any]] = []
        self._is_worker = False
        self._file: TextIO | None = None
        self._awaiting: set[str] = set()

    def record(self, kind: str, **fields: Any) -> None:
        record = {"kind": kind, **fields}
        if self._is_worker:
            self._pending.append(record)
        else:
            self._keep([record])

    def install(self, environment: Environment, path: str | None) -> None:
        runner = environment.runner
        events = environment.events
        if isinstance(runner, WorkerRunner):
            self._is_worker = True
            events.report_to_master.add_listener(self._ship_with_report)
            runner.register_message("ledger_stop", self._stop_and_send_the_rest)
            return
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the run)
        events.test_start.add_listener(self._record_baseline)
        if isinstance(runner, MasterRunner):
            events.worker_report.add_listener(self._receive_report)
            runner.register_message("ledger_final", self._receive_final)
            events.test_stop.add_listener(self._gather_from_workers)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _keep(self, records: list[dict[str, Any]]) -> None:
        self.records.extend(records)
        if self._file is not None:
            self._file.writelines(json.dumps(record) + "\n" for record in records)
            self._file.flush()

    def _record_baseline(self, environment: Environment, **_: Any) -> None:
        if not any(record["kind"] == "baseline" for record in self.records):
            self._keep([{"kind": "baseline", "post_id": newest_post_id(environment.host)}])

    # worker side
    def _ship_with_report(self, client_id: str, data: dict[str, Any]) -> None:
        data["ledger"], self._pending = self._pending, []

    def _stop_and_send_the_rest(self, environment: Environment, msg: Any, **_: Any) -> None:
        environment.runner.stop()  # in-flight writes end here, unacknowledged
        rest, self._pending = self._pending, []
        environment.runner.send_message("ledger_final", rest)

    # master side
    def _receive_report(self, client_id: str, data: dict[str, Any]) -> None:
        self._keep(data.get("ledger", []))

    def _receive_final(self, environment: Environment, msg: Any, **_: Any) -> None:
        self._keep(msg.data or [])
        self._awaiting.discard(msg.node_id)

    def _gather_from_workers(self, environment: Environment, **_: Any) -> None:
        runner = environment.runner
        self._awaiting = {worker.id for worker in runner.clients.all}
        for worker_id in self._awaiting:
            runner.send_message("ledger_stop", None, client_id=worker_id)
        deadline = time.monotonic() + FINAL_WAIT_S
        while self._awaiting and time.monotonic() < deadline:
            gevent.sleep(0.05)
        if self._awaiting:
            log.error(
                "no final ledger from workers %s: the verdict will miss their writes",
                sorted(self._awaiting),
            )
            self.record("missing_workers", ids=sorted(self._awaiting))


LEDGER = Ledger()
