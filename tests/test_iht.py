import pytest
import torch

from cnninv.operators import ConvOperator
from cnninv.recovery import iht
from cnninv.sparsity import model_sparse
from cnninv.theory import sample_model_sparse


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
    with pytest.raises(ValueError, match="Dimension mismatch: x"):
        iht(W, torch.randn(1, 3, 16), k=2)
    with pytest.raises(ValueError, match="must be a ConvOperator"):
        iht(torch.randn(3, 3), torch.randn(3), k=1)
