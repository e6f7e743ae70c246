"""The developer's tools say the same as CI: pre-commit runs exactly what `make lint` runs, and
constraints.txt is what `uv pip compile` resolves from the pyproject files; the bench's cost
check and saved baselines fail a run exactly where they say they do."""

import importlib.util
import json
import re
import subprocess
import sys
import time
from types import SimpleNamespace

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
    sys.modules[spec.name] = module  # where its dataclasses look themselves up
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


def test_the_breakdown_has_a_module_for_every_variant_and_subtracts_the_named_row():
    breakdown = load_bench_module_with_neighbours("breakdown")
    variants = set(breakdown.VARIANTS) - {"microblog"}
    assert {path.stem for path in (ROOT / "bench" / "breakdown").glob("b_*.py")} == variants
    counted = dict.fromkeys(breakdown.VARIANTS, 500_000) | {"microblog": 800_000}
    table = breakdown.render(counted)
    assert "| a connection turn, no statement (`b_turn_only`) | 500,000 | 300,000 |" in table


def load_bench_module_with_neighbours(name):
    sys.path.insert(0, str(ROOT / "bench"))  # it imports its neighbours as the bench runs them
    try:
        return load_bench_module(name)
    finally:
        sys.path.remove(str(ROOT / "bench"))


def load_bench_baseline():
    return load_bench_module_with_neighbours("baseline")


def wrk_runs(ours, fastapi_fast):
    """Per-round req/s of two stacks on one endpoint, as the bench's rounds hold them."""
    as_runs = [[SimpleNamespace(rps=rps) for rps in figures] for figures in (ours, fastapi_fast)]
    return {
        ("microblog", "GET /api/posts"): as_runs[0],
        ("fastapi_fast", "GET /api/posts"): as_runs[1],
    }


def test_a_saved_bench_run_fails_a_later_one_only_below_its_own_range(tmp_path):
    baseline = load_bench_baseline()
    saved = tmp_path / "baseline.json"
    # Two saved runs: ratios 1.30, 1.20, 1.25 and 1.28, 1.22, 1.26 (range 0.10 on 1.255).
    baseline.save(saved, "one", baseline.metrics_of(wrk_runs([1300, 1200, 1250], [1000] * 3)))
    assert (
        baseline.save(saved, "two", baseline.metrics_of(wrk_runs([1280, 1220, 1260], [1000] * 3)))
        == 2
    )
    runs = baseline.load(saved)

    def verdict(ours):
        (found,) = baseline.compare(runs, baseline.metrics_of(wrk_runs(ours, [2000] * 3)))
        assert found.metric == "GET /api/posts ÷ fastapi_fast"
        return found

    within = verdict([2380, 2300, 2320])  # 1.16: 7.6 % down, inside the 8 % range
    assert within.judged and not within.dropped
    beyond = verdict([2200, 2300, 2260])  # 1.13: 10 % down
    assert beyond.dropped and "**DROP**" in baseline.comparison_table(saved, 2, [beyond])


def test_a_baseline_saved_from_one_round_judges_nothing(tmp_path):
    baseline = load_bench_baseline()
    saved = tmp_path / "baseline.json"
    baseline.save(saved, "quick", baseline.metrics_of(wrk_runs([1300], [1000])))
    (found,) = baseline.compare(baseline.load(saved), baseline.metrics_of(wrk_runs([500], [1000])))
    assert not found.judged and not found.dropped


def test_the_cpu_meter_counts_the_servers_session_and_the_load_apart():
    cpu = load_bench_module_with_neighbours("cpu")
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < {}: pass\n"
    server = subprocess.Popen(
        [sys.executable, "-c", burn.format(0.6) + "time.sleep(30)"], start_new_session=True
    )
    try:
        meter = cpu.CpuMeter(server.pid)
        meter.start()
        subprocess.run([sys.executable, "-c", burn.format(0.3)], check=True, timeout=30)
        time.sleep(1.0)  # the server's burn ends meanwhile
        shares = meter.stop()
    finally:
        server.kill()
        server.wait()
    assert 0.4 <= shares.server <= 0.8
    assert 0.25 <= shares.load <= 0.6  # the child's burn, and its interpreter's start
    assert shares.idle <= shares.seconds * shares.cores
