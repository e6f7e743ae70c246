"""On a real uvicorn, big bodies pass through the bridge without being held, a stream's first
byte leaves at once, and an abandoned stream's generator is closed within a second."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_streams_keep_memory_flat_start_at_once_and_close_when_left(tmp_path):
    figures_file = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, "bench/stream_probes.py", "--json", str(figures_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = json.loads(figures_file.read_text())
    # Held whole, a 100 MiB upload or a 200 MiB file would add at least that much.
    for probe in ("upload_sync_view", "upload_async_view", "send_file"):
        assert figures[probe]["peak_growth_mib"] < 40, (probe, figures[probe])
    for probe in ("sync_generator", "async_generator"):
        assert figures[probe]["first_byte_ms"] < 500, (probe, figures[probe])
        assert 0 <= figures[probe]["closed_after_ms"] < 1000, (probe, figures[probe])
