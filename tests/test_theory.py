import math

import pytest
import torch
import torch.nn.functional as F

from cnninv.operators import ConvOperator, MatrixOperator
from cnninv.sparsity import num_blocks
from cnninv.theory import (
    coherence,
    empirical_delta,
    gram_ratios,
    model_rip_ratios,
    reconstruction_errors,
    sample_model_sparse,
    theorem31_condition,
    theorem33_bound,
)


def test_theorem31_formula_and_inverse():
    r = theorem31_condition(M=32, ell=5, D=32, K=96, k=10, delta=0.5, eps=0.01, C=0.01)
    n = 28
    expected = 0.01 / 0.25 * (10 * (math.log(96) + math.log(n)) - math.log(0.01))
    assert r.ratio == 25.0 and r.required == pytest.approx(expected) and r.satisfied
    # the smallest M satisfies it and M - 1 does not
    for C in (0.1, 1.0):
        r = theorem31_condition(M=1, ell=5, D=32, K=96, k=10, delta=0.5, eps=0.01, C=C)
        ok = theorem31_condition(
            M=r.min_channels, ell=5, D=32, K=96, k=10, delta=0.5, eps=0.01, C=C
        )
        assert ok.satisfied
        if r.min_channels > 1:
            bad = theorem31_condition(
                M=r.min_channels - 1, ell=5, D=32, K=96, k=10, delta=0.5, eps=0.01, C=C
            )
            assert not bad.satisfied
    with pytest.raises(ValueError, match="delta"):
        theorem31_condition(M=1, ell=5, D=32, K=96, k=10, delta=1.5, eps=0.01, C=1)
    with pytest.raises(ValueError, match="stride=2"):
        theorem31_condition(M=1, ell=5, D=32, K=96, k=10, delta=0.5, eps=0.01, C=1, stride=2)
    base = dict(M=1, ell=5, D=32, K=96, k=10, delta=0.5, eps=0.01, C=1.0)
    for name, bad in (("C", math.inf), ("C", 0.0), ("delta", math.nan), ("eps", "0.1"),
                      ("M", 2.0), ("k", True)):  # fmt: skip
        with pytest.raises(ValueError, match=name):
            theorem31_condition(**{**base, name: bad})
    with pytest.raises(ValueError, match="overflows"):
        theorem31_condition(**{**base, "delta": 1e-300})


def test_theorem33_bound():
    assert theorem33_bound(0.0, 0.0) == 0.0
    d = 0.1
    assert theorem33_bound(d, d) == pytest.approx(5 * d / (1 - d) * math.sqrt(1.1 / 0.9))
    with pytest.raises(ValueError, match="delta_k <= delta_2k"):
        theorem33_bound(0.2, 0.1)
    with pytest.raises(ValueError):
        theorem33_bound(0.1, 1.0)
    with pytest.raises(ValueError, match="delta_2k"):
        theorem33_bound(0.1, "0.2")


@pytest.mark.parametrize(("shape", "pool"), [((6, 10), None), ((4, 7, 7), 2), ((3, 5), 2)])
def test_sample_model_sparse_structure(shape, pool):
    k = 3
    z = sample_model_sparse(500, shape, k, pool, seed=0)
    assert z.shape == (500, *shape)
    assert ((z != 0).flatten(1).sum(1) == k).all()
    assert z.abs().max() <= 1
    # one non-zero per block: pooled counts of the support never exceed 1
    nz = (z != 0).float()
    if pool is None:
        counts = nz.flatten(2).sum(2)
    else:  # pad to whole regions with zeros, then sum each region
        pads = []
        for s in reversed(shape[1:]):
            pads += [0, -s % pool]
        p = torch.nn.functional.pad(nz, pads)
        if len(shape) == 2:
            counts = p.unfold(2, pool, pool).sum(-1)
        else:
            counts = p.unfold(2, pool, pool).unfold(3, pool, pool).sum((-1, -2))
    assert counts.max() <= 1 + 1e-6
    # every position is reachable: over many samples each entry is used
    assert (nz.sum(0) > 0).all()
    # values roughly uniform on [-1, 1]
    vals = z[z != 0]
    assert vals.mean().abs() < 0.05 and vals.std().item() == pytest.approx(
        1 / math.sqrt(3), rel=0.05
    )


def _sample_at_once(batch, shape, k, pool, gen, dtype=torch.float32):
    """The sampler written plainly (every row's draws at once): the oracle of its
    chunked, memory-lean form."""
    from cnninv.sparsity import block_shape, num_blocks, pool_shape

    spatial = shape[1:]
    kernel, blocks = pool_shape(spatial, pool), block_shape(spatial, pool)
    per_map, plane = math.prod(blocks), math.prod(spatial)
    chosen = torch.rand((batch, num_blocks(shape, pool)), generator=gen).topk(k, dim=1).indices
    region = chosen % per_map
    flat = chosen // per_map * plane
    for axis in range(len(spatial)):
        r = (region // math.prod(blocks[axis + 1 :])) % blocks[axis]
        start = r * kernel[axis]
        extent = torch.clamp(spatial[axis] - start, max=kernel[axis])
        offset = (torch.rand((batch, k), generator=gen) * extent).long()
        flat = flat + (start + torch.minimum(offset, extent - 1)) * math.prod(spatial[axis + 1 :])
    values = torch.rand((batch, k), generator=gen, dtype=dtype) * 2 - 1
    z = torch.zeros((batch, shape[0] * plane), dtype=dtype)
    return z.scatter_(1, flat, values).view(batch, *shape)


@pytest.mark.parametrize(
    ("shape", "k", "pool"),
    [((4, 10, 10), 7, 2), ((3, 11, 9), 10, (3, 2)), ((6, 13), 5, 4), ((50,), 20, None),
     ((2, 7, 7), 30, 1), ((5, 31, 29), 70, (2, 3)), ((4, 9, 9), 36, (3, 3))],
)  # fmt: skip
@pytest.mark.parametrize("chunk_bytes", [1, 5000, 2**26])
def test_sampler_draws_rows_in_chunks_with_the_same_numbers(monkeypatch, shape, k, pool,
                                                            chunk_bytes):  # fmt: skip
    """On the CPU a few rows at a time (bounded temporaries) give the same codes, bit for
    bit, as every row at once, and leave the generator in the same state."""
    from cnninv.theory import rip

    monkeypatch.setattr(rip, "_CHUNK_BYTES", chunk_bytes)
    for dtype in (torch.float32, torch.float64):
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        got = sample_model_sparse(5, shape, k, pool, generator=g1, dtype=dtype)
        assert torch.equal(got, _sample_at_once(5, shape, k, pool, g2, dtype))
        assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))


def test_sampling_is_seeded():
    a = sample_model_sparse(4, (5, 9), 2, seed=11)
    b = sample_model_sparse(4, (5, 9), 2, seed=11)
    assert torch.equal(a, b)
    assert not torch.equal(a, sample_model_sparse(4, (5, 9), 2, seed=12))
    with pytest.raises(ValueError, match="number of blocks \\(5\\)"):
        sample_model_sparse(1, (5, 9), 6)


def test_ratios_against_dense_matrix():
    W = ConvOperator.gaussian(K=6, M=3, ell=3, input_size=10, seed=0, dtype=torch.float64)
    A = W.dense()
    z = sample_model_sparse(20, W.out_shape, 3, seed=1, dtype=torch.float64)
    zf = z.flatten(1)
    rip = (zf @ A).norm(dim=1) / zf.norm(dim=1)
    torch.testing.assert_close(model_rip_ratios(W, z), rip)
    omega = zf != 0
    gram = ((zf @ A @ A.T) * omega).norm(dim=1) / zf.norm(dim=1)
    torch.testing.assert_close(gram_ratios(W, z), gram)
    full = (zf @ A @ A.T).norm(dim=1) / zf.norm(dim=1)
    torch.testing.assert_close(gram_ratios(W, z, restrict=False), full)


def test_orthonormal_W_has_zero_delta_and_exact_reconstruction():
    W = ConvOperator.orthonormal(M=2, ell=3, input_size=9, seed=0)
    z = sample_model_sparse(50, W.out_shape, 4, seed=0, dtype=torch.float64)
    assert empirical_delta(model_rip_ratios(W, z)) < 1e-12
    # the code is model-sparse in W's own basis, so M(Wx, k) finds it exactly
    errs = reconstruction_errors(W, W.T(z), 4)
    assert errs.max() < 1e-12


def test_reconstruction_error_definition_and_naive_switches():
    W = ConvOperator.gaussian(K=96, M=32, ell=5, input_size=32, seed=0)
    z = sample_model_sparse(200, W.out_shape, 10, seed=1)
    x = W.T(z)
    known = reconstruction_errors(W, x, 10)
    naive = reconstruction_errors(W, x, 10, switches="naive")
    assert 0 < known.median() < 0.6
    assert naive.median() > known.median()  # dropping the switches loses the positions


def test_empirical_delta():
    assert empirical_delta(torch.tensor([0.9, 1.0, 1.1])) == pytest.approx(0.21)
    assert empirical_delta(torch.tensor([0.9, 1.05]), squared=False) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        empirical_delta(torch.tensor([]))


def test_coherence_no_shift_matches_gram():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(7, 3, 3, 3, generator=g, dtype=torch.float64)
    f = w.flatten(1)
    f = f / f.norm(dim=1, keepdim=True)
    G = (f @ f.T).abs()
    G.fill_diagonal_(0)
    assert coherence(w) == pytest.approx(float(G.max()))
    # identical filters up to sign: coherence 1
    w2 = torch.stack([w[0], -w[0]])
    assert coherence(w2) == pytest.approx(1.0)


@pytest.mark.parametrize(("ndim", "stride"), [(1, 1), (1, 2), (2, 1)])
def test_coherence_with_shifts_is_coherence_of_W_rows(ndim, stride):
    ell = (3,) if ndim == 1 else (3, 3)
    size = (13,) if ndim == 1 else (9, 9)
    W = ConvOperator.gaussian(
        K=4, M=2, ell=ell, input_size=size, stride=stride, seed=3, dtype=torch.float64
    ).unit_norm_filters()
    A = W.dense()
    A = A / A.norm(dim=1, keepdim=True)
    G = (A @ A.T).abs()
    G.fill_diagonal_(0)
    assert coherence(W.weight, shifts=True, stride=stride) == pytest.approx(float(G.max()))
    assert coherence(W.weight, shifts=True) >= coherence(W.weight) - 1e-12


@pytest.mark.parametrize("shape", [(7, 3, 5), (6, 4, 3, 3), (5, 2, 3, 5), (4, 1, 1, 1)])
def test_shift_gram_is_the_bank_convolved_with_itself(shape):
    # the matrix-product form of coherence's shifted Gram against the convolution it
    # replaces, with chunks of one filter (the chunked path) and of all of them
    from cnninv.theory.coherence import _shift_gram

    w = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    kernel = shape[2:]
    conv = F.conv1d if len(kernel) == 1 else F.conv2d
    ref = conv(w, w, padding=[e - 1 for e in kernel])
    for chunk in (1, 2**26):
        got = _shift_gram(w, chunk_bytes=chunk)
        assert got.shape == ref.shape
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


def test_random_coherence_decreases_with_dimension():
    small = ConvOperator.gaussian(K=64, M=3, ell=(3, 3), input_size=(8, 8), seed=0).weight
    big = ConvOperator.gaussian(K=64, M=256, ell=(3, 3), input_size=(8, 8), seed=0).weight
    assert coherence(big) < coherence(small)
    assert num_blocks((64, 8, 8), 2) == 64 * 16


def test_codes_without_spatial_axis_and_sampling_checks():
    z = sample_model_sparse(300, (12,), 4, seed=0)
    assert z.shape == (300, 12) and bool(((z != 0).sum(1) == 4).all())
    assert bool(((z != 0).sum(0) > 0).all())
    with pytest.raises(ValueError, match="k must be an integer"):
        sample_model_sparse(1, (5, 9), None)
    with pytest.raises(ValueError, match="low"):
        sample_model_sparse(1, (5, 9), 2, low=math.nan)
    with pytest.raises(ValueError, match="sampled values"):
        sample_model_sparse(1, (5, 9), 2, low=-1e300, high=1e300)
    with pytest.raises(ValueError, match="shape"):
        sample_model_sparse(1, (5, 9, 2, 2), 2)


def test_theory_on_the_dense_matrix_equals_theory_on_W():
    W = ConvOperator.gaussian(K=6, M=3, ell=3, input_size=(7, 7), seed=0, dtype=torch.float64)
    D = MatrixOperator(W.dense(), W.in_shape, W.out_shape)
    z = sample_model_sparse(30, W.out_shape, 4, 2, seed=1, dtype=torch.float64)
    torch.testing.assert_close(model_rip_ratios(D, z), model_rip_ratios(W, z))
    torch.testing.assert_close(gram_ratios(D, z), gram_ratios(W, z))
    x = W.T(z)
    for switches in ("known", "naive"):
        torch.testing.assert_close(
            reconstruction_errors(D, x, 4, 2, switches=switches),
            reconstruction_errors(W, x, 4, 2, switches=switches),
        )


def test_reconstruction_error_of_a_zero_signal_is_an_error_not_nan():
    W = ConvOperator.gaussian(K=6, M=3, ell=3, input_size=10, seed=0)
    x = torch.randn(3, 3, 10)
    x[1] = 0
    with pytest.raises(ValueError, match="x has an all-zero sample"):
        reconstruction_errors(W, x, 2)
    with pytest.raises(ValueError, match="all-zero code"):
        model_rip_ratios(W, torch.zeros(2, *W.out_shape))
    with pytest.raises(ValueError, match="switches"):
        reconstruction_errors(W, torch.randn(3, 3, 10), 2, switches=None)
    with pytest.raises(ValueError, match="k must be between 1"):
        reconstruction_errors(W, torch.randn(3, 3, 10), 0)


def test_empirical_delta_and_coherence_checks():
    with pytest.raises(ValueError, match="ratios must be a tensor"):
        empirical_delta(["a"])
    with pytest.raises(ValueError, match="non-negative"):
        empirical_delta(torch.tensor([-1.0, 1.0]))
    with pytest.raises(ValueError, match="squared"):
        empirical_delta(torch.tensor([1.0]), squared=1)
    w = torch.randn(3, 2, 3)
    for kwargs, match in ((dict(stride=0), "stride"), (dict(shifts="yes"), "shifts")):
        with pytest.raises(ValueError, match=match):
            coherence(w, **kwargs)
    with pytest.raises(ValueError, match="floating-point"):
        coherence(torch.ones(3, 2, 3, dtype=torch.long))
