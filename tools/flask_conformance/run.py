"""Flask's own test suite, run on plain Flask and then through the bridge.

Fetches the source distribution of the installed Flask with pip, builds a virtual environment
with the test tools Flask's maintainers lock, and runs the sdist's ``tests/`` and
``examples/tutorial`` (flaskr) three times: on plain Flask (the baseline), with every app an
``AsyncFlask`` driven through ``test_client()``, and with every request going through the ASGI
adapter. Every test that passes on plain Flask must pass bridged, unless it is listed, with
its reason, in ``known_differences.txt``.

    python tools/flask_conformance/run.py [--json summary.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tomllib
import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MODES = {"plain": None, "test_client": "as_async_flask", "asgi": "through_asgi"}
SUITES = {"flask": ".", "flaskr": "examples/tutorial"}  # where to run pytest, for its config
# Not run bridged at all, with the reason; the run reports them beside the known differences.
NOT_RUN_BRIDGED = {
    "tests/test_reqctx.py::TestGreenletContextCopying": (
        "builds greenlets inside a sync view, which the bridge runs on a worker thread, and "
        "runs them on the main thread; collecting them later crashes the interpreter in "
        "greenlet's own code (one run in three), so they are left out rather than flaky"
    ),
}
LOCKED_TEST_TOOLS = ("pytest", "asgiref", "python-dotenv")
RUNTIME = (
    "flask",
    "werkzeug",
    "jinja2",
    "itsdangerous",
    "click",
    "blinker",
    "markupsafe",
    "greenlet",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the summary here too")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "flask-conformance")
    args = parser.parse_args()

    flask_version = version("flask")
    work = args.cache / flask_version
    source = fetch_sdist(flask_version, work)
    python = build_venv(work, source)
    path = import_path(work)
    outcomes = {
        (suite, mode): run_suite(
            python, path, source / folder, plugin, work / "results" / f"{suite}-{mode}.xml"
        )
        for suite, folder in SUITES.items()
        for mode, plugin in MODES.items()
    }
    summary = compare(outcomes, known_differences())
    summary["flask"] = flask_version
    print(report(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


def fetch_sdist(flask_version: str, work: Path) -> Path:
    """The unpacked sdist of ``flask_version``, downloaded once into ``work``."""
    source = work / f"flask-{flask_version}"
    if source.is_dir():
        return source
    work.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
    subprocess.run([*pip, "--dest", str(work), f"flask=={flask_version}"], check=True)
    with tarfile.open(work / f"flask-{flask_version}.tar.gz") as archive:
        archive.extractall(work, filter="data")
    return source


def build_venv(work: Path, source: Path) -> Path:
    """A virtual environment with our pinned runtime and Flask's locked test tools."""
    venv = work / "venv"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pins = [f"{name}=={version(name)}" for name in RUNTIME]
    pins += locked_versions(source / "uv.lock", LOCKED_TEST_TOOLS)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pins], check=True)
    marker.touch()
    return python


def locked_versions(lock: Path, names: tuple[str, ...]) -> list[str]:
    """The newest version of each of ``names`` in Flask's ``uv.lock``."""
    packages = tomllib.loads(lock.read_text())["package"]
    newest: dict[str, tuple[int, ...]] = {}
    for package in packages:
        if package["name"] in names:
            number = tuple(int(part) for part in package["version"].split(".") if part.isdigit())
            newest[package["name"]] = max(newest.get(package["name"], ()), number)
    return [f"{name}=={'.'.join(map(str, number))}" for name, number in newest.items()]


def import_path(work: Path) -> str:
    """Only the bridge and the plugins, never the microblog (whose package is called app)."""
    shelf = work / "path"
    shelf.mkdir(exist_ok=True)
    link = shelf / "flask_greenlet"
    if not link.exists():
        link.symlink_to(ROOT / "src" / "flask_greenlet")
    return f"{shelf}:{HERE}"


def run_suite(
    python: Path, path: str, folder: Path, plugin: str | None, xml: Path
) -> dict[str, str]:
    """Each test's outcome (passed, failed or skipped) in one pytest run of ``folder``."""
    xml.parent.mkdir(parents=True, exist_ok=True)
    command = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}"]
    if plugin:
        command += ["-p", plugin]
        command += [f"--deselect={node}" for node in NOT_RUN_BRIDGED]
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{path}:{folder}", "HOME": str(folder)}
    subprocess.run(
        command, cwd=folder, env=environment, timeout=900, check=False, stdout=subprocess.DEVNULL
    )
    return read_junit(xml)


def read_junit(xml: Path) -> dict[str, str]:
    outcomes = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("skipped") is not None:
            outcomes[name] = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            outcomes[name] = "failed"
        else:
            outcomes[name] = "passed"
    return outcomes


def known_differences() -> dict[str, str]:
    """``mode suite test`` -> the reason it may differ, from ``known_differences.txt``."""
    known = {}
    for line in (HERE / "known_differences.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, reason = line.partition("  ")
            known[key.strip()] = reason.strip()
    return known


def compare(outcomes: dict[tuple[str, str], dict[str, str]], known: dict[str, str]) -> dict:
    summary: dict = {"suites": {}, "unexpected": [], "excused": [], "stale_excuses": []}
    used = set()
    for suite in SUITES:
        baseline = outcomes[(suite, "plain")]
        passing = {name for name, outcome in baseline.items() if outcome == "passed"}
        counts = {"plain": _count(baseline)}
        for mode in MODES:
            if mode == "plain":
                continue
            result = outcomes[(suite, mode)]
            counts[mode] = _count(result)
            for name in sorted(passing):
                if result.get(name) == "passed":
                    continue
                key = f"{mode} {suite} {name}"
                left_out = _left_out(suite, name)
                if left_out:
                    summary["excused"].append({"test": key, "reason": f"not run: {left_out}"})
                elif key in known:
                    used.add(key)
                    summary["excused"].append({"test": key, "reason": known[key]})
                else:
                    summary["unexpected"].append(
                        {"test": key, "outcome": result.get(name, "missing")}
                    )
        summary["suites"][suite] = counts
    summary["stale_excuses"] = sorted(set(known) - used)
    summary["ok"] = (
        not summary["unexpected"]
        and not summary["stale_excuses"]
        and all(counts["plain"]["passed"] > 0 for counts in summary["suites"].values())
    )
    return summary


def _left_out(suite: str, name: str) -> str | None:
    """Why the junit test ``name`` was not run bridged, if it is in ``NOT_RUN_BRIDGED``."""
    for node, reason in NOT_RUN_BRIDGED.items():
        path, _, rest = node.partition("::")
        dotted = path.removesuffix(".py").replace("/", ".") + (f".{rest}" if rest else "")
        if name.startswith(dotted):
            return reason
    return None


def _count(outcomes: dict[str, str]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for outcome in outcomes.values():
        counts[outcome] += 1
    return counts


def report(summary: dict) -> str:
    lines = [f"Flask {summary['flask']} test suite, plain and bridged"]
    for suite, counts in summary["suites"].items():
        for mode, c in counts.items():
            lines.append(
                f"  {suite:7} {mode:12} {c['passed']:4} passed"
                f" {c['failed']:3} failed {c['skipped']:3} skipped"
            )
    for entry in summary["excused"]:
        lines.append(f"  excused: {entry['test']}: {entry['reason']}")
    for entry in summary["unexpected"]:
        lines.append(f"  UNEXPECTED: {entry['test']} ({entry['outcome']})")
    for key in summary["stale_excuses"]:
        lines.append(f"  STALE excuse (passes now, or no longer exists): {key}")
    lines.append("OK" if summary["ok"] else "FAILED")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
