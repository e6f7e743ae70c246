"""Running the locust kit (``loadtest/run.py`` and friends) as its users do, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .processes import ROOT

RUN_TIMEOUT_S = 180


def run_kit(
    env: dict[str, str], *args: str, script: str = "run.py"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "loadtest" / script), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


def results_folder(output: str) -> Path:
    """The folder the run's last line names: its report, CSV and ledger."""
    line = next(line for line in output.splitlines() if line.startswith("LOADTEST "))
    return Path(line.rsplit(" in ", 1)[1])
