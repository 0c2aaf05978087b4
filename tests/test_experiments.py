import json
import math

import numpy as np
import pytest
import torch

from cnninv.experiments import REGISTRY, get, make_config
from cnninv.io import atomic_write, atomic_write_json
from cnninv.report import build_report


@pytest.fixture(scope="module")
def fig2_small():
    cfg = make_config("fig2", overrides={"samples": 300, "iters": 6, "batch": 128})
    return cfg, get("fig2").run(cfg)


def test_fig2_result_fields(fig2_small):
    _, r = fig2_small
    for key in ("rip_ratio", "gram_ratio", "recon_error"):
        assert {"mean", "p01", "p50", "p99"} <= set(r[key])
        assert r[key]["n"] == 300
        assert r[key]["p01"] <= r[key]["p50"] <= r[key]["p99"]
    assert len(r["iht_recon_error_by_iter"]) == 6
    assert r["config"]["seed"] == 0 and r["config"]["samples"] == 300
    assert r["config"]["ell"] == 5 and r["config"]["K"] == 96 and r["n"] == 28


def test_fig2_iteration_one_is_the_one_layer_error(fig2_small):
    """The first IHT iterate is x_hat = W^T M(Wx, k): its median must equal (c)'s."""
    _, r = fig2_small
    assert r["iht_recon_error_by_iter"][0] == pytest.approx(r["recon_error"]["p50"], rel=1e-5)


def test_fig2_model_rip_holds_for_gaussian_filters(fig2_small):
    _, r = fig2_small
    assert abs(r["rip_ratio"]["p50"] - 1) < 0.05
    assert abs(r["gram_ratio"]["p50"] - 1) < 0.1
    # more iterations help (footnote 4)
    by_iter = r["iht_recon_error_by_iter"]
    assert by_iter[-1] < 0.2 * by_iter[0]


def test_fig2_same_seed_same_numbers(fig2_small):
    cfg, r = fig2_small
    again = get("fig2").run(cfg)
    assert again["samples"]["recon_error"].tolist() == r["samples"]["recon_error"].tolist()
    other = get("fig2").run(make_config("fig2", seed=1, overrides={"samples": 300, "iters": 1}))
    assert other["recon_error"]["p50"] != r["recon_error"]["p50"]


def test_prop1_exact():
    r = get("prop1").run(make_config("prop1", quick=True))
    assert r["max_relative_error"] < 1e-13
    assert r["control_relu_without_negative_pair"] > 0.3  # the pair is what makes it exact
    assert r["control_crelu_gaussian_conv"] > 0.3  # ... and orthonormality


def test_make_config_validation():
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        make_config("nope")
    with pytest.raises(ValueError, match="no parameter 'bogus'"):
        make_config("fig2", overrides={"bogus": 1})
    with pytest.raises(ValueError, match="k=97 exceeds"):
        make_config("fig2", overrides={"k": "97"})
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        make_config("fig2", overrides={"samples": 0})
    with pytest.raises(ValueError, match="not a valid int"):
        make_config("fig2", overrides={"samples": "many"})
    cfg = make_config("fig2", quick=True, overrides={"iters": "7", "unit_norm_rows": "true"})
    assert cfg.iters == 7 and cfg.unit_norm_rows is True and cfg.quick


def test_every_experiment_has_a_quick_config_and_a_renderer():
    from cnninv.report import SECTIONS

    for name in REGISTRY:
        assert name in SECTIONS
        make_config(name, quick=True)
    # every experiment writes its own file
    assert len({exp.json_name for exp in REGISTRY.values()}) == len(REGISTRY)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"

    def boom(p):
        p.write_text("{half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, boom)
    assert list(tmp_path.iterdir()) == []


def test_json_of_tensors_and_nan(tmp_path):
    path = atomic_write_json(tmp_path / "a.json", {"t": torch.tensor([1.0, 2.0]), "x": math.nan})
    assert json.loads(path.read_text()) == {"t": [1.0, 2.0], "x": None}


def _results_zoo():
    """Results of every shape a JSON of ours holds: scalar rows, numeric tables, rows and
    tables with NaN, inf, bools, None or strings (one holding "], ["), tuples, tensors,
    NumPy values, empty and nested containers."""
    return {
        "row": list(range(1000)),
        "floats": [0.5, 1, -2.25e-300, 1e300],
        "table": [[i, i + 1, 2 * i] for i in range(300)],
        "float_table": [[0.1, 2], [3, -4.5]],
        "nan_table": [[0.1, math.nan], [math.inf, 1.0]],
        "bool_table": [[True, 1], [False, 0]],
        "str_table": [["a], [b", "c"], ["d", "e"]],
        "mixed": [1, "a], [b", None, True, 2.5, math.nan, -math.inf],
        "tuples": ((1, 2), (3, (4, 5))),
        "tensor": torch.arange(6.0).view(2, 3),
        "numpy": {"a": np.arange(4), "b": np.float32(1.5), "c": np.int64(7)},
        "empty": {"l": [], "d": {}, "ll": [[], []], "t": ()},
        "nested": [{"x": [[1, 2]], "y": []}, [[[1]]], "s"],
        "psnr": math.inf,
    }


def test_json_text_reads_back_as_the_indented_json():
    """``atomic_write_json``'s layout (scalar rows on one line, tables one row per line,
    by the C encoder) reads back the same values as ``json.dumps(..., indent=2)``."""
    from cnninv.io import json_text, to_jsonable

    data = _results_zoo()
    text = json_text(data)
    assert json.loads(text) == json.loads(json.dumps(to_jsonable(data), indent=2))
    assert json.loads(text)["mixed"] == [1, "a], [b", None, True, 2.5, None, None]
    assert json.loads(text)["str_table"] == [["a], [b", "c"], ["d", "e"]]
    assert '"row": [0, 1, 2, ' in text  # one line
    assert "\n    [1, 2, 2],\n    [2, 3, 4],\n" in text  # one row per line


def test_find_non_finite_names_the_entry_in_rows_and_tables():
    from cnninv.io import find_non_finite

    zoo = _results_zoo()
    assert find_non_finite(zoo) == "/nan_table[0][1]"
    assert find_non_finite({"t": [[1, 2], [3, math.inf]]}) == "/t[1][1]"
    assert find_non_finite({"r": [1, 2.0, math.nan]}) == "/r[2]"
    finite = {k: v for k, v in zoo.items() if "nan" not in k and k != "mixed"}
    assert find_non_finite(finite) is None  # psnr may be inf
    clean = {"row": list(range(10)), "table": [[1, 2.5]], "psnr": math.inf, "s": ["], ["]}
    assert find_non_finite(clean) is None


def test_report_needs_results(tmp_path):
    with pytest.raises(ValueError, match="no experiment results"):
        build_report(tmp_path)


def test_set_parses_tuples_typed_like_the_default():
    from cnninv.experiments.registry import _coerce

    assert _coerce("16,32", (16,), "widths") == (16, 32)
    assert _coerce("0.5, 1", (0.1,), "x") == (0.5, 1.0)
    with pytest.raises(ValueError, match="not a valid int"):
        _coerce("16,a", (16,), "widths")


def test_report_skips_a_result_it_cannot_read(tmp_path):
    """A JSON of another experiment under a known name, or a JSON that is a list, is
    skipped with a warning naming it; the report is still built from the rest."""
    from cnninv.reproduce import reproduce

    reproduce(["prop1"], tmp_path, quick=True, log=lambda m: None)
    prop1 = json.loads((tmp_path / "prop1.json").read_text())
    (tmp_path / "table2.json").write_text(json.dumps({**prop1, "experiment": "table2"}))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.warns(UserWarning) as caught:
        page = build_report(tmp_path).read_text()
    messages = " ".join(str(w.message) for w in caught)
    assert "table2.json" in messages and "binary.json" in messages
    assert prop1["title"] in page and "Table 2" not in page


def test_a_killed_writers_part_file_is_cleaned_up(tmp_path):
    """A SIGKILL during a write leaves `.NAME.PID.*.part`; the next write of NAME removes
    it when that process is gone, and leaves a live writer's part alone."""
    import os
    import subprocess

    pid = subprocess.Popen(["true"])  # a process that has exited
    pid.wait()
    stale = tmp_path / f".out.json.{pid.pid}.abc.part"
    stale.write_bytes(b"")
    live = tmp_path / f".out.json.{os.getpid()}.def.part"
    live.write_bytes(b"")
    atomic_write_json(tmp_path / "out.json", {"a": 1})
    assert not stale.exists() and live.exists()


def test_fig3_lambda_sweep_on_small_layers():
    """Figure 3's λ sweep (the additive function), on toy layers: one row per λ, filters
    and ReLU; sparser codes and worse fits as λ grows; the report's table and note."""
    from cnninv.experiments.fig3 import Config, lambda_sweep
    from cnninv.operators import ConvOperator
    from cnninv.report.theory import fig3_lambda_note, fig3_lambda_table

    g = torch.Generator().manual_seed(0)
    W = ConvOperator.gaussian(8, 4, (3, 3), (6, 6), padding=1, unit_norm_rows=True, seed=1)
    Wr = ConvOperator.gaussian(8, 4, (3, 3), (6, 6), padding=1, unit_norm_rows=True, seed=2)
    before = torch.randn(2, 4, 6, 6, generator=g)
    cfg = Config(sweep_lambdas=(0.01, 0.1, 0.5), sweep_images=2, sweep_max_iter=100)
    rows = lambda_sweep(W, Wr, before, before.relu(), cfg)
    assert len(rows) == 12 and {r["relu"] for r in rows} == {"before", "after"}
    for filters in ("learned", "random"):
        for relu in ("before", "after"):
            by = {
                r["lambda_ratio"]: r for r in rows if (r["filters"], r["relu"]) == (filters, relu)
            }
            assert by[0.5]["density"] < by[0.01]["density"]
            assert by[0.5]["fit_error"] > by[0.01]["fit_error"]
    r = {"lambda_sweep": rows}
    assert len(fig3_lambda_table(r).rows) == 12 and "λ sweep" in fig3_lambda_note(r)
    with pytest.raises(ValueError, match="sweep_lambdas"):
        Config(sweep_lambdas=(0.0, 0.1))


def test_reproduce_draws_each_figure_once(tmp_path, monkeypatch):
    """reproduce draws an experiment's figures from its JSON; the report reuses them."""
    from cnninv.report import html
    from cnninv.reproduce import reproduce

    calls = []
    monkeypatch.setattr(html, "_DRAWN", type(html._DRAWN)())  # a test before may have drawn it
    draw = html.SECTIONS["prop1"]
    monkeypatch.setitem(html.SECTIONS, "prop1", lambda r: calls.append(1) or draw(r))
    reproduce(["prop1"], tmp_path, quick=True, log=lambda *a: None)
    assert len(calls) == 1
    assert "Proposition 1" in (tmp_path / "report.html").read_text()
    html.build_report(tmp_path)  # the same JSON in the same process: still drawn once
    assert len(calls) == 1
