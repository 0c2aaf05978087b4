"""δ_k bracketed: brute force over every support is the oracle; every lower bound is
attained by the support it returns; the conv structure gives the dense Gram's bounds."""

import math

import pytest
import torch

from cnninv.operators import ConvOperator, MatrixOperator
from cnninv.sparsity import model_sparse
from cnninv.theory import empirical_delta, model_rip_ratios
from cnninv.theory.delta import (
    _gram_dense,
    _kept,
    _kept_lag_groups,
    _project,
    _upper_conv,
    _upper_dense,
    block_ids,
    delta_bracket,
    exact_delta,
    support_delta,
    support_size,
)

f64 = torch.float64


def _conv(seed=0, **kw):
    return ConvOperator.gaussian(**kw, seed=seed, dtype=f64)


TINY = {
    "1d": lambda: _conv(K=3, M=2, ell=2, input_size=4),
    "1d_stride_pad": lambda: _conv(K=3, M=2, ell=3, input_size=7, stride=2, padding=1, seed=1),
    "2d_pad": lambda: _conv(K=2, M=2, ell=(2, 2), input_size=(3, 4), padding=1, seed=2),
    "1d_unit_rows": lambda: ConvOperator.gaussian(
        K=3, M=3, ell=3, input_size=5, unit_norm_rows=True, seed=3, dtype=f64
    ),
    "matrix": lambda: MatrixOperator(
        torch.randn(8, 5, generator=torch.Generator().manual_seed(4), dtype=f64) / math.sqrt(5),
        (5,),
        (2, 4),
    ),
}


def _admissible(W, S, pool, order, size):
    ids = block_ids(W.out_shape, pool)
    S = torch.as_tensor(S)
    return (
        S.numel() == size and S.unique().numel() == size and (torch.bincount(ids[S]).max() <= order)
    )


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize(("k", "pool", "order"), [(1, None, 1), (2, None, 1), (2, None, 2),
                                                  (2, 2, 1), (1, 2, 2)])  # fmt: skip
def test_bracket_contains_the_brute_force_delta(name, k, pool, order):
    W = TINY[name]()
    if name == "matrix" and pool is not None:
        pool = None
    ex = exact_delta(W, k, pool, order=order)
    b = delta_bracket(W, k, pool, order=order, samples=20, seed=0)
    tol = 1e-9
    assert b.lower_random_codes <= b.lower_sampled + tol
    assert b.lower_sampled <= b.lower_search + tol
    assert b.lower_search <= ex.delta + tol
    assert ex.delta <= b.upper_babel + tol
    assert b.upper_babel <= b.upper_coherence + tol
    # the exact constant is attained by its support, recomputed from W^T of unit codes
    assert _admissible(W, ex.support, pool, order, b.size)
    lo, hi = support_delta(W, torch.tensor([ex.support]))[0].tolist()
    assert max(hi - 1, 1 - lo) == pytest.approx(ex.delta, abs=1e-10)
    # ... and so is the search's value, by the support it returns
    assert _admissible(W, b.worst_support, pool, order, b.size)
    lo, hi = support_delta(W, torch.tensor([b.worst_support]))[0].tolist()
    assert (hi - 1 if b.worst_side == "upper" else 1 - lo) == pytest.approx(b.lower_search)


def test_exact_delta_is_the_supremum_of_random_codes():
    """An independent check of the oracle: no code of the model, random or worst on its
    support, exceeds it, and the largest sampled ratio comes close to it."""
    W = TINY["1d_stride_pad"]()
    ex = exact_delta(W, 2)
    ids = block_ids(W.out_shape)
    g = torch.Generator().manual_seed(0)
    S = _project(torch.rand((4000, ids.numel()), generator=g, dtype=f64), ids, 1, 2)
    z = torch.zeros((4000, ids.numel()), dtype=f64).scatter_(1, S, torch.randn(4000, 2, dtype=f64))
    ratios = model_rip_ratios(W, z.view(4000, *W.out_shape))
    assert empirical_delta(ratios) <= ex.delta + 1e-12
    assert empirical_delta(ratios) > 0.8 * ex.delta
    # and the bracket's search finds it exactly on this tiny layer
    assert delta_bracket(W, 2, samples=50).lower_search == pytest.approx(ex.delta)


def test_interlacing_the_largest_supports_suffice():
    """delta over supports of every size <= s equals delta over the largest ones."""
    W = TINY["1d"]()
    G = _gram_dense(W)
    ex = exact_delta(W, 2)
    singles = (G.diagonal() - 1).abs().max()
    assert float(singles) <= ex.delta + 1e-12


@pytest.mark.parametrize(
    ("kw", "pool"),
    [
        (dict(K=4, M=3, ell=3, input_size=11, stride=2, padding=1), None),
        (dict(K=3, M=2, ell=(3, 2), input_size=(6, 5), padding=(1, 0)), 2),
        (dict(K=4, M=4, ell=(3, 3), input_size=(7, 6), stride=(2, 1), groups=2), (3, 2)),
        (dict(K=3, M=2, ell=3, input_size=12, dilation=2, padding=2), 1),
        (dict(K=2, M=2, ell=(3, 3), input_size=(5, 5), stride=2, padding=2), None),
    ],
)
@pytest.mark.parametrize("order", [1, 2])
def test_conv_structure_gives_the_dense_gram_bounds(kw, pool, order):
    W = _conv(**kw, seed=5)
    ids = block_ids(W.out_shape, pool)
    blocks = int(ids.max()) + 1
    for k in sorted({1, max(1, blocks // 3), blocks}):
        size = support_size(W.out_shape, k, pool, order)
        dense = _upper_dense(_gram_dense(W), ids, order, size)
        conv = _upper_conv(W, pool, order, size)
        for key in ("babel", "coherence", "mu", "diag"):
            assert conv[key] == pytest.approx(dense[key], rel=1e-10, abs=1e-12), key


@pytest.mark.parametrize("order", [1, 2])
def test_lag_groups_keep_what_the_scatter_over_labels_keeps(order):
    """The conv path's per-block maxima over slices of lags are, bit for bit, the general
    scatter over labels (channel, then region): random blocks of lags, values with many
    ties (small integers), the row's own entry marked -1 as the conv path marks it."""
    gen = torch.Generator().manual_seed(3)
    for _ in range(100):
        K, L = (int(v) for v in torch.randint(1, 8, (2,), generator=gen))
        region = torch.randint(0, L, (L,), generator=gen)  # the lags' blocks, any order
        centre = int(torch.randint(0, L, (1,), generator=gen))
        vals = torch.randint(0, 4, (K, K, L), generator=gen).to(f64)
        vals[torch.arange(K), torch.arange(K), centre] = -1.0
        labels = (torch.arange(K).view(K, 1) * L + region.view(1, L)).flatten()
        own = torch.arange(K) * L + int(region[centre])
        _, group = torch.unique(region, return_inverse=True)
        expected = _kept(vals.reshape(K, K * L), labels, own, order)
        got = _kept_lag_groups(vals.permute(2, 0, 1), group, int(group[centre]), order)
        assert torch.equal(got, expected)


def test_large_layer_path_gives_attained_lower_bounds_and_the_same_upper_bounds():
    """Forcing the operator path (Lanczos, truncated power method, conv-structure bounds)
    on a layer small enough for the oracle."""
    W = _conv(K=4, M=3, ell=3, input_size=9, padding=1, seed=6)
    for order in (1, 2):
        dense = delta_bracket(W, 3, 2, order=order, samples=30, seed=0)
        big = delta_bracket(W, 3, 2, order=order, samples=30, seed=0, dense_max=1)
        assert "Lanczos" in big.method and "dense" in dense.method
        assert big.upper_babel == pytest.approx(dense.upper_babel)
        assert big.upper_coherence == pytest.approx(dense.upper_coherence)
        assert big.lower_sampled <= big.lower_search <= dense.upper_babel
        lo, hi = support_delta(W, torch.tensor([big.worst_support]))[0].tolist()
        attained = hi - 1 if big.worst_side == "upper" else 1 - lo
        assert big.lower_search <= attained + 1e-9  # a Rayleigh quotient on that support
        assert big.lower_search > 0.5 * dense.lower_search  # and a useful one


def test_search_beats_sampling_on_the_figure2_layer():
    """On Figure 2's Gaussian W (k = 10) the adversarial search finds supports far worse
    than any of 300 random ones, and the sampled-support value beats random codes."""
    W = ConvOperator.gaussian(96, 32, 5, 32, seed=0)
    b = delta_bracket(W, 10, samples=300, starts=2, sweeps=20, seed=0)
    assert b.lower_random_codes < b.lower_sampled < b.lower_search < b.upper_babel
    assert b.lower_search > 1.5 * b.lower_sampled
    again = delta_bracket(W, 10, samples=300, starts=2, sweeps=20, seed=0)
    assert again.lower_search == b.lower_search and again.worst_support == b.worst_support


def test_projection_is_the_model_sparse_projection():
    g = torch.Generator().manual_seed(0)
    for shape, pool in (((5, 9), None), ((3, 6, 5), 2), ((4, 7), 3)):
        h = torch.randn((6, *shape), generator=g, dtype=f64)
        ids = block_ids(shape, pool)
        k = 3
        S = _project(h.abs().flatten(1), ids, 1, k)
        ref = model_sparse(h, k, pool).code.flatten(1) != 0
        mask = torch.zeros_like(ref).scatter_(1, S, True)
        assert torch.equal(mask, ref)
        # order 2: at most two per block, the largest
        S2 = _project(h.abs().flatten(1), ids, 2, 2 * k)
        assert all(torch.bincount(ids[s]).max() <= 2 for s in S2)


def test_block_ids_are_the_blocks_of_model_sparse():
    for shape, pool in (((3, 10), None), ((2, 7, 5), 2), ((2, 6), 4), ((7,), None)):
        ids = block_ids(shape, pool)
        h = torch.rand((1, *shape), dtype=f64) + 0.1
        code = model_sparse(h, None, pool).code.flatten()  # one entry per block
        assert torch.equal(torch.bincount(ids[code != 0]), torch.ones(int(ids.max()) + 1).long())


def test_errors():
    W = TINY["1d"]()
    with pytest.raises(ValueError, match="order must be"):
        delta_bracket(W, 1, order=3)
    with pytest.raises(ValueError, match="k must be between"):
        delta_bracket(W, 4)
    with pytest.raises(ValueError, match="W must be a LinearOperator"):
        delta_bracket(torch.zeros(3, 3), 1)
    with pytest.raises(ValueError, match="samples must be"):
        delta_bracket(W, 1, samples=0)
    with pytest.raises(ValueError, match="max_supports"):
        exact_delta(_conv(K=8, M=2, ell=2, input_size=12), 6, max_supports=10)
    with pytest.raises(ValueError, match="repeats"):
        support_delta(W, torch.tensor([[0, 0]]))
    with pytest.raises(ValueError, match="supports must index"):
        support_delta(W, torch.tensor([[0, 99]]))


def test_delta_experiment_and_its_report(tmp_path):
    """The experiment on Figure 2's W alone (no network): the bracket, the support, the
    renderer; Figure 2's W is fig2's (same seed, same matrix)."""
    from cnninv.experiments import get, make_config
    from cnninv.io import atomic_write_json
    from cnninv.report import build_report

    cfg = make_config(
        "delta",
        overrides={"fig3": False, "layers": "none", "fig2_samples": 50, "fig2_starts": 1,
                   "fig2_sweeps": 5},
    )  # fmt: skip
    r = get("delta").run(cfg)
    o = r["operators"]["fig2"]
    dk, d2k = o["delta_k"], o["delta_2k"]
    assert dk["lower_sampled"] <= dk["lower_search"] <= dk["upper_babel"] <= dk["upper_coherence"]
    assert d2k["lower_search"] >= dk["lower_search"]  # M_k is inside M_k^2
    assert o["k"] == 10 and o["matrix_shape"] == [96 * 28, 32 * 32]
    entries = o["worst_support"]["delta_k"]["support_entries"]
    assert len(entries) == 10 and len({e[0] for e in entries}) == 10  # one per filter
    fig2_W = ConvOperator.gaussian(96, 32, 5, 32, seed=0)
    lo, hi = support_delta(fig2_W, torch.tensor([o["worst_support"]["delta_k"]["support"]]))[0]
    side = o["worst_support"]["delta_k"]["side"]
    assert float(hi - 1 if side == "upper" else 1 - lo) == pytest.approx(dk["lower_search"])
    atomic_write_json(tmp_path / "delta.json", {**r, "title": "delta"})
    html = build_report(tmp_path).read_text()
    assert "δ_k ≥ search" in html and "Figure 2&#x27;s W" in html
