import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnninv.sparsity import (
    block_shape,
    check_k,
    check_variant,
    crelu,
    max_pool_switches,
    model_sparse,
    naive_switches,
    num_blocks,
    pool_shape,
    unpool,
    unpool_naive,
)


def _blocks_1d(n, pool):
    p = n if pool is None else pool
    return [list(range(s, min(s + p, n))) for s in range(0, n, p)]


def _blocks_2d(h, w, pool):
    p = (h, w) if pool is None else (pool, pool)
    out = []
    for r0 in range(0, h, p[0]):
        for c0 in range(0, w, p[1]):
            out.append(
                [
                    r * w + c
                    for r in range(r0, min(r0 + p[0], h))
                    for c in range(c0, min(c0 + p[1], w))
                ]
            )
    return out


def brute_force(h, k, pool, variant):
    """Enumerate every model-k-sparse support (k blocks, one position each) and return the
    closest admissible code to h (non-negative codes for the ReLU variant)."""
    K, spatial = h.shape[0], h.shape[1:]
    flat = h.reshape(K, -1)
    regions = _blocks_1d(*spatial, pool) if len(spatial) == 1 else _blocks_2d(*spatial, pool)
    blocks = [(c, reg) for c in range(K) for reg in regions]
    best, best_err = None, math.inf
    for chosen in itertools.combinations(range(len(blocks)), k):
        for positions in itertools.product(*(blocks[b][1] for b in chosen)):
            z = torch.zeros_like(flat)
            for b, pos in zip(chosen, positions, strict=True):
                c = blocks[b][0]
                z[c, pos] = flat[c, pos] if variant == "abs" else max(flat[c, pos], 0.0)
            err = float((flat - z).norm())
            if err < best_err - 1e-12:
                best, best_err = z, err
    return best.reshape(h.shape), best_err


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([(2, 5), (3, 4), (2, 3, 3), (1, 4, 3)]),
    st.sampled_from([None, 2]),
    st.integers(1, 3),
    st.sampled_from(["abs", "relu"]),
    st.integers(0, 10_000),
)
def test_projection_equals_brute_force(shape, pool, k, variant, seed):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(shape, generator=g, dtype=torch.float64)
    k = min(k, num_blocks(shape, pool))
    z = model_sparse(h[None], k, pool, variant=variant).code[0]
    oracle, err = brute_force(h, k, pool, variant)
    assert float((h - z).norm()) == pytest.approx(err, abs=1e-12)
    if variant == "abs":  # the optimum is unique for continuous random h
        torch.testing.assert_close(z, oracle)


def test_structure_one_per_block_and_k_blocks():
    h = torch.randn(5, 8, 9, 9)
    res = model_sparse(h, 7, pool=2)
    assert res.values.shape == (5, 8, 5, 5)  # ceil(9/2) = 5 regions per axis
    nz = res.code != 0
    assert (nz.flatten(1).sum(1) == 7).all()
    per_block = torch.nn.functional.max_pool2d(nz.float(), 2, 2, ceil_mode=True)
    counts = torch.nn.functional.avg_pool2d(nz.float(), 2, 2, ceil_mode=True, divisor_override=1)
    assert counts.max() <= 1 and per_block.sum() == 5 * 7


def test_k_none_is_max_pool_then_unpool_with_switches():
    h = torch.randn(2, 3, 8, 8)
    z = model_sparse(h, None, pool=2, variant="relu").code
    pooled, idx = torch.nn.functional.max_pool2d(torch.relu(h), 2, 2, return_indices=True)
    ref = torch.nn.functional.max_unpool2d(pooled, idx, 2, 2, output_size=(8, 8))
    torch.testing.assert_close(z, ref)


def test_switches_naive_top_left():
    sw = naive_switches((1, 1, 2, 3), 2, (4, 5))
    assert sw[0, 0].tolist() == [[0, 2, 4], [10, 12, 14]]
    v = torch.arange(1.0, 7.0).view(1, 1, 2, 3)
    z = unpool_naive(v, 2, (4, 5))
    assert z[0, 0, 0].tolist() == [1, 0, 2, 0, 3]
    assert z[0, 0, 2].tolist() == [4, 0, 5, 0, 6]
    # 1-d, filter model: everything at shift 0
    z1 = unpool_naive(torch.tensor([[[2.0], [-1.0]]]), None, (6,))
    assert z1[0, :, 0].tolist() == [2.0, -1.0] and z1[0, :, 1:].abs().sum() == 0


def test_unpool_inverts_pool_on_the_kept_entries():
    h = torch.randn(3, 4, 10)
    values, switches = max_pool_switches(h, 3)
    z = unpool(values, switches, (10,))
    back, _ = max_pool_switches(z, 3)
    torch.testing.assert_close(back, values)


def test_block_counts():
    assert block_shape((9, 9), 2) == (5, 5)
    assert num_blocks((96, 28), None) == 96
    assert num_blocks((512, 14, 14), 2) == 512 * 49


def test_crelu():
    h = torch.tensor([[1.0, -2.0, 0.0]])
    assert crelu(h).tolist() == [[1.0, 0.0, 0.0, 0.0, 2.0, 0.0]]


@pytest.mark.parametrize(
    ("h", "k", "pool", "variant", "match"),
    [
        (torch.randn(1, 3, 4), 0, None, "abs", "k must be between 1"),
        (torch.randn(1, 3, 4), 4, None, "abs", "number of blocks \\(3\\)"),
        (torch.randn(1, 3, 4), 1, None, "max", "variant"),
        (torch.randn(4), 1, None, "abs", "batched code"),
        (torch.randn(1, 2, 3, 4, 5), 1, None, "abs", "batched code"),
        (torch.randn(2, 5), 1, 2, "abs", "pool must be None"),
        (torch.randn(2, 5), 6, None, "abs", "number of blocks \\(5\\)"),
        (torch.ones(1, 3, 4, dtype=torch.long), 1, None, "abs", "floating-point"),
        (torch.randn(1, 3, 4), 1.5, None, "abs", "k must be between 1"),
        (torch.randn(1, 3, 4), True, None, "abs", "k must be between 1"),
        (torch.randn(1, 3, 4), 1, 0, "abs", "pool"),
        (torch.tensor([[[math.nan, 1.0]]]), 1, None, "abs", "h contains NaN"),
    ],
)
def test_errors(h, k, pool, variant, match):
    with pytest.raises(ValueError, match=match):
        model_sparse(h, k, pool, variant=variant)


def brute_force_entries(h, k, variant):
    """Every support of k entries of a vector (each entry its own block), the closest."""
    best, best_err = None, math.inf
    for chosen in itertools.combinations(range(h.numel()), k):
        z = torch.zeros_like(h)
        for i in chosen:
            z[i] = h[i] if variant == "abs" else max(h[i], 0.0)
        err = float((h - z).norm())
        if err < best_err - 1e-12:
            best, best_err = z, err
    return best, best_err


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 7),
    st.integers(1, 7),
    st.sampled_from(["abs", "relu"]),
    st.integers(0, 10_000),
)
def test_codes_without_spatial_axis_each_entry_a_block(n, k, variant, seed):
    """h of shape (B, N): plain k-sparse hard thresholding, against every support."""
    k = min(k, n)
    g = torch.Generator().manual_seed(seed)
    h = torch.randn((3, n), generator=g, dtype=torch.float64)
    assert num_blocks((n,), None) == n
    res = model_sparse(h, k, variant=variant)
    assert res.code.shape == h.shape and res.values.shape == h.shape
    assert bool((res.switches == 0).all())
    for b in range(3):
        oracle, err = brute_force_entries(h[b], k, variant)
        assert float((h[b] - res.code[b]).norm()) == pytest.approx(err, abs=1e-12)
        if variant == "abs":
            torch.testing.assert_close(res.code[b], oracle)
    # k=None keeps every block: the identity (abs) or the ReLU
    full = model_sparse(h, None, variant=variant).code
    torch.testing.assert_close(full, h if variant == "abs" else h.clamp_min(0))
    assert full.data_ptr() != h.data_ptr()


def test_check_k_is_the_one_range_check():
    assert check_k(None, (4, 6), None) is None
    assert check_k(3, (4, 6), None) == 3
    assert check_k(4 * 9, (4, 5, 5), 2) == 36
    for bad in (0, 5, -1, 2.0, True, "2"):
        with pytest.raises(ValueError, match="k must be between 1 and the number of blocks"):
            check_k(bad, (4, 6), None)
    with pytest.raises(ValueError, match="shape"):
        check_k(1, (4, 0), None)
    assert check_variant("relu") == "relu"
    with pytest.raises(ValueError, match="variant"):
        check_variant(["abs"])


def test_pool_shape():
    assert pool_shape((9, 7), 2) == (2, 2)
    assert pool_shape((9, 7), None) == (9, 7)
    assert pool_shape((), None) == ()
    with pytest.raises(ValueError, match="pool"):
        pool_shape((9,), (2, 2))


def test_check_false_skips_the_checks_and_gives_the_same_projection():
    h = torch.randn(4, 6, 9, 9)
    a = model_sparse(h, 11, pool=2)
    b = model_sparse(h, 11, pool=2, check=False)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    bad = h.clone()
    bad[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="h contains NaN"):
        model_sparse(bad, 11, pool=2)
    model_sparse(bad, 11, pool=2, check=False)  # no scan: the caller checked once
    with pytest.raises(ValueError, match="check must be a bool"):
        model_sparse(h, 1, check="no")


def test_unpool_and_crelu_errors():
    values, switches = max_pool_switches(torch.randn(2, 3, 8), 2)
    with pytest.raises(ValueError, match="switches must be an int64"):
        unpool(values, switches.float(), (8,))
    with pytest.raises(ValueError, match="switches must index"):
        unpool(values, switches + 8, (8,))
    with pytest.raises(ValueError, match="values must have 4 dimensions"):
        unpool(values, switches, (8, 1))
    with pytest.raises(ValueError, match="dim must be an axis"):
        crelu(torch.randn(2, 3), dim=5)
    with pytest.raises(ValueError, match="dim must be an axis"):
        crelu(torch.randn(2, 3), dim=1.0)
    assert crelu(torch.randn(2, 3), dim=-1).shape == (2, 6)


@pytest.mark.parametrize("variant", ["abs", "relu"])
@pytest.mark.parametrize("k", [1, 5, 17, 23])
def test_single_entry_blocks_keep_the_k_largest(variant, k):
    """pool=1 (every entry a block, the fast path) against a sort of every entry; k above
    half the entries takes the complement route."""
    g = torch.Generator().manual_seed(k)
    h = torch.randn(3, 2, 4, 3, generator=g)
    code = model_sparse(h, k, 1, variant=variant).code
    score = h.abs() if variant == "abs" else h.clamp_min(0)
    for b in range(3):
        order = score[b].flatten().argsort(descending=True)
        want = torch.zeros(24)
        kept = order[:k]
        want[kept] = (h[b].flatten() if variant == "abs" else score[b].flatten())[kept]
        torch.testing.assert_close(code[b].flatten(), want)
