"""Other people's suites (Flask's, its tutorial's, six extensions', a real app's) pass through
the bridge as they pass on plain Flask, with every exception listed and explained."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1]
SUITES = tomllib.loads((LIBRARY / "conformance" / "suites.toml").read_text())
# How many tests of each suite at least pass on plain Flask here: a suite that stops being
# collected (a moved folder, a missing plugin) must not pass as "nothing differs".
AT_LEAST_PASSING = {
    "flask": 480,
    "flaskr": 24,
    "flask-login": 110,
    "flask-wtf": 80,
    "flask-cors": 95,
    "flask-caching": 250,
    "flask-limiter": 100,
    "flask-sqlalchemy": 440,
    "ihatemoney": 140,
}


def test_every_suite_passes_bridged_as_it_passes_on_plain_flask(tmp_path):
    summary_file = tmp_path / "summary.json"
    run = subprocess.run(
        [sys.executable, "conformance/run.py", "--json", str(summary_file)],
        cwd=LIBRARY,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    summary = json.loads(summary_file.read_text())
    assert summary["unexpected"] == []
    assert summary["stale_excuses"] == []
    assert set(summary["suites"]) == set(SUITES) == set(AT_LEAST_PASSING)
    for name, counts in summary["suites"].items():
        assert counts["plain"]["passed"] >= AT_LEAST_PASSING[name], name
        for mode in ("test_client", "asgi"):
            assert counts[mode]["passed"] >= counts["plain"]["passed"] - counts["excused"], name
    # Without an ASGI server a request runs in the caller's thread, as on plain Flask:
    # nothing at all differs there.
    assert not [e for e in summary["excused"] if e["test"].startswith("test_client ")]
