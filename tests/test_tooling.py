"""The developer's tools say the same as CI: pre-commit runs exactly what `make lint` runs, and
constraints.txt is what `uv pip compile` resolves from the pyproject files."""

import importlib.util
import json
import re
import subprocess
import sys

import pytest
import yaml
from support.processes import ROOT


def make_lint_commands():
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, "no lint target in the Makefile"
    commands = [line.strip().replace("$(BIN)/", ".venv/bin/") for line in recipe[1].splitlines()]
    return [command.replace("$(LIB)", "flask-greenlet").removesuffix(" .") for command in commands]


def test_pre_commit_runs_what_make_lint_runs():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    assert [hook["entry"] for hook in hooks] == make_lint_commands()
    valid = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config"], cwd=ROOT, capture_output=True
    )
    assert valid.returncode == 0, valid.stdout + valid.stderr


@pytest.mark.processes
def test_constraints_are_what_uv_resolves_from_the_pyproject_files():
    """A dependency added to a pyproject.toml without `make lock` fails here; uv keeps the pins
    it is given, so only a missing or contradicted pin is a difference."""
    check = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "lock.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def load_bench_module(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cost_check_fails_only_on_a_rise_beyond_ten_percent():
    cost = load_bench_module("cost")
    baseline = {"GET /api/posts": 1_000_000, "POST /api/posts": 2_000_000}
    within = {"GET /api/posts": 1_099_000, "POST /api/posts": 1_500_000}
    beyond = {"GET /api/posts": 1_101_000, "POST /api/posts": 2_000_000}
    assert cost.too_costly(within, baseline) == []
    (complaint,) = cost.too_costly(beyond, baseline)
    assert complaint.startswith("GET /api/posts: 1,101,000") and "+10.1%" in complaint


def test_the_committed_cost_baseline_names_every_hot_endpoint():
    cost = load_bench_module("cost")
    baseline = json.loads((ROOT / "bench" / "cost-baseline.json").read_text())
    assert set(baseline) == set(cost.ENDPOINTS)
    assert all(isinstance(count, int) and count > 100_000 for count in baseline.values())
