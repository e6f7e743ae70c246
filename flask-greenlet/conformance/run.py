"""Other people's test suites (Flask's own, extensions', a real app's), run plain and bridged.

Each suite in ``suites.toml`` is fetched as a source distribution with pip, given a virtual
environment of its own, and run three times: on plain Flask (the baseline), with every app an
``AsyncFlask`` driven through ``test_client()``, and with every request going through
``ASGIApp``. Every test that passes on plain Flask must pass bridged, unless it is listed, with
its reason, in ``known_differences.txt``; a listed test that no longer differs fails the run
too, so no excuse outlives its cause.

    python conformance/run.py [SUITE ...] [--json summary.json]
    python conformance/run.py --tests-in DIR --python VENV/bin/python   # any other suite
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIBRARY = HERE.parent
MODES = {"plain": None, "test_client": "as_async_flask", "asgi": "through_asgi"}
# The pinned Flask runtime of the environment that runs this, the same in every suite's venv.
RUNTIME = ("flask", "werkzeug", "jinja2", "itsdangerous", "click", "blinker", "markupsafe")
RUNTIME += ("greenlet",)
# Sdists and venvs are named by what they hold, so every checkout on a machine can share them;
# results and the link to this checkout's bridge stay in the checkout.
SHARED_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flask-greenlet"


@dataclass
class Suite:
    name: str
    sdist: str
    cwd: str = "."
    package: str | None = None
    paths: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    install: list[str] = field(default_factory=list)
    locked_tools: list[str] = field(default_factory=list)
    not_run_through_asgi: dict[str, str] = field(default_factory=dict)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", help="names from suites.toml (default: all)")
    parser.add_argument("--json", type=Path, help="write the summary here too")
    parser.add_argument("--cache", type=Path, default=LIBRARY / ".cache" / "conformance")
    parser.add_argument("--venvs", type=Path, default=SHARED_CACHE, help="sdists and venvs")
    parser.add_argument("--tests-in", type=Path, help="run this folder's suite instead")
    parser.add_argument("--python", type=Path, help="with --tests-in: the venv's interpreter")
    args = parser.parse_args()

    if args.tests_in:
        suite = Suite(name=args.tests_in.resolve().name, sdist="", cwd=".")
        outcomes = run_three_ways(suite, args.python, args.tests_in.resolve(), args.cache)
        summary = compare({suite.name: outcomes}, {suite.name: suite}, known_differences())
    else:
        suites = load_suites(args.suites)
        outcomes = run_all(suites, args.cache, args.venvs)
        summary = compare(outcomes, suites, known_differences(), check_stale=not args.suites)
    summary["flask"] = version("flask")
    print(report(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


def run_all(
    suites: dict[str, Suite], cache: Path, shared: Path
) -> dict[str, dict[str, dict[str, str]]]:
    """Every suite three ways, two suites at a time (one a core): venvs first, then the runs."""
    sources = {s.sdist: fetch_sdist(s.sdist, shared / "sdists") for s in suites.values()}
    with ThreadPoolExecutor(2) as pool:
        by_venv = {}
        for suite in suites.values():  # flask and flaskr share one venv: build it once
            by_venv.setdefault(venv_key(suite, sources[suite.sdist]), suite)
        pythons = dict(
            zip(
                by_venv,
                pool.map(
                    lambda s: build_venv(s, sources[s.sdist], shared / "venvs"), by_venv.values()
                ),
                strict=True,
            )
        )
        # Other people's suites use what the machine has under fixed names (Redis at 6379,
        # its keys, flushed between tests): two checkouts' runs take turns, never overlap.
        with held(shared / ".suites-running.lock"):
            runs = {
                name: pool.submit(
                    run_three_ways,
                    suite,
                    pythons[venv_key(suite, sources[suite.sdist])],
                    sources[suite.sdist] / suite.cwd,
                    cache,
                )
                for name, suite in suites.items()
            }
            return {name: run.result() for name, run in runs.items()}


def load_suites(names: list[str]) -> dict[str, Suite]:
    table = tomllib.loads((HERE / "suites.toml").read_text())
    unknown = set(names) - table.keys()
    if unknown:
        raise SystemExit(f"no such suite: {', '.join(sorted(unknown))}")
    return {
        name: Suite(name=name, **spec) for name, spec in table.items() if not names or name in names
    }


@contextmanager
def held(lock: Path) -> Iterator[None]:
    """An exclusive lock on ``lock`` while the block runs: the shared cache serves every
    checkout on the machine, and two test runs at once must not build the same thing twice."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def fetch_sdist(requirement: str, shelf: Path) -> Path:
    """The unpacked sdist of ``requirement`` (no version: the installed one), fetched once."""
    name, _, wanted = requirement.partition("==")
    wanted = wanted or version(name)
    with held(shelf / f".{name}-{wanted}.lock"):
        return _fetch_sdist(name, wanted, shelf)


def _fetch_sdist(name: str, wanted: str, shelf: Path) -> Path:
    shelf.mkdir(parents=True, exist_ok=True)
    unpacked = [p for p in shelf.glob("*") if p.is_dir() and _is_sdist_of(p, name, wanted)]
    if unpacked:
        return unpacked[0]
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
    subprocess.run([*pip, "--dest", str(shelf), f"{name}=={wanted}"], check=True)
    archive = next(a for a in shelf.glob("*.tar.gz") if _is_sdist_of(a, name, wanted))
    # Unpacked beside the shelf and moved in whole: a run stopped halfway leaves no folder
    # that the next one would take for a finished one.
    with tempfile.TemporaryDirectory(dir=shelf, prefix=".unpacking-") as scratch:
        with tarfile.open(archive) as tar:
            top = tar.getnames()[0].split("/")[0]
            tar.extractall(scratch, filter="data")
        os.replace(Path(scratch) / top, shelf / top)
    return shelf / top


def _is_sdist_of(path: Path, name: str, wanted: str) -> bool:
    stem = path.name.removesuffix(".tar.gz").lower().replace("-", "_")
    return stem == f"{name.lower().replace('-', '_')}_{wanted}"


def venv_requirements(suite: Suite, source: Path) -> tuple[list[str], list[str]]:
    """The runtime pins, and everything the suite's venv installs (pins included)."""
    pins = [f"{name}=={version(name)}" for name in RUNTIME]
    pins += locked_versions(source / "uv.lock", suite.locked_tools) if suite.locked_tools else []
    return pins, [*pins, *([suite.package] if suite.package else []), *suite.install]


def venv_key(suite: Suite, source: Path) -> str:
    _, wanted = venv_requirements(suite, source)
    digest = hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:12]
    return f"{suite.sdist.partition('==')[0]}-{digest}"


def build_venv(suite: Suite, source: Path, shelf: Path) -> Path:
    """A virtualenv with the pinned runtime, the suite's package and its test tools."""
    venv = shelf / venv_key(suite, source)
    with held(shelf / f".{venv.name}.lock"):
        return _build_venv(suite, source, venv)


def _build_venv(suite: Suite, source: Path, venv: Path) -> Path:
    pins, wanted = venv_requirements(suite, source)
    python = venv / "bin" / "python"
    if (venv / ".installed").exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    constraints = venv / "runtime-pins.txt"
    constraints.write_text("\n".join(pins) + "\n")
    install = [str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints)]
    subprocess.run([*install, *wanted], check=True)
    (venv / ".installed").touch()
    return python


def locked_versions(lock: Path, names: list[str]) -> list[str]:
    """The newest version of each of ``names`` in a ``uv.lock``."""
    packages = tomllib.loads(lock.read_text())["package"]
    newest: dict[str, tuple[int, ...]] = {}
    for package in packages:
        if package["name"] in names:
            number = tuple(int(part) for part in package["version"].split(".") if part.isdigit())
            newest[package["name"]] = max(newest.get(package["name"], ()), number)
    return [f"{name}=={'.'.join(map(str, number))}" for name, number in newest.items()]


def run_three_ways(
    suite: Suite, python: Path, folder: Path, cache: Path
) -> dict[str, dict[str, str]]:
    """Each mode's outcome of each test: passed, failed or skipped."""
    results = cache / "results"
    results.mkdir(parents=True, exist_ok=True)
    return {
        mode: run_suite(suite, python, folder, plugin, results / f"{suite.name}-{mode}.xml")
        for mode, plugin in MODES.items()
    }


def run_suite(
    suite: Suite, python: Path, folder: Path, plugin: str | None, xml: Path
) -> dict[str, str]:
    """One pytest run of the suite, read back from its junit report."""
    xml.unlink(missing_ok=True)
    command = [str(python), "-m", "pytest", "-q", f"--junitxml={xml}"]
    command += [*suite.args, *suite.paths]
    if plugin:
        command += ["-p", plugin]
    if plugin == MODES["asgi"]:
        command += [f"--deselect={node}" for node in suite.not_run_through_asgi]
    # Only the bridge and the plugins are added to the path, never anything of the microblog.
    environment = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{bridge_shelf(xml.parent.parent)}:{HERE}:{folder}",
        "HOME": str(folder),
    }
    run = subprocess.run(
        command, cwd=folder, env=environment, timeout=900, check=False, capture_output=True
    )
    if not xml.exists():
        tail = (run.stdout + run.stderr).decode(errors="replace")[-3000:]
        raise SystemExit(f"{suite.name}: pytest wrote no report ({run.returncode}):\n{tail}")
    return read_junit(xml)


def bridge_shelf(cache: Path) -> Path:
    """A folder holding only ``flask_greenlet`` (a link to this checkout's), for PYTHONPATH."""
    shelf = cache / "path"
    shelf.mkdir(parents=True, exist_ok=True)
    link = shelf / "flask_greenlet"
    if not link.exists():
        link.symlink_to(LIBRARY / "src" / "flask_greenlet")
    return shelf


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


def compare(
    outcomes: dict[str, dict[str, dict[str, str]]],
    suites: dict[str, Suite],
    known: dict[str, str],
    check_stale: bool = True,
) -> dict:
    summary: dict = {"suites": {}, "unexpected": [], "excused": [], "stale_excuses": []}
    used = set()
    for name, by_mode in outcomes.items():
        baseline = by_mode["plain"]
        passing = {test for test, outcome in baseline.items() if outcome == "passed"}
        counts = {mode: _count(result) for mode, result in by_mode.items()}
        for mode, result in by_mode.items():
            if mode == "plain":
                continue
            for test in sorted(passing):
                if result.get(test) == "passed":
                    continue
                key = f"{mode} {name} {test}"
                left_out = _left_out(suites[name], test) if mode == "asgi" else None
                if left_out:
                    summary["excused"].append({"test": key, "reason": f"not run: {left_out}"})
                elif key in known:
                    used.add(key)
                    summary["excused"].append({"test": key, "reason": known[key]})
                else:
                    summary["unexpected"].append(
                        {"test": key, "outcome": result.get(test, "missing")}
                    )
        counts["excused"] = sum(1 for e in summary["excused"] if e["test"].split()[1] == name)
        summary["suites"][name] = counts
    in_scope = {key for key in known if key.split()[1] in outcomes}
    summary["stale_excuses"] = sorted(in_scope - used) if check_stale else []
    summary["ok"] = (
        not summary["unexpected"]
        and not summary["stale_excuses"]
        and all(counts["plain"]["passed"] > 0 for counts in summary["suites"].values())
    )
    return summary


def _left_out(suite: Suite, test: str) -> str | None:
    """Why the junit test ``test`` was not run through ASGI, if the suite leaves it out."""
    for node, reason in suite.not_run_through_asgi.items():
        path, _, rest = node.partition("::")
        dotted = path.removesuffix(".py").replace("/", ".") + (f".{rest}" if rest else "")
        if test.startswith(dotted):
            return reason
    return None


def _count(outcomes: dict[str, str]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for outcome in outcomes.values():
        counts[outcome] += 1
    return counts


def report(summary: dict) -> str:
    lines = [f"Test suites on Flask {summary['flask']}, plain and through flask-greenlet"]
    for suite, counts in summary["suites"].items():
        for mode in MODES:
            c = counts[mode]
            lines.append(
                f"  {suite:16} {mode:12} {c['passed']:4} passed"
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
