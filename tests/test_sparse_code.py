"""Products with sparse codes (filter placements, the Gram operator) against the dense
matrix, the sparse projection against model_sparse, and IHT in the code domain against the
signal domain and the dense matrix."""

import pytest
import torch

from cnninv.operators import ConvOperator, MatrixOperator
from cnninv.operators.sparse import (
    SparseCode,
    add_entries,
    dense_code,
    gather_entries,
    sparse_code,
)
from cnninv.recovery import iht
from cnninv.recovery.iht import code_domain_cost
from cnninv.sparsity import model_sparse, model_sparse_entries
from cnninv.theory import sample_model_sparse

f64 = torch.float64

LAYERS = {
    "1d": dict(K=6, M=3, ell=5, input_size=20),
    "strided": dict(K=5, M=2, ell=3, input_size=17, stride=2),
    "dilated_padded": dict(K=4, M=2, ell=3, input_size=16, padding=2, dilation=2),
    "2d": dict(K=5, M=3, ell=(3, 2), input_size=(9, 8)),
    "2d_strided_padded": dict(K=4, M=2, ell=(3, 3), input_size=(9, 11), stride=(2, 1), padding=1),
    "grouped": dict(K=6, M=4, ell=(3, 3), input_size=(7, 7), groups=2),
    "dilated2d": dict(K=3, M=2, ell=(2, 3), input_size=(7, 9), dilation=(3, 2)),
}


def _layer(name, device, dtype=f64):
    return ConvOperator.gaussian(**LAYERS[name], seed=1, dtype=dtype, device=device)


def _sparse_batch(W, batch, s, seed, device):
    """Codes with ``s`` random entries each, two of them at the same position (several
    filters at one shift), as dense codes."""
    g = torch.Generator().manual_seed(seed)
    z = torch.zeros(batch, W.shape[0], dtype=W.dtype)
    for b in range(batch):
        idx = torch.randperm(W.shape[0], generator=g)[:s]
        z[b, idx] = torch.randn(s, generator=g, dtype=W.dtype)
    return z.view(batch, *W.out_shape).to(device)


@pytest.mark.parametrize("name", list(LAYERS))
def test_sparse_products_equal_the_dense_matrix(name, device):
    W = _layer(name, device)
    A = W.dense()  # (Kn, MD)
    z = _sparse_batch(W, 4, 5, 0, device)
    code = sparse_code(z)
    assert torch.equal(dense_code(code, W.out_shape), z)
    zf = z.reshape(4, -1)
    x = W.sparse_rmatvec(code)
    assert x.shape == (4, *W.in_shape)
    torch.testing.assert_close(x.reshape(4, -1), zf @ A, atol=1e-12, rtol=0)
    torch.testing.assert_close(x, W.rmatvec(z), atol=1e-12, rtol=0)  # and the conv-T
    if all(p == 0 for p in W.padding):
        torch.testing.assert_close(W.sparse_gram(code).reshape(4, -1), zf @ A @ A.T)
        kern = W.sparse_kernels()
        rows = torch.stack([torch.randperm(A.shape[0])[:5] for _ in range(4)]).to(device)
        cols = torch.stack([torch.randperm(A.shape[0])[:3] for _ in range(4)]).to(device)
        G = A @ A.T
        expected = torch.stack([G[rows[b]][:, cols[b]] for b in range(4)])
        torch.testing.assert_close(kern.gram_pairs(rows, cols), expected)
        # W x plus the Gram operator, folded into one product
        x0 = torch.randn(4, *W.in_shape, dtype=f64, device=device)
        Wx = W.matvec(x0)
        w = torch.tensor([1.0, 0.5, -2.0, 0.0], dtype=f64, device=device)
        got = kern.gram(code, kern.affine("gram", Wx), w)
        torch.testing.assert_close(got, w.view(-1, 1, *[1] * W.ndim) * Wx + W.sparse_gram(code))
    else:
        with pytest.raises(ValueError, match="padded layer"):
            W.sparse_gram(code)
    xb = torch.randn(4, *W.in_shape, dtype=f64, device=device)
    kern = W.sparse_kernels()
    w = torch.tensor([1.0, 2.0, 0.0, -1.0], dtype=f64, device=device)
    got = kern.rmatvec(code, kern.affine("place", xb), w)
    torch.testing.assert_close(got, w.view(-1, *[1] * (W.ndim + 1)) * xb + x)


def test_repeated_and_zero_entries_add_up(device):
    W = _layer("1d", device)
    code = SparseCode(
        torch.tensor([[3, 3, 40, 7]], device=device),
        torch.tensor([[1.0, 2.0, 0.0, -1.0]], dtype=f64, device=device),
    )
    z = torch.zeros(1, W.shape[0], dtype=f64, device=device)
    z[0, 3], z[0, 7] = 3.0, -1.0
    torch.testing.assert_close(W.sparse_rmatvec(code), W.rmatvec(z.view(1, *W.out_shape)))
    assert torch.equal(dense_code(code, W.out_shape).reshape(1, -1), z)


def test_entries_in_any_layout():
    z = torch.randn(2, 4, 3, 5).contiguous(memory_format=torch.channels_last)
    idx = torch.tensor([[0, 17, 59], [5, 6, 7]])
    assert torch.equal(gather_entries(z, idx), z.reshape(2, -1).gather(1, idx))
    out = add_entries(z.clone(), SparseCode(idx, torch.ones(2, 3)))
    assert out.is_contiguous(memory_format=torch.channels_last)
    expected = z.reshape(2, -1).clone()
    expected.scatter_add_(1, idx, torch.ones(2, 3))
    assert torch.equal(out.reshape(2, -1), expected)


def test_checked_arguments():
    W = _layer("1d", "cpu")
    with pytest.raises(ValueError, match="SparseCode"):
        W.sparse_rmatvec(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="int64"):
        W.sparse_rmatvec(SparseCode(torch.zeros(2, 3), torch.zeros(2, 3, dtype=f64)))
    with pytest.raises(ValueError, match="dtype and device"):
        W.sparse_rmatvec(SparseCode(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3)))


def test_tables_follow_the_weight():
    """The cached tables are rebuilt when the filters change (in place, or a new tensor)."""
    W = _layer("1d", "cpu")
    code = sparse_code(_sparse_batch(W, 2, 3, 1, "cpu"))
    before = W.sparse_rmatvec(code)
    assert W.sparse_kernels() is W.sparse_kernels()  # built once
    W.weight.mul_(2)
    torch.testing.assert_close(W.sparse_rmatvec(code), 2 * before)
    W.load_state_dict({"weight": W.weight / 4})
    torch.testing.assert_close(W.sparse_rmatvec(code), before / 2)
    torch.testing.assert_close(
        W.sparse_gram(code), W.matvec(W.rmatvec(dense_code(code, W.out_shape)))
    )


@pytest.mark.parametrize(
    ("shape", "pool"),
    [
        ((7, 13), None),
        ((5, 6, 7), None),
        ((6, 8, 8), 2),
        ((6, 9), 3),
        ((40,), None),
        ((4, 5, 5), 1),
    ],
)
@pytest.mark.parametrize("variant", ["abs", "relu"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_sparse_projection_is_model_sparse(shape, pool, variant, channels_last):
    """Integer values full of ties: the same blocks, switches (first maximum) and values."""
    g = torch.Generator().manual_seed(0)
    h = torch.randint(-3, 4, (30, *shape), generator=g).float()
    if channels_last and h.dim() == 4:
        h = h.contiguous(memory_format=torch.channels_last)
    elif channels_last and h.dim() == 3:
        h = h.unsqueeze(2).contiguous(memory_format=torch.channels_last).squeeze(2)
    for k in (1, 3, shape[0]):
        d = model_sparse(h, k, pool, variant=variant)
        for sw in (True, False):
            e = model_sparse_entries(h, k, pool, variant=variant, switches=sw)
            assert torch.equal(
                dense_code(SparseCode(e.index, e.values), tuple(h.shape[1:])), d.code
            )
            if sw:
                assert torch.equal(e.switches, d.switches)


CASES = [
    (dict(K=96, M=32, ell=5, input_size=32), None, 10),  # Figure 2's layer
    (dict(K=16, M=4, ell=5, input_size=20), None, 5),
    (dict(K=6, M=3, ell=(3, 3), input_size=(9, 9)), 2, 5),
    (dict(K=8, M=3, ell=3, input_size=21, stride=2), 3, 4),
]


@pytest.mark.parametrize(("kw", "pool", "k"), CASES)
@pytest.mark.parametrize("step", [1.0, "normalized", 0.5])
@pytest.mark.parametrize("variant", ["abs", "relu"])
def test_code_domain_equals_signal_domain_and_dense_matrix(kw, pool, k, step, variant, device):
    W = ConvOperator.gaussian(**kw, seed=0, dtype=f64, device=device)
    z = sample_model_sparse(6, W.out_shape, k, pool, seed=3, dtype=f64, device=device)
    g = torch.Generator().manual_seed(1)
    x = W.T(z) + 0.01 * torch.randn((6, *W.in_shape), generator=g, dtype=f64).to(device)
    opts = dict(pool=pool, max_iter=15, step=step, z_true=z, variant=variant)
    seen = []
    a = iht(W, x, k, **opts, domain="signal")
    b = iht(W, x, k, **opts, domain="code", callback=lambda i, zz, s: seen.append(zz.clone()))
    D = MatrixOperator(W.dense(), W.in_shape, W.out_shape)
    c = iht(D, x, k, **opts)
    assert (a.domain, b.domain, c.domain) == ("signal", "code", "signal")
    assert a.n_iter == b.n_iter == c.n_iter and a.stop_reason == b.stop_reason
    for other in (b, c):
        torch.testing.assert_close(other.z, a.z, atol=1e-9, rtol=1e-9)
        torch.testing.assert_close(other.x_hat, a.x_hat, atol=1e-9, rtol=1e-9)
        assert torch.equal(other.switches, a.switches)
        for name in ("residual", "code_error", "support_recovery", "rel_change"):
            torch.testing.assert_close(other.history_array(name), a.history_array(name))
        # the step is a ratio of vanishing quantities once the iterates have converged
        live = a.history_array("rel_change") > 1e-6
        torch.testing.assert_close(other.history_array("step")[live], a.history_array("step")[live])
    assert len(seen) == b.n_iter and torch.equal(seen[-1], b.z)
    assert (
        b.z.is_contiguous(memory_format=torch.channels_last)
        == a.z.is_contiguous(memory_format=torch.channels_last)
        or device.type != "cpu"
    )


def test_code_domain_unbatched_and_float32():
    W = ConvOperator.gaussian(K=96, M=32, ell=5, input_size=32, seed=0)
    z = sample_model_sparse(1, W.out_shape, 10, seed=2)
    x = W.T(z)[0]
    a = iht(W, x, 10, max_iter=30, domain="signal", tol=1e-6)
    b = iht(W, x, 10, max_iter=30, domain="code", tol=1e-6)
    assert b.z.shape == W.out_shape and b.x_hat.shape == W.in_shape
    assert torch.equal(a.z != 0, b.z != 0)
    torch.testing.assert_close(b.z, a.z, atol=1e-5, rtol=1e-5)


def test_domain_choice_and_errors():
    W = ConvOperator.gaussian(K=96, M=32, ell=5, input_size=32, seed=0)
    x = W.T(sample_model_sparse(256, W.out_shape, 10, seed=1))
    assert iht(W, x, 10, max_iter=2).domain == "code"  # Figure 2's layer, batched
    assert iht(W, x[:1], 10, max_iter=2).domain == "signal"  # one signal: call overheads
    assert iht(W, x, 48, max_iter=2).domain == "signal"  # k half the blocks
    cost = code_domain_cost(W, 256, 10)
    assert cost["eligible"] and cost["code"] < cost["signal"]
    padded = ConvOperator.gaussian(K=8, M=2, ell=3, input_size=16, padding=1)
    xp = torch.randn(3, 2, 16)
    assert not code_domain_cost(padded, 3, 2)["eligible"]
    with pytest.raises(ValueError, match="padded"):
        iht(padded, xp, 2, domain="code")
    with pytest.raises(ValueError, match="z0"):
        iht(W, x[:2], 10, z0=torch.zeros(2, *W.out_shape), domain="code")
    with pytest.raises(ValueError, match="not a ConvOperator"):
        iht(MatrixOperator(torch.randn(6, 4)), torch.randn(2, 4), 2, domain="code")
    with pytest.raises(ValueError, match="domain must be one of"):
        iht(W, x[:1], 10, domain="fourier")
