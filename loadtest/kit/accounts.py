"""The accounts users sign in with: the CSV that ``flask seed --credentials`` writes."""

from __future__ import annotations

import csv
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple


class Account(NamedTuple):
    username: str
    password: str


class Accounts:
    """Hands out the seeded accounts in turn; loaded on first use."""

    def __init__(self) -> None:
        self._cycle: Iterator[Account] | None = None
        self._lock = threading.Lock()

    def load(self, path: str) -> None:
        with Path(path).open(newline="") as file:
            accounts = [Account(row["username"], row["password"]) for row in csv.DictReader(file)]
        if not accounts:
            raise ValueError(f"{path} lists no accounts: run flask seed --credentials {path}")
        self._cycle = itertools.cycle(accounts)

    def next(self) -> Account:
        if self._cycle is None:
            raise RuntimeError("no accounts loaded: pass --credentials FILE")
        with self._lock:
            return next(self._cycle)


ACCOUNTS = Accounts()
