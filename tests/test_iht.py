import math

import pytest
import torch

from cnninv.operators import ConvOperator, MatrixOperator
from cnninv.recovery import iht
from cnninv.sparsity import model_sparse
from cnninv.theory import sample_model_sparse

f64 = torch.float64


@pytest.mark.parametrize("variant", ["abs", "relu"])
def test_one_iteration_is_the_feed_forward_layer_2d(variant):
    """conv -> (ReLU) -> max pool -> unpool with switches -> conv-transpose, in plain torch.nn."""
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False).double()
    pool = torch.nn.MaxPool2d(2, return_indices=True)
    unpool = torch.nn.MaxUnpool2d(2)
    deconv = torch.nn.ConvTranspose2d(8, 3, 3, padding=1, bias=False).double()
    deconv.weight.data.copy_(conv.weight.data)
    x = torch.randn(4, 3, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        h = conv(x)
        if variant == "abs":  # max-|.| pooling: pool |h|, keep the signed value
            _, idx = pool(h.abs())
            pooled = h.flatten(2).gather(2, idx.flatten(2)).view_as(idx)
        else:
            pooled, idx = pool(torch.relu(h))
        code = unpool(pooled, idx, output_size=h.shape[-2:])
        x_hat = deconv(code)
    W = ConvOperator.from_conv(conv, (12, 12))
    res = iht(W, x, k=None, pool=2, variant=variant, max_iter=1)
    torch.testing.assert_close(res.z, code)
    torch.testing.assert_close(res.x_hat, x_hat)
    assert res.n_iter == 1


def test_one_iteration_is_projection_of_Wx_1d():
    W = ConvOperator.gaussian(K=96, M=32, ell=5, input_size=32, seed=0)
    x = torch.randn(5, 32, 32)
    res = iht(W, x, k=10)
    torch.testing.assert_close(res.z, model_sparse(W(x), 10).code)
    torch.testing.assert_close(res.x_hat, W.T(res.z))


def test_recovers_planted_code_at_figure2_size():
    W = ConvOperator.gaussian(K=96, M=32, ell=5, input_size=32, seed=0, dtype=torch.float64)
    z = sample_model_sparse(64, W.out_shape, 10, seed=1, dtype=torch.float64)
    res = iht(W, W.T(z), k=10, max_iter=50, tol=1e-10, z_true=z)
    err = res.history_array("code_error")
    assert err[0].median() > 0.1  # one iteration (the CNN layer) is only approximate
    exact = err[-1] < 1e-6
    assert exact.float().mean() >= 0.95  # step 1 is not guaranteed: a rare sample cycles
    assert res.history_array("support_recovery")[-1][exact].min() == 1.0
    assert res.history_array("residual")[-1][exact].max() < 1e-6
    # normalised IHT recovers every one of them, and says it converged
    nres = iht(W, W.T(z), k=10, max_iter=100, tol=1e-10, z_true=z, step="normalized")
    assert nres.stop_reason == "converged"
    assert nres.history_array("code_error")[-1].max() < 1e-6


def test_normalized_step_recovers_an_unscaled_operator():
    """With W scaled by 3 the fixed step 1 diverges; NIHT's step adapts."""
    base = ConvOperator.gaussian(K=96, M=32, ell=5, input_size=32, seed=0, dtype=torch.float64)
    W = ConvOperator(3 * base.weight, 32)
    z = sample_model_sparse(16, W.out_shape, 10, seed=2, dtype=torch.float64)
    x = W.T(z)
    fixed = iht(W, x, k=10, max_iter=30)
    adaptive = iht(W, x, k=10, max_iter=100, step="normalized", z_true=z)
    assert fixed.history_array("residual")[-1].median() > 1
    assert adaptive.history_array("residual")[-1].max() < 1e-6


def test_history_callback_and_unbatched():
    W = ConvOperator.gaussian(K=8, M=2, ell=3, input_size=16, seed=0)
    seen = []
    res = iht(W, torch.randn(2, 16), k=3, max_iter=4, callback=lambda i, z, s: seen.append(i))
    assert seen == [1, 2, 3, 4] and res.z.shape == W.out_shape
    assert res.history_array("residual").shape == (4, 1)
    with pytest.raises(ValueError, match="z_true"):
        res.history_array("code_error")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(k=0), "k must be between 1"),
        (dict(k=9), "number of blocks \\(8\\)"),
        (dict(k=2, max_iter=0), "max_iter"),
        (dict(k=2, step="big"), "step must be"),
        (dict(k=2, step=math.inf), "step must be positive"),
        (dict(k=2, variant="max"), "variant"),
        (dict(k=2, pool=0), "pool"),
        (dict(k=2, max_backtrack=-1), "max_backtrack"),
        (dict(k=2, callback=3), "callback"),
        (dict(k=2, step=-1.0), "step must be positive"),
        (dict(k=2, tol=-1.0), "tol"),
    ],
)
def test_errors(kwargs, match):
    W = ConvOperator.gaussian(K=8, M=2, ell=3, input_size=16)
    with pytest.raises(ValueError, match=match):
        iht(W, torch.randn(1, 2, 16), **kwargs)


def test_nan_and_shape_errors():
    W = ConvOperator.gaussian(K=8, M=2, ell=3, input_size=16)
    with pytest.raises(ValueError, match="x contains NaN"):
        iht(W, torch.full((1, 2, 16), float("nan")), k=2)
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., 2, 16\), got \(1, 3, 16\)"):
        iht(W, torch.randn(1, 3, 16), k=2)
    with pytest.raises(ValueError, match="W must be a LinearOperator"):
        iht(torch.randn(3, 3), torch.randn(3), k=1)
    with pytest.raises(ValueError, match="z_true: expected shape"):
        iht(W, torch.randn(1, 2, 16), k=2, z_true=torch.zeros(1, 8, 15))
    with pytest.raises(ValueError, match="z0 has batch 2 but x has 1"):
        iht(W, torch.randn(1, 2, 16), k=2, z0=torch.zeros(2, 8, 14))
    with pytest.raises(ValueError, match="x is too large"):
        iht(W, torch.full((1, 2, 16), 1e30), k=2)


def test_a_diverging_fixed_step_is_an_error_not_nan():
    """A fixed step far too large for W: the iterates overflow; iht says so (it used to
    return inf and NaN in the history)."""
    base = ConvOperator.gaussian(K=96, M=32, ell=5, input_size=32, seed=0)
    W = ConvOperator(30 * base.weight, 32)
    z = sample_model_sparse(4, W.out_shape, 10, seed=2)
    with pytest.raises(ValueError, match=r"iht diverged at iteration .*step='normalized'"):
        iht(W, W.T(z), k=10, max_iter=200)
    res = iht(W, W.T(z), k=10, max_iter=200, step="normalized", tol=1e-6)
    assert bool(torch.isfinite(res.history_array("residual")).all())


def test_normalized_step_equals_its_dense_oracle(device):
    """NIHT's step mu = ||g_G||^2 / ||W^T g_G||^2, computed from the dense matrix at every
    iteration (G = supp(z_i), or supp(M(g, k)) at the first), is what iht records, up to
    the safeguard's halvings."""
    W = ConvOperator.gaussian(
        K=8, M=3, ell=(3, 3), input_size=(8, 8), seed=0, dtype=f64, device=device
    )
    A = W.dense()  # (Kn, MD)
    z_true = sample_model_sparse(5, W.out_shape, 6, 2, seed=1, dtype=f64, device=device)
    x = W.T(z_true) + 0.01 * torch.randn(
        (5, *W.in_shape), generator=torch.Generator().manual_seed(2), dtype=f64
    ).to(device)
    iterates = []
    res = iht(
        W, x, 6, pool=2, max_iter=8, step="normalized",
        callback=lambda i, z, stat: iterates.append(z.clone()),
    )  # fmt: skip
    zeros = torch.zeros((5, *W.out_shape), dtype=f64, device=device)
    halvings = []
    for it, stat in enumerate(res.history):
        z_prev = zeros if it == 0 else iterates[it - 1]
        g = (x.flatten(1) - z_prev.flatten(1) @ A) @ A.T  # W (x - W^T z)
        if it == 0:
            support = model_sparse(g.view_as(z_prev), 6, 2).code.flatten(1) != 0
        else:
            support = z_prev.flatten(1) != 0
        g_s = g * support
        oracle = (g_s.norm(dim=1) ** 2) / ((g_s @ A).norm(dim=1) ** 2)
        ratio = torch.log2(oracle / stat.step)  # 0, or the number of halvings
        torch.testing.assert_close(ratio, ratio.round(), atol=1e-9, rtol=0)
        assert bool((ratio.round() >= 0).all())
        halvings.append(ratio.round())
    assert float(torch.stack(halvings).eq(0).float().mean()) > 0.5


@pytest.mark.parametrize(
    ("ndim", "pool", "step"), [(1, None, 1.0), (2, 2, 1.0), (2, 2, "normalized"), (1, 4, 0.5)]
)
def test_iht_on_the_dense_matrix_equals_iht_on_W(ndim, pool, step):
    """MatrixOperator(W.dense(), W.in_shape, W.out_shape) is a drop-in oracle for W."""
    if ndim == 1:
        W = ConvOperator.gaussian(K=16, M=4, ell=5, input_size=20, seed=0, dtype=f64)
    else:
        W = ConvOperator.gaussian(K=6, M=3, ell=3, input_size=(9, 9), padding=1, seed=0,
                                  dtype=f64)  # fmt: skip
    D = MatrixOperator(W.dense(), W.in_shape, W.out_shape)
    k = 5
    z = sample_model_sparse(6, W.out_shape, k, pool, seed=3, dtype=f64)
    x = W.T(z)
    a = iht(W, x, k, pool=pool, max_iter=15, step=step, z_true=z)
    b = iht(D, x, k, pool=pool, max_iter=15, step=step, z_true=z)
    assert a.n_iter == b.n_iter and a.stop_reason == b.stop_reason
    torch.testing.assert_close(a.z, b.z, atol=1e-10, rtol=0)
    torch.testing.assert_close(a.x_hat, b.x_hat, atol=1e-10, rtol=0)
    assert torch.equal(a.switches, b.switches)
    for name in ("residual", "step", "code_error", "support_recovery"):
        torch.testing.assert_close(a.history_array(name), b.history_array(name))


def test_plain_k_sparse_iht_on_a_matrix():
    """A matrix without spatial axes: every entry is a block, one iteration is the hard
    threshold of A^T x... here of W x = A x, by brute force on the support."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(40, 20, generator=g, dtype=f64) / math.sqrt(20)  # (N, MD): W = A
    W = MatrixOperator(A)
    z = torch.zeros(3, 40, dtype=f64)
    z[:, [1, 7, 30]] = torch.tensor([1.0, -2.0, 0.5], dtype=f64)
    x = W.T(z)
    res = iht(W, x, 3, max_iter=1)
    h = x @ A.T
    keep = h.abs().topk(3, dim=1).indices
    expected = torch.zeros_like(h).scatter(1, keep, h.gather(1, keep))
    torch.testing.assert_close(res.z, expected)
    nres = iht(W, x, 3, max_iter=300, step="normalized", tol=1e-12, z_true=z)
    assert nres.history_array("code_error")[-1].max() < 1e-6
