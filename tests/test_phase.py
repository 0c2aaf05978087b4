"""Theorem 3.1 measured: its scaling variable, one grid point, the fit of C, and the
phase-transition experiment on Dask (resumable per point)."""

import math
import random
import statistics

import pytest
import torch

from cnninv.theory import theorem31_condition
from cnninv.theory.phase import fit_constant, phase_point, scaling_variable

SPEC = dict(M=8, ell=3, D=12, K=6, k=2, t=1, eps=0.01, seed=0, samples=30, starts=1, sweeps=5,
            trials=40, iters=60)  # fmt: skip


def test_scaling_variable_is_theorem31s():
    """δ² = C x is Theorem 3.1's condition with equality: required(C, δ) / ratio = C x / δ²."""
    for kw in (dict(M=32, ell=5, D=32, K=96, k=10, t=1), dict(M=3, ell=4, D=22, K=7, k=3, t=2)):
        x = scaling_variable(**kw, eps=0.05)
        thm = theorem31_condition(
            **{k: v for k, v in kw.items() if k != "t"}, stride=kw["t"], delta=0.4, eps=0.05,
            C=0.7,
        )  # fmt: skip
        assert thm.required / thm.ratio == pytest.approx(0.7 * x / 0.4**2)
    with pytest.raises(ValueError, match="no integer n"):
        scaling_variable(M=1, ell=4, D=10, K=3, k=1, t=4)
    with pytest.raises(ValueError, match="k=5 exceeds"):
        scaling_variable(M=1, ell=4, D=10, K=3, k=5)
    with pytest.raises(ValueError, match="eps"):
        scaling_variable(M=1, ell=4, D=10, K=3, k=1, eps=1.0)


def test_phase_point_measures_a_bracket_and_recovery():
    p = phase_point(SPEC)
    assert p["n"] == 10 and p["x"] == pytest.approx(scaling_variable(**{
        k: SPEC[k] for k in ("M", "ell", "D", "K", "k", "t", "eps")}))  # fmt: skip
    assert 0 <= p["delta_lower_random_codes"] <= p["delta_lower_sampled"] <= p["delta_lower"]
    assert p["delta_lower"] <= p["delta_upper"]
    assert 0 <= p["success_1"] <= p["success_conv"] <= 1  # iterating never loses here
    assert p == {**phase_point(SPEC), "seconds": p["seconds"]}  # same seed, same numbers


def test_phase_point_recovery_against_a_hand_count():
    """success_1 is the fraction of planted supports that one feed-forward layer finds."""
    from cnninv.operators import ConvOperator
    from cnninv.recovery import iht
    from cnninv.theory import sample_model_sparse

    p = phase_point(SPEC)
    W = ConvOperator.gaussian(6, 8, 3, 12, 1, seed=0, dtype=torch.float64)
    gen = torch.Generator().manual_seed(2)
    z = sample_model_sparse(40, W.out_shape, 2, generator=gen, dtype=torch.float64)
    found = iht(W, W.T(z), 2, max_iter=1).z != 0
    hits = sum(bool(torch.equal(found[i], z[i] != 0)) for i in range(40))
    assert p["success_1"] == hits / 40


def test_fit_constant_recovers_a_planted_line():
    xs = [0.5, 1.0, 2.0, 4.0]
    pts = [{"x": x, "delta_lower": math.sqrt(0.3 * x)} for x in xs]
    fit = fit_constant(pts)
    assert fit["C"] == pytest.approx(0.3) and fit["loglog_slope"] == pytest.approx(1.0)
    assert fit["C_low"] == pytest.approx(0.3) and fit["C_high"] == pytest.approx(0.3)
    assert fit["C_needed"] == pytest.approx(0.3)
    # delta independent of x (the D slice): slope 0, and C_needed is the largest ratio
    flat = fit_constant([{"x": x, "delta_lower": 0.5} for x in xs])
    assert flat["loglog_slope"] == pytest.approx(0.0, abs=1e-12)
    assert flat["C_needed"] == pytest.approx(0.25 / 0.5)
    assert flat["C_low"] <= flat["C"] <= flat["C_high"]
    with pytest.raises(ValueError, match="at least two points"):
        fit_constant(pts[:1])


def test_loglog_slope_is_the_same_bits_whatever_the_order():
    # the fit of a resumed run (points read back from disk) must equal the first run's to
    # the bit; LAPACK's lstsq once differed in the last bit between two calls (alignment)
    rng = random.Random(5)
    pts = [{"x": rng.uniform(0.5, 50), "delta_lower": rng.uniform(0.05, 0.95)} for _ in range(40)]
    a = fit_constant(pts)["loglog_slope"]
    b = fit_constant(list(reversed(pts)))["loglog_slope"]
    c = fit_constant([dict(p) for p in pts])["loglog_slope"]
    assert a == b == c
    lx = [math.log(p["x"]) for p in pts]
    ly = [2 * math.log(p["delta_lower"]) for p in pts]
    oracle = statistics.linear_regression(lx, ly).slope  # independent least squares
    assert a == pytest.approx(oracle, rel=1e-12)


def test_experiment_on_dask_resumes_per_point(tmp_path):
    from cnninv.experiments import get, make_config

    over = {"plane_M": "4,16", "plane_k": "1,2", "slice_M": "", "slice_ell": "",
            "slice_D": "", "slice_K": "", "slice_k": "", "slice_t": "3", "samples": 20,
            "starts": 1, "sweeps": 3, "trials": 20, "iters": 20,
            "points_dir": str(tmp_path / "pts")}  # fmt: skip
    cfg = make_config("phase-transition", overrides=over)
    assert len(cfg.grid()) == 6  # 2x2 plane, the base point, one stride
    r = get("phase-transition").run(cfg)
    assert r["computed_now"] == 6 and r["reused"] == 0
    assert len(list((tmp_path / "pts").glob("*.json"))) == 6
    for p in r["points"]:
        assert {"M", "ell", "D", "K", "k", "t", "delta_lower", "delta_upper", "success_1",
                "success_conv"} <= set(p)  # fmt: skip
    assert {"C", "C_low", "C_high"} <= set(r["fit"]) and r["fit"]["C"] > 0
    again = get("phase-transition").run(cfg)
    assert again["reused"] == 6
    strip = lambda ps: [{k: v for k, v in p.items() if k != "cached"} for p in ps]  # noqa: E731
    assert strip(again["points"]) == strip(r["points"]) and again["fit"] == r["fit"]
    cfg.restart = True
    assert get("phase-transition").run(cfg)["computed_now"] == 6
    with pytest.raises(ValueError, match="no integer n"):
        make_config("phase-transition", overrides={**over, "slice_t": "2"})
