"""`cnninv design` and its library function: Theorem 3.1's requirement with a measured C
(never a typed-in one), the on-the-spot bracket, and one-line errors."""

import contextlib
import io
import json
import math

import pytest

from cnninv.cli import main
from cnninv.theory import theorem31_condition
from cnninv.theory.design import (
    SHIPPED_CONSTANT,
    constant_record,
    design_layer,
    load_constant,
)
from cnninv.theory.phase import fit_constant

SIZES = dict(K=96, M=32, ell=5, D=32, k=10)


def _call(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def _fake_result(points):
    fit = fit_constant([p for p in points if p["delta_lower"] < 1])
    return {"experiment": "phase-transition", "points": points, "fit": fit,
            "config": {"seed": 0, "quick": False}, "cnninv_version": "test"}  # fmt: skip


def test_requirement_is_theorem31s_with_the_given_constant():
    r = design_layer(**SIZES, delta=0.4, eps=0.05, constant=0.2, measure=False)
    thm = theorem31_condition(**SIZES, delta=0.4, eps=0.05, C=0.2)
    c = r["measured_constant"]["C"]
    assert c["required_ratio"] == pytest.approx(thm.required)
    assert c["min_M"] == thm.min_channels and c["satisfied"] == thm.satisfied
    assert r["theorem31"]["required_ratio_over_C"] * 0.2 == pytest.approx(thm.required)
    assert c["predicted_delta_k"] == pytest.approx(math.sqrt(0.2 * r["theorem31"]["x"]))
    assert r["measured_constant"]["source"]["kind"] == "given by the caller"


def test_measured_constant_comes_from_a_result_and_is_checked(tmp_path):
    pts = [{"x": x, "delta_lower": math.sqrt(0.25 * x)} for x in (0.5, 1.0, 2.0, 3.0)]
    pts.append({"x": 9.0, "delta_lower": 2.0})  # δ ≥ 1: outside the theorem, not fitted
    path = tmp_path / "phase_transition.json"
    path.write_text(json.dumps(_fake_result(pts)))
    rec = load_constant(path)
    assert rec["fit"]["C"] == pytest.approx(0.25) and len(rec["points"]) == 4
    assert rec["provenance"]["command"] == "cnninv reproduce phase-transition"
    r = design_layer(**SIZES, constant=rec, measure=False)
    assert r["measured_constant"]["C"]["C"] == pytest.approx(0.25)
    # a record whose C is not the fit of its points is refused
    bad = constant_record(_fake_result(pts))
    bad["fit"]["C"] = 0.01
    (tmp_path / "edited.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="not the fit of the points"):
        load_constant(tmp_path / "edited.json")
    with pytest.raises(ValueError, match="neither"):
        (tmp_path / "other.json").write_text("[1]")
        load_constant(tmp_path / "other.json")


def test_the_shipped_constant_is_a_full_phase_transition_fit():
    assert SHIPPED_CONSTANT.is_file()
    rec = load_constant()  # refits its points: the shipped C is the computed one
    prov = rec["provenance"]
    assert prov["command"] == "cnninv reproduce phase-transition"  # the full grid, not --quick
    assert not prov["config"]["quick"] and len(prov["result_sha256"]) == 64
    assert rec["fit"]["C_low"] <= rec["fit"]["C"] <= rec["fit"]["C_high"]


def test_measured_bracket_at_the_figure2_size():
    r = design_layer(**SIZES, constant=None, samples=100)
    md = r["measured_delta"]
    assert "measured_constant" not in r
    assert md["delta_k"]["lower_search"] <= md["delta_k"]["upper_babel"]
    assert md["delta_2k"]["lower_search"] >= md["delta_k"]["lower_search"]
    # the fig2 layer: δ_k > 0.3 is attained, so it does not meet δ = 0.3
    assert md["meets_delta"] is False and md["delta_k"]["lower_search"] > 0.3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--D", "30", "--stride", "2"], "not an integer"),
        (["--k", "97"], "larger than the number of blocks"),
        (["--delta", "1.0"], "must be in (0, 1)"),
        (["--delta", "0"], "must be in (0, 1)"),
        (["--eps", "nan"], "must be in (0, 1)"),
        (["--C", "-2"], "--C must be"),
        (["--C", "inf"], "--C must be"),
        (["--C", "/no/such/file.json"], "not 'fitted', a number"),
        (["--ell", "40"], "not an integer"),
        (["--K", "0"], "out of range"),
    ],
)
def test_cli_bad_sizes_are_one_line_exit_2(extra, message):
    argv = ["design", "--K", "96", "--M", "32", "--ell", "5", "--D", "32", "--k", "10"]
    for i in range(0, len(extra), 2):  # replace or add
        if extra[i] in argv:
            argv[argv.index(extra[i]) + 1] = extra[i + 1]
        else:
            argv += extra[i : i + 2]
    rc, out, err = _call([*argv, "--no-measure"])
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert message in err and "Traceback" not in err


def test_cli_text_and_json():
    argv = ["design", "--K", "16", "--M", "8", "--ell", "3", "--D", "12", "--k", "2",
            "--samples", "30"]  # fmt: skip
    rc, out, _ = _call(argv)
    assert rc == 0 and "Theorem 3.1" in out and "Measured C =" in out and "δ_k ∈" in out
    rc, out, _ = _call([*argv, "--json", "--C", "0.5"])
    r = json.loads(out)
    assert rc == 0 and r["measured_constant"]["C"]["C"] == 0.5
    assert r["layer"]["n"] == 10 and r["measured_delta"]["k"] == 2
