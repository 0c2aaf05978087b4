"""Step sizes without power iterations: the DFT bound on a convolution's norm, its cache on
the operator, and which estimate the solvers use."""

import pytest
import torch

from cnninv.operators import ConvOperator, MatrixOperator
from cnninv.operators.conv import dft_cost
from cnninv.recovery import algorithm2, fista, lam_max

f64 = torch.float64


def _gauss(seed=0, **kw):
    return ConvOperator.gaussian(**kw, seed=seed, dtype=f64)


LAYERS = {
    "1d": dict(K=12, M=4, ell=5, input_size=24),
    "1d_padded": dict(K=6, M=5, ell=3, input_size=16, padding=2),
    "2d": dict(K=8, M=3, ell=(3, 3), input_size=(10, 9)),
    "2d_padded": dict(K=5, M=6, ell=(3, 2), input_size=(8, 7), padding=1),
    "strided": dict(K=6, M=2, ell=4, input_size=18, stride=2),
    "dilated": dict(K=4, M=2, ell=3, input_size=16, padding=1, dilation=2),
    "grouped": dict(K=6, M=4, ell=(3, 3), input_size=(7, 7), groups=2),
}


def _norm_sq(A: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(A, ord=2)) ** 2


@pytest.mark.parametrize("name", list(LAYERS))
def test_dft_bound_is_an_upper_bound_and_tight_at_stride_1(name):
    W = _gauss(**LAYERS[name])
    exact = _norm_sq(W.dense())
    bound = W.norm_sq_bound()
    assert bound >= exact * (1 - 1e-12)
    if all(t == 1 for t in W.stride):
        assert bound <= 1.25 * exact  # tiny maps: the boundary weighs more than at real sizes
    else:
        assert bound <= 4 * exact  # a stride keeps rows: valid, looser


def test_dft_bound_is_the_circulant_norm_on_a_periodic_example():
    """One filter and one channel: the bound is max_w |w_hat(w)|^2 over the padded length."""
    w = torch.tensor([[[1.0, -2.0, 0.5]]], dtype=f64)
    W = ConvOperator(w, 13, padding=1)
    spectrum = torch.fft.fft(torch.nn.functional.pad(w[0, 0], (0, 12)))
    exact = float(spectrum.abs().max()) ** 2
    assert exact <= W.norm_sq_bound() <= exact * (1 + 2e-4)  # single precision plus a margin


@pytest.mark.parametrize("name", ["1d", "2d_padded", "strided", "grouped"])
def test_lanczos_approaches_the_norm_from_below_faster_than_the_power_method(name):
    W = _gauss(**LAYERS[name])
    exact = _norm_sq(W.dense())
    lanczos = W.norm_sq_lanczos(20)
    assert lanczos <= exact * (1 + 1e-9)
    assert exact - lanczos <= exact - W.norm_sq(n_iter=20, tol=0) + 1e-12
    assert lanczos == pytest.approx(exact, rel=1e-3)
    assert W.norm_sq_lanczos(10_000) == pytest.approx(exact, rel=1e-9)  # stops when exact
    with pytest.raises(ValueError, match="n_iter"):
        W.norm_sq_lanczos(0)


def test_composite_bounds():
    A, B = _gauss(**LAYERS["1d"]), _gauss(**LAYERS["1d"], seed=3)
    C = _gauss(K=3, M=12, ell=2, input_size=20, seed=4)
    for op in (A.T, 2.5 * A, A + B, A - B, C @ A):
        assert op.norm_sq_bound() >= _norm_sq(op.dense()) * (1 - 1e-12)
    assert (2.5 * A).norm_sq_bound() == pytest.approx(6.25 * A.norm_sq_bound())
    assert MatrixOperator(torch.randn(4, 3, dtype=f64)).norm_sq_bound() is None


def test_estimate_picks_the_bound_where_it_is_tight_and_cheap():
    fig2 = ConvOperator.gaussian(K=96, M=32, ell=5, input_size=32, seed=0)
    est = fig2.norm_sq_estimate()
    assert (est.method, est.upper_bound) == ("dft", True)
    power = fig2.norm_sq(n_iter=2000, tol=1e-10)
    assert power <= est.value <= 1.02 * power  # within a few percent of the norm
    strided = _gauss(**LAYERS["strided"])
    assert strided.norm_sq_estimate().method == "lanczos"
    big = ConvOperator.gaussian(K=512, M=512, ell=3, input_size=(14, 14), padding=1, seed=0)
    cost = dft_cost(big)
    assert cost["dft"] > cost["lanczos"]  # VGG conv5: 512^3 per frequency loses
    assert (2 * fig2).norm_sq_estimate().value == pytest.approx(4 * est.value)
    assert fig2.T.norm_sq_estimate() == est


def test_cached_until_the_weight_changes():
    W = ConvOperator.gaussian(K=8, M=3, ell=3, input_size=12, seed=0)
    first = W.norm_sq_bound()
    calls = []
    est = W.norm_sq_estimate()
    W.norm_sq_lanczos = lambda *a, **k: calls.append(1)  # the cache answers
    assert W.norm_sq_estimate() is est and W.norm_sq_bound() == first and not calls
    del W.norm_sq_lanczos
    W.weight.mul_(2)  # in place
    assert W.norm_sq_bound() == pytest.approx(4 * first)
    assert W.norm_sq_estimate().value == pytest.approx(4 * est.value)
    W.load_state_dict({"weight": W.weight / 2})
    assert W.norm_sq_bound() == pytest.approx(first)
    W.weight = torch.zeros_like(W.weight)  # a new tensor
    assert W.norm_sq_bound() == 0.0
    W64 = W.to(f64)
    W64.weight.copy_(torch.ones_like(W64.weight))
    assert W64.norm_sq_bound() > 0


def test_solvers_say_which_step_they_used():
    W = ConvOperator.gaussian(K=16, M=8, ell=5, input_size=32, seed=0, dtype=f64)
    x = torch.randn(3, 8, 32, generator=torch.Generator().manual_seed(0), dtype=f64)
    lam = 0.1 * float(lam_max(W, x).max())
    res = fista(W, x, lam, tol=1e-8)
    assert res.lipschitz_source == "dft"
    assert res.stop_reason == "converged"
    # a proven bound: the step never needs backtracking
    torch.testing.assert_close(res.lipschitz, torch.full((3,), 2 * W.norm_sq_bound(), dtype=f64))
    given = fista(W, x, lam, tol=1e-8, lipschitz=2 * 1.02 * W.norm_sq(n_iter=100))
    assert given.lipschitz_source == "given"
    torch.testing.assert_close(res.z, given.z, atol=1e-6, rtol=0)
    strided = ConvOperator.gaussian(K=8, M=4, ell=4, input_size=30, stride=2, dtype=f64)
    assert fista(strided, torch.randn(1, 4, 30, dtype=f64), 0.1).lipschitz_source == "lanczos"
    a2 = algorithm2(W, x, lam, pool=2)
    assert a2.init.lipschitz_source == a2.restricted.lipschitz_source == "dft"


def test_inference_mode_operators_are_not_cached_but_work():
    with torch.inference_mode():
        W = ConvOperator.gaussian(K=8, M=3, ell=3, input_size=12, seed=0)
        first = W.norm_sq_bound()
        W.weight.mul_(2)  # no version counter to see this by: hence no cache
        assert W.norm_sq_bound() == pytest.approx(4 * first)
        assert W.norm_sq_estimate().method == "dft"
