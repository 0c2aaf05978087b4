"""Figure 2(c) under each open choice: the rows against independent computations."""

import pytest
import torch

from cnninv.experiments import get, make_config
from cnninv.experiments.fig2_sensitivity import VARIANTS
from cnninv.operators import ConvOperator
from cnninv.theory import reconstruction_errors, sample_model_sparse

NAMES = "baseline,rescaled,metric=squared,iht=2,padding=circular,unpool=naive,pool=2"


@pytest.fixture(scope="module")
def result():
    cfg = make_config("fig2-sensitivity", overrides={"samples": 300, "variants": NAMES})
    return get("fig2-sensitivity").run(cfg)


def _row(r, name):
    return next(x for x in r["rows"] if x["variant"] == name)


def test_every_open_choice_of_the_issue_has_a_row():
    groups = {v.group for v in VARIANTS}
    assert {"padding", "rows", "k of 𝕄", "values", "pooling", "abs vs ReLU"} <= groups
    names = {v.name for v in VARIANTS}
    assert {"padding=same", "padding=circular", "rows=unit", "k_M=all", "values=gaussian",
            "values=positive", "pool=2", "pool=2,naive", "relu"} <= names  # fmt: skip


def test_baseline_is_fig2s_one_layer_error_on_the_same_codes(result):
    """An independent computation: fig2's W, the same generator, reconstruction_errors."""
    W = ConvOperator.gaussian(96, 32, 5, 32, seed=0)
    gen = torch.Generator().manual_seed(1)
    z = sample_model_sparse(300, W.out_shape, 10, generator=gen)
    e = reconstruction_errors(W, W.T(z), 10)
    assert _row(result, "baseline")["p50"] == pytest.approx(float(e.quantile(0.5)), rel=1e-5)
    naive = reconstruction_errors(W, W.T(z), 10, switches="naive")
    assert _row(result, "unpool=naive")["p50"] == pytest.approx(
        float(naive.quantile(0.5)), rel=1e-5
    )


def test_rows_relate_as_they_must(result):
    base = _row(result, "baseline")
    # the least-squares scale can only lower every error; squaring is a monotone map
    assert _row(result, "rescaled")["p99"] <= base["p99"]
    assert _row(result, "metric=squared")["p50"] == pytest.approx(base["p50"] ** 2, rel=1e-4)
    assert _row(result, "iht=2")["p50"] < base["p50"]  # footnote 4
    assert _row(result, "padding=circular")["n"] == 32 and base["n"] == 28
    assert _row(result, "unpool=naive")["p50"] > 1  # the caption's unpooling
    assert result["findings"] and result["paper"]["typical_low"] == 0.1


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="unknown variants"):
        make_config("fig2-sensitivity", overrides={"variants": "baseline,magic"})
