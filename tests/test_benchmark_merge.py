"""``run_all.py --merge`` joining parts of the experiments benchmark: a run that left two
experiments out (``--skip``) and ``--only`` runs of them make one (a), whose total is the
sum of the parts and which no longer says anything was left out."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
bench_experiments = pytest.importorskip("bench_experiments")


def _row(wall: float) -> dict:
    return {
        "wall_s": wall,
        "stages_s": {"convolutions": wall / 2},
        "flops": {"nominal": 1e9, "executed": 1e9},
        "peak_rss_bytes": 1e8,
        "matmul_gflops": 50.0,
        "arithmetic_s": 0.02,
        "vs_arithmetic": wall / 0.02,
    }


def _machine(start: float, end: float) -> dict:
    return {
        "device": "cpu", "cpu_model": "test CPU", "cpu_count": 2, "torch_version": "x",
        "torch_threads": 1, "numpy_version": "y", "numpy_blas": "z", "thread_env": {},
        "load_average_1m_at_start": start, "load_average_1m": end,
    }  # fmt: skip


def _result(names: list[str], walls: list[float], **extra) -> dict:
    return {
        "benchmark": "experiments",
        "config": {
            "quick": False,
            "threads": 1,
            "device": "cpu",
            "compare": [] if extra.get("only") else ["fig2"],
        },
        "all": {
            "names": names,
            "errors": {},
            "total_s": sum(walls),
            "process_wall_s": sum(walls) + 1,
            "import_s": 1.0,
            "matmul_gflops": 50.0,
            "decoders_in_cache": ["d1"],
            "experiments": {n: _row(w) for n, w in zip(names, walls, strict=True)},
        },
        "compare": {"baseline": "git archive abc", "rows": {}},
        "threads": {"default_threads": 1, "cpus": 2, "rows": []},
        "machine": _machine(0.5, 0.7),
        **extra,
    }


def test_only_runs_join_the_run_that_left_them_out():
    full = _result(["fig2", "fig3"], [10.0, 20.0], left_out=["table4-image", "switches"])
    a = _result(["table4-image"], [100.0], only=["table4-image"])
    b = _result(["switches"], [200.0], only=["switches"])
    before = copy.deepcopy(full)
    merged = bench_experiments.merge(bench_experiments.merge(full, a), b)
    assert full == before  # the inputs are not changed
    assert merged["all"]["names"] == ["fig2", "fig3", "table4-image", "switches"]
    assert set(merged["all"]["experiments"]) == {"fig2", "fig3", "table4-image", "switches"}
    assert merged["all"]["total_s"] == pytest.approx(330.0)
    assert "left_out" not in merged
    assert [p["names"] for p in merged["all"]["parts"]] == [
        ["fig2", "fig3"], ["table4-image"], ["switches"]
    ]  # fmt: skip
    row = next(r for r in bench_experiments.targets(merged) if "end to end" in r["name"])
    assert "5.5 min" in row["measured"] and "the sum of 3 runs" in row["measured"]
    assert "left out" not in row["measured"]
    text = bench_experiments.render(merged)
    assert "the sum of 3 runs" in text and "run 3: 1 experiment(s) (switches)" in text


def test_an_only_run_given_first_still_joins_and_a_missing_one_stays_left_out():
    full = _result(["fig2"], [10.0], left_out=["table4-image", "switches"])
    a = _result(["table4-image"], [100.0], only=["table4-image"])
    merged = bench_experiments.merge(a, full)
    assert merged["left_out"] == ["switches"]
    assert merged["all"]["total_s"] == pytest.approx(110.0)
    assert merged["compare"] == full["compare"]  # (b) and (c) are the full run's
    row = next(r for r in bench_experiments.targets(merged) if "end to end" in r["name"])
    assert "without switches" in row["measured"]


def test_two_full_runs_later_wins():
    first = _result(["fig2"], [10.0])
    second = _result(["fig2"], [12.0])
    assert bench_experiments.merge(first, second) is second
    assert bench_experiments.merge(None, second) is second


def test_an_only_run_of_an_experiment_already_there_replaces_its_row():
    full = _result(["fig2", "delta"], [10.0, 300.0], left_out=["switches"])
    again = _result(["delta"], [250.0], only=["delta"])
    merged = bench_experiments.merge(full, again)
    assert merged["all"]["names"] == ["fig2", "delta"]
    assert merged["all"]["experiments"]["delta"]["wall_s"] == 250.0
    assert merged["all"]["total_s"] == pytest.approx(260.0)  # 310 - 300 + 250
    assert merged["left_out"] == ["switches"]
    assert merged["all"]["parts"][1]["replaces"] == ["delta"]
    assert "replaces the earlier row of delta" in bench_experiments.render(merged)
    row = next(r for r in bench_experiments.targets(merged) if "end to end" in r["name"])
    assert "4.3 min" in row["measured"] and "delta re-measured" in row["measured"]
