"""Flask's own test suite (and its flaskr tutorial) passes through the bridge as on Flask."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_flasks_own_tests_pass_bridged_as_they_pass_on_plain_flask(tmp_path):
    summary_file = tmp_path / "summary.json"
    run = subprocess.run(
        [sys.executable, "tools/flask_conformance/run.py", "--json", str(summary_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    summary = json.loads(summary_file.read_text())
    assert summary["unexpected"] == []
    assert summary["stale_excuses"] == []
    flask, flaskr = summary["suites"]["flask"], summary["suites"]["flaskr"]
    assert flask["plain"]["passed"] > 400  # the whole suite ran, not a stray file
    assert flaskr["plain"]["passed"] >= 20
    excused = len(summary["excused"])
    for suite in (flask, flaskr):
        for mode in ("test_client", "asgi"):
            assert suite[mode]["passed"] >= suite["plain"]["passed"] - excused
