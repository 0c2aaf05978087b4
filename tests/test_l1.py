"""FISTA for the paper's l1-regularised least squares, and Algorithm 2.

Convergence is checked by optimality conditions (KKT) and against an independent
coordinate-descent oracle on the dense matrix, never against stored numbers.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnninv.operators import ConvOperator, MatrixOperator
from cnninv.recovery import (
    algorithm2,
    fista,
    lam_max,
    lasso_gap,
    lasso_objective,
)
from cnninv.theory import sample_model_sparse

f64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Thousands of tiny iterations: intra-op threads only add overhead (and stall badly on
    a loaded machine), so this module runs on one and gives the setting back after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _op_1d(seed=0):
    return ConvOperator.gaussian(K=6, M=3, ell=4, input_size=16, seed=seed, dtype=f64)


def _op_2d(seed=0):
    return ConvOperator.gaussian(K=4, M=2, ell=3, input_size=(6, 7), seed=seed, dtype=f64)


OPERATORS = {"1d": _op_1d, "2d": _op_2d}


def _signal(W, batch, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((batch, *W.in_shape), generator=g, dtype=f64)


def _lam(W, x, frac):
    return frac * float(lam_max(W, x).max())


def coordinate_descent(A, x, lam, allowed=None, nonneg=False, sweeps=3000, tol=1e-15):
    """Independent oracle: cyclic coordinate descent on the dense problem
    min_z ||x - A z||^2 + lam ||z||_1 (numpy, one coordinate at a time, exact minimisation)."""
    A, x = np.asarray(A, dtype=np.float64), np.asarray(x, dtype=np.float64)
    n = A.shape[1]
    allowed = np.ones(n, dtype=bool) if allowed is None else np.asarray(allowed)
    G = A.T @ A
    c = A.T @ x  # A^T (x - A z) = c - G z
    z = np.zeros(n)
    corr = c.copy()
    for _ in range(sweeps):
        biggest = 0.0
        for j in np.flatnonzero(allowed):
            if G[j, j] == 0:
                continue
            rho = corr[j] + G[j, j] * z[j]  # A_j^T (x - A z + A_j z_j)
            # minimise G_jj u^2 - 2 rho u + lam |u| (over u >= 0 when nonneg)
            if nonneg:
                u = max(rho - lam / 2, 0.0) / G[j, j]
            else:
                u = np.sign(rho) * max(abs(rho) - lam / 2, 0.0) / G[j, j]
            delta = u - z[j]
            if delta != 0.0:
                corr -= G[:, j] * delta
                z[j] = u
                biggest = max(biggest, abs(delta))
        if biggest <= tol:
            break
    return z


def _dense_objective(A, x, z, lam):
    return float(np.sum((x - A @ z) ** 2) + lam * np.sum(np.abs(z)))


def _kkt(W, x, z, lam, mask=None, nonneg=False):
    """Max violation of the optimality conditions, relative to lam: with g = 2 W (x - W^T z),
    g_i = lam sign(z_i) on the support and |g_i| <= lam (g_i <= lam if z >= 0) off it,
    inside the mask."""
    g = 2 * W(x - W.T(z))
    on = z != 0
    allowed = torch.ones_like(on) if mask is None else mask
    on_viol = (g - lam * torch.sign(z)).abs()[on]
    off_g = g.clamp_min(0) if nonneg else g.abs()
    off_viol = (off_g - lam).clamp_min(0)[allowed & ~on]
    worst = torch.cat([on_viol, off_viol, torch.zeros(1, dtype=g.dtype)]).max()
    return float(worst) / lam


# ------------------------------------------------------------------ optimality


@pytest.mark.parametrize("op", OPERATORS)
@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("restart", [True, False])
def test_kkt_conditions_at_the_solution(op, nonneg, restart):
    W = OPERATORS[op]()
    x = _signal(W, 3, seed=1)
    lam = _lam(W, x, 0.1)
    res = fista(W, x, lam, nonneg=nonneg, tol=1e-10, max_iter=20000, restart=restart)
    assert res.stop_reason == "converged"
    assert _kkt(W, x, res.z, lam, nonneg=nonneg) < 1e-6
    if nonneg:
        assert bool((res.z >= 0).all())
    assert 0 < int((res.z != 0).sum()) < res.z.numel()  # a genuinely sparse solution


@pytest.mark.parametrize("op", OPERATORS)
@pytest.mark.parametrize(("masked", "nonneg"), [(False, False), (True, False), (True, True)])
def test_objective_matches_coordinate_descent_oracle(op, masked, nonneg):
    W = OPERATORS[op]()
    x = _signal(W, 2, seed=2)
    lam = _lam(W, x, 0.05)
    A = W.dense().T.numpy()  # x = A z, channel-major flattening
    g = torch.Generator().manual_seed(3)
    mask = torch.rand((2, *W.out_shape), generator=g) < 0.5 if masked else None
    res = fista(W, x, lam, mask=mask, nonneg=nonneg, tol=1e-12, max_iter=20000)
    for b in range(2):
        allowed = None if mask is None else mask[b].flatten().numpy()
        xb = x[b].flatten().numpy()
        z_cd = coordinate_descent(A, xb, lam, allowed, nonneg)
        f_cd = _dense_objective(A, xb, z_cd, lam)
        f_fista = _dense_objective(A, xb, res.z[b].flatten().numpy(), lam)
        assert f_fista == pytest.approx(f_cd, rel=1e-8)
        # the solution is unique for Gaussian filters in general position
        np.testing.assert_allclose(res.z[b].flatten().numpy(), z_cd, atol=1e-5)
        # weak duality against the oracle's optimum: the dual value never exceeds F*
        dual = float(res.history[-1].objective[b] - res.history[-1].gap[b])
        assert dual <= f_cd * (1 + 1e-12)
    assert torch.allclose(res.history[-1].objective, lasso_objective(W, x, res.z, lam))


def test_lam_max_gives_zero_and_sklearn_scaling():
    W = _op_1d()
    x = _signal(W, 2, seed=4)
    lm = lam_max(W, x)
    res = fista(W, x, float(lm.max()) * 1.0001)
    assert res.stop_reason == "converged" and bool((res.z == 0).all())
    assert res.n_iter == 1
    # sklearn's Lasso objective (1/2n)||x - Az||^2 + alpha||z||_1 is F / 2n with lam = 2n alpha
    n = math.prod(W.in_shape)
    alpha = 0.01
    z = fista(W, x, 2 * n * alpha, tol=1e-12, max_iter=20000).z
    A = W.dense().T
    xf, zf = x.flatten(1), z.flatten(1)
    sk = ((xf - zf @ A.T) ** 2).sum(1) / (2 * n) + alpha * zf.abs().sum(1)
    torch.testing.assert_close(sk * 2 * n, lasso_objective(W, x, z, 2 * n * alpha))


# ------------------------------------------------------------------ duality gap


@pytest.mark.parametrize(("masked", "nonneg"), [(False, False), (True, True)])
def test_gap_is_nonnegative_every_iteration_and_reaches_tol(masked, nonneg):
    W = _op_2d()
    x = _signal(W, 4, seed=5)
    lam = _lam(W, x, 0.1)
    g = torch.Generator().manual_seed(6)
    mask = torch.rand(W.out_shape, generator=g) < 0.6 if masked else None
    res = fista(W, x, lam, mask=mask, nonneg=nonneg, tol=1e-9, max_iter=20000)
    assert res.stop_reason == "converged" and bool(res.converged.all())
    gap = res.history_array("gap")
    obj = res.history_array("objective")
    assert bool((gap >= -1e-12 * obj).all())  # weak duality, to rounding
    rel = res.history_array("rel_gap")
    assert bool((rel[-1] <= 1e-9).all())
    assert bool((rel[0] > 1e-3).all())  # it had somewhere to go
    # the recorded gap is the one lasso_gap computes from scratch
    fresh = lasso_gap(W, x, res.z, lam, mask=mask, nonneg=nonneg)
    torch.testing.assert_close(fresh.gap, gap[-1], atol=1e-10, rtol=1e-6)
    torch.testing.assert_close(fresh.objective, obj[-1])
    # each sample stopped at the first iteration it met the criterion
    for b in range(4):
        first = int(torch.nonzero(rel[:, b] <= 1e-9)[0, 0]) + 1
        assert int(res.sample_iters[b]) == first


def test_rel_change_criterion():
    W = _op_1d()
    x = _signal(W, 2, seed=7)
    lam = _lam(W, x, 0.1)
    res = fista(W, x, lam, criterion="rel_change", tol=1e-10, max_iter=20000)
    assert res.stop_reason == "converged"
    assert bool((res.history_array("rel_change")[-1] <= 1e-10).all())
    assert _kkt(W, x, res.z, lam) < 1e-4


def test_least_squares_with_rel_change():
    """lam = 0 is least squares: x = W^T z is solvable (Kn > MD), the residual vanishes."""
    W = _op_1d()
    x = _signal(W, 2, seed=22)
    res = fista(W, x, 0.0, criterion="rel_change", tol=1e-10, max_iter=20000)
    assert res.stop_reason == "converged"
    assert float((x - W.T(res.z)).norm() / x.norm()) < 1e-6


def test_max_iter_stop_reason_and_warm_start():
    W = _op_1d()
    x = _signal(W, 2, seed=8)
    lam = _lam(W, x, 0.1)
    short = fista(W, x, lam, tol=1e-12, max_iter=3)
    assert short.stop_reason == "max_iter" and short.n_iter == 3
    assert not bool(short.converged.any())
    full = fista(W, x, lam, tol=1e-12, max_iter=20000)
    warm = fista(W, x, lam, tol=1e-10, z0=full.z)
    assert warm.n_iter == 1 and warm.stop_reason == "converged"


@pytest.mark.parametrize("nonneg", [False, True])
def test_fista_leaves_its_inputs_untouched(nonneg):
    """FISTA updates its temporaries in place: never the caller's x, z0 or mask."""
    W = _op_2d()
    x = _signal(W, 3, seed=5)
    g = torch.Generator().manual_seed(6)
    z0 = torch.rand((3, *W.out_shape), generator=g, dtype=f64)
    mask = torch.rand((3, *W.out_shape), generator=g) > 0.3
    for z0_ in (z0, W.native_layout(z0)):  # already in the operator's layout: no copy made
        kept = (x.clone(), z0_.clone(), mask.clone())
        res = fista(W, x, _lam(W, x, 0.1), z0=z0_, mask=mask, nonneg=nonneg, max_iter=15)
        for before, after in zip(kept, (x, z0_, mask), strict=True):
            assert torch.equal(before, after)
        assert not torch.equal(res.z, z0_)


def test_lipschitz_underestimate_is_caught_by_backtracking():
    W = _op_1d()
    x = _signal(W, 2, seed=9)
    lam = _lam(W, x, 0.1)
    true_L = 2 * W.norm_sq(n_iter=5000, tol=1e-15)
    res = fista(W, x, lam, lipschitz=0.1 * true_L, tol=1e-10, max_iter=20000)
    assert res.stop_reason == "converged"
    # raised until the sufficient-decrease test holds along the path (it need not reach
    # 2||W||^2: Beck & Teboulle's backtracking only needs it at the points visited)
    assert bool((res.lipschitz > 0.3 * true_L).all())
    assert bool(torch.isfinite(res.history_array("objective")).all())
    assert _kkt(W, x, res.z, lam) < 1e-4
    ref = fista(W, x, lam, tol=1e-10, max_iter=20000)
    torch.testing.assert_close(res.z, ref.z, atol=1e-6, rtol=0)


def test_float32_settles_without_spurious_backtracking():
    """Once settled, W^T(z+ - y) is rounding noise; the step test must not read it as
    curvature (it used to raise L without end, the step went to 0 and the gap back up)."""
    W = ConvOperator.gaussian(K=6, M=3, ell=4, input_size=16, seed=0)
    x = _signal(W, 3, seed=1).float()
    res = fista(W, x, _lam(W, x, 0.1), tol=0.0, max_iter=2000)
    assert res.stop_reason == "max_iter"  # tol=0: runs on long after it has settled
    step = res.history_array("step")
    assert bool((step[-1] == step[0]).all())
    assert bool((res.history_array("rel_gap")[-1] < 1e-5).all())  # float32 floor ~1e-7


def test_code_error_and_callback_are_recorded():
    W = _op_1d()
    x = _signal(W, 2, seed=10)
    z_true = torch.zeros((2, *W.out_shape), dtype=f64)
    seen = []
    res = fista(W, x, _lam(W, x, 0.2), z_true=z_true + 1, callback=lambda i, z, s: seen.append(i))
    assert seen == list(range(1, res.n_iter + 1))
    assert res.history_array("code_error").shape == (res.n_iter, 2)
    with pytest.raises(ValueError, match="z_true"):
        fista(W, x, 1.0).history_array("code_error")


# ------------------------------------------------------------------ constraints


def test_mask_is_respected_exactly_and_nonneg():
    W = _op_2d()
    x = _signal(W, 3, seed=11)
    lam = _lam(W, x, 0.01)
    g = torch.Generator().manual_seed(12)
    mask = torch.rand((3, *W.out_shape), generator=g) < 0.3
    dense_start = torch.randn((3, *W.out_shape), generator=g, dtype=f64)
    res = fista(W, x, lam, mask=mask, z0=dense_start, tol=1e-10, max_iter=20000)
    assert bool((res.z[~mask] == 0).all())  # exactly, from any start
    assert bool((res.z[mask] != 0).any())
    assert _kkt(W, x, res.z, lam, mask=mask) < 1e-4
    pos = fista(W, x, lam, mask=mask, nonneg=True, z0=dense_start, tol=1e-10, max_iter=20000)
    assert bool((pos.z[~mask] == 0).all()) and bool((pos.z >= 0).all())
    assert bool((pos.z > 0).any())
    assert _kkt(W, x, pos.z, lam, mask=mask, nonneg=True) < 1e-4
    # one mask of shape (K, *output_size) applies to every sample
    shared = fista(W, x, lam, mask=mask[0], tol=1e-10, max_iter=20000)
    assert bool((shared.z[:, ~mask[0]] == 0).all())


def test_empty_mask_gives_zero():
    W = _op_1d()
    x = _signal(W, 2, seed=13)
    mask = torch.zeros(W.out_shape, dtype=torch.bool)
    res = fista(W, x, 1.0, mask=mask)
    assert bool((res.z == 0).all()) and res.stop_reason == "converged"
    assert bool((res.history[-1].gap.abs() < 1e-12).all())


# ------------------------------------------------------------------ batching


@pytest.mark.parametrize("criterion", ["gap", "rel_change"])
def test_batched_equals_per_sample(criterion):
    W = _op_2d()
    x = _signal(W, 3, seed=14)
    lam = _lam(W, x, 0.1)
    g = torch.Generator().manual_seed(15)
    mask = torch.rand((3, *W.out_shape), generator=g) < 0.7
    res = fista(W, x, lam, mask=mask, tol=1e-7, criterion=criterion, max_iter=20000)
    for b in range(3):
        one = fista(W, x[b : b + 1], lam, mask=mask[b : b + 1], tol=1e-7, criterion=criterion)
        torch.testing.assert_close(res.z[b : b + 1], one.z, atol=1e-8, rtol=0)
        assert int(res.sample_iters[b]) == one.n_iter
        # and the unbatched call returns the unbatched code
        single = fista(W, x[b], lam, mask=mask[b], tol=1e-7, criterion=criterion)
        assert single.z.shape == W.out_shape
        torch.testing.assert_close(single.z, one.z[0], atol=1e-8, rtol=0)


# ------------------------------------------------------------------ Algorithm 2


def _one_per_block(z, pool):
    """Non-zeros per (sample, channel, pooling region), for maps divisible by pool."""
    nz = (z != 0).to(f64)
    if z.dim() == 3:
        return F.avg_pool1d(nz, pool, ceil_mode=True) * pool
    return F.avg_pool2d(nz, pool, ceil_mode=True) * pool * pool


@pytest.mark.parametrize("variant", ["abs", "relu"])
@pytest.mark.parametrize("k", [None, 5])
def test_algorithm2_output_is_model_sparse(variant, k):
    W = ConvOperator.gaussian(K=4, M=2, ell=3, input_size=(10, 10), seed=16, dtype=f64)
    x = _signal(W, 3, seed=17)  # 8x8 maps, 2x2 regions
    lam = _lam(W, x, 0.05)
    res = algorithm2(W, x, lam, pool=2, k=k, variant=variant, tol=1e-10, max_iter=20000)
    assert bool((res.z[~res.mask] == 0).all())
    assert float(_one_per_block(res.z, 2).max()) <= 1 + 1e-12
    assert float(_one_per_block(res.mask, 2).max()) <= 1 + 1e-12
    if k is not None:
        assert int((res.z != 0).flatten(1).sum(1).max()) <= k
    # step 1 is unconstrained and denser; step 2 is max pooling with switches
    assert int((res.z_init != 0).sum()) > int((res.z != 0).sum())
    torch.testing.assert_close(res.mask, res.z_model != 0)
    # step 3 solves the restricted problem: KKT on the mask
    assert res.restricted.stop_reason == "converged"
    assert _kkt(W, x, res.z, lam, mask=res.mask) < 1e-4
    assert _kkt(W, x, res.z_init, lam) < 1e-4
    torch.testing.assert_close(res.x_hat, W.T(res.z))


@pytest.mark.parametrize("pool", [None, 4])
def test_algorithm2_recovers_planted_model_sparse_code(pool):
    W = ConvOperator.gaussian(K=16, M=8, ell=5, input_size=32, seed=18, dtype=f64)
    k = 4
    z = sample_model_sparse(5, W.out_shape, k, pool, seed=19, dtype=f64)
    z = torch.sign(z) * (0.5 + 0.5 * z.abs())  # magnitudes in [0.5, 1]
    x = W.T(z)
    lam = _lam(W, x, 1e-3)
    res = algorithm2(W, x, lam, pool=pool, tol=1e-10, max_iter=20000, z_true=z)
    assert bool(((res.z != 0) == (z != 0)).all())  # exact support
    err = (res.z - z).flatten(1).norm(dim=1) / z.flatten(1).norm(dim=1)
    assert float(err.max()) < 1e-2  # only the l1 shrinkage remains
    assert res.restricted.history_array("code_error")[-1].max() < 1e-2
    # with k given, the same support
    res_k = algorithm2(W, x, lam, pool=pool, k=k, tol=1e-10, max_iter=20000)
    assert bool(((res_k.z != 0) == (z != 0)).all())


def test_algorithm2_unbatched():
    W = _op_1d()
    x = _signal(W, 2, seed=20)
    lam = _lam(W, x, 0.1)
    both = algorithm2(W, x, lam, pool=4, tol=1e-10, max_iter=20000)
    one = algorithm2(W, x[1], lam, pool=4, tol=1e-10, max_iter=20000)
    assert one.z.shape == W.out_shape and one.mask.shape == W.out_shape
    torch.testing.assert_close(one.z, both.z[1], atol=1e-8, rtol=0)


def test_algorithm2_warm_start_solves_the_same_problems():
    """z0 (a λ path: the solution at a larger λ) changes the solver's path, not the
    solution: the same codes to the tolerance."""
    W = ConvOperator.gaussian(K=4, M=2, ell=3, input_size=(8, 8), seed=21, dtype=f64)
    x = _signal(W, 2, seed=22)
    big = algorithm2(W, x, _lam(W, x, 0.2), pool=2, tol=1e-10, max_iter=50000)
    lam = _lam(W, x, 0.05)
    cold = algorithm2(W, x, lam, pool=2, tol=1e-10, max_iter=50000)
    warm = algorithm2(W, x, lam, pool=2, tol=1e-10, max_iter=50000, z0=big.z_init)
    torch.testing.assert_close(warm.z_init, cold.z_init, atol=1e-6, rtol=0)
    torch.testing.assert_close(warm.z, cold.z, atol=1e-6, rtol=0)
    # and it did start from z0: its first iterate is already near the solution
    first = lambda r: r.init.history[0].objective  # noqa: E731
    assert bool((first(warm) < first(cold)).all())
    with pytest.raises(ValueError, match="z0"):
        algorithm2(W, x, lam, pool=2, z0=big.z_init[:1])


# ------------------------------------------------------------------ errors


def test_errors_name_the_parameter():
    W = _op_1d()
    x = _signal(W, 2, seed=21)
    with pytest.raises(ValueError, match="lam"):
        fista(W, x, -1.0)
    with pytest.raises(ValueError, match="lam"):
        fista(W, x, float("nan"))
    with pytest.raises(ValueError, match="lam"):
        lasso_objective(W, x, torch.zeros((2, *W.out_shape), dtype=f64), -0.5)
    with pytest.raises(ValueError, match="criterion"):
        fista(W, x, 1.0, criterion="objective")
    with pytest.raises(ValueError, match="criterion"):
        algorithm2(W, x, 1.0, criterion="nope")
    with pytest.raises(ValueError, match="tol"):
        fista(W, x, 1.0, tol=-1e-3)
    with pytest.raises(ValueError, match="lam > 0"):
        fista(W, x, 0.0)  # the gap criterion has no certificate for least squares
    with pytest.raises(ValueError, match="max_iter"):
        fista(W, x, 1.0, max_iter=0)
    with pytest.raises(ValueError, match="lipschitz"):
        fista(W, x, 1.0, lipschitz=0.0)
    bad = x.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        fista(W, bad, 1.0)
    with pytest.raises(ValueError, match="x contains NaN"):
        algorithm2(W, bad, 1.0)
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., 3, 16\), got \(2, 3, 15\)"):
        fista(W, x[..., :-1], 1.0)
    with pytest.raises(ValueError, match="z0"):
        fista(W, x, 1.0, z0=torch.zeros((3, *W.out_shape), dtype=f64))
    with pytest.raises(ValueError, match="z0"):
        fista(W, x, 1.0, z0=torch.full((2, *W.out_shape), float("inf"), dtype=f64))
    with pytest.raises(ValueError, match="mask"):
        fista(W, x, 1.0, mask=torch.ones(W.out_shape))  # not boolean
    with pytest.raises(ValueError, match="mask"):
        fista(W, x, 1.0, mask=torch.ones((5, 5), dtype=torch.bool))
    with pytest.raises(ValueError, match="W must be a LinearOperator"):
        fista(W.dense(), x, 1.0)
    with pytest.raises(ValueError, match="nonneg must be a bool"):
        lam_max(W, x, nonneg=1)
    with pytest.raises(ValueError, match="restart must be a bool"):
        fista(W, x, 1.0, restart="yes")
    with pytest.raises(ValueError, match="x is too large"):
        fista(W, x * 1e300, 1.0)
    with pytest.raises(ValueError, match="k must be"):
        algorithm2(W, x, 1.0, pool=4, k=0)
    with pytest.raises(ValueError, match="variant"):
        algorithm2(W, x, 1.0, variant="max")
    with pytest.raises(ValueError, match="pool"):
        algorithm2(W, x, 1.0, pool=0)
    with pytest.raises(ValueError, match="not feasible"):
        lasso_gap(W, x, -torch.ones((2, *W.out_shape), dtype=f64), 1.0, nonneg=True)


# ------------------------------------------------------------------ any operator


@pytest.mark.parametrize("op", OPERATORS)
def test_fista_on_the_dense_matrix_equals_fista_on_W(op):
    """MatrixOperator(W.dense(), W.in_shape, W.out_shape) is a drop-in oracle for W: the
    same iterates to rounding, and the same Lipschitz constant when it is given."""
    W = OPERATORS[op]()
    D = MatrixOperator(W.dense(), W.in_shape, W.out_shape)
    x = _signal(W, 3, seed=23)
    lam = _lam(W, x, 0.1)
    torch.testing.assert_close(lam_max(D, x), lam_max(W, x))
    L = 2.0 * 1.02 * W.norm_sq(n_iter=100)
    g = torch.Generator().manual_seed(24)
    mask = torch.rand(W.out_shape, generator=g) < 0.7
    a = fista(W, x, lam, mask=mask, lipschitz=L, tol=1e-10, max_iter=20000)
    b = fista(D, x, lam, mask=mask, lipschitz=L, tol=1e-10, max_iter=20000)
    assert a.n_iter == b.n_iter and a.stop_reason == b.stop_reason == "converged"
    torch.testing.assert_close(a.z, b.z, atol=1e-10, rtol=0)
    torch.testing.assert_close(a.history_array("objective"), b.history_array("objective"))
    torch.testing.assert_close(lasso_objective(D, x, b.z, lam), lasso_objective(W, x, a.z, lam))
    # and Algorithm 2 on it (its default L is the power method's, on each operator)
    r2w = algorithm2(W, x, lam, pool=2, lipschitz=L, tol=1e-10, max_iter=20000)
    r2d = algorithm2(D, x, lam, pool=2, lipschitz=L, tol=1e-10, max_iter=20000)
    assert torch.equal(r2w.mask, r2d.mask)
    torch.testing.assert_close(r2w.z, r2d.z, atol=1e-9, rtol=0)


def test_fista_on_a_product_of_layers():
    """Two layers as one operator: W2 @ W1 synthesises x = W1^T W2^T z."""
    W1 = ConvOperator.gaussian(K=6, M=3, ell=3, input_size=16, seed=0, dtype=f64)
    W2 = ConvOperator.gaussian(K=8, M=6, ell=3, input_size=14, seed=1, dtype=f64)
    A = W2 @ W1
    x = _signal(A, 2, seed=25)
    lam = _lam(A, x, 0.1)
    res = fista(A, x, lam, tol=1e-10, max_iter=20000)
    assert res.stop_reason == "converged" and res.z.shape == (2, *A.out_shape)
    assert _kkt(A, x, res.z, lam) < 1e-5
