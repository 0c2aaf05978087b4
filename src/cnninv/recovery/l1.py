r"""l1-regularised least squares on a layer, :math:`\min_z \|x-\mathbf W^Tz\|_2^2 +
\lambda\|z\|_1` (optionally restricted to a support and to :math:`z \ge 0`): FISTA with a
duality-gap certificate, and the objective, gap and :math:`\lambda_{\max}` on their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import torch

from cnninv._checks import check_bool, check_number, check_positive_int
from cnninv.metrics import per_sample_norm
from cnninv.operators import LinearOperator
from cnninv.recovery._common import (
    CRITERIA,
    HistoryMixin,
    bcast,
    check_code,
    check_criterion,
    check_lipschitz,
    check_mask,
    check_norm,
    check_signal,
    dims,
    safe_div,
)

__all__ = [
    "CRITERIA",
    "DualityGap",
    "L1Result",
    "L1Stat",
    "fista",
    "lam_max",
    "lasso_gap",
    "lasso_objective",
]


class DualityGap(NamedTuple):
    r"""Primal and dual values of the Lasso :math:`F(z)=\|x-\mathbf W^Tz\|_2^2+\lambda\|z\|_1`
    at a code ``z`` and the dual point :math:`\theta = s\,r` built from its residual; each
    field is a per-sample tensor ``(B,)``.

    objective : :math:`F(z)`
    dual : :math:`D(\theta) = \|x\|^2 - \|x-\theta\|^2`
    gap : :math:`F(z) - D(\theta) \ge 0` (weak duality)
    rel_gap : ``gap / objective`` (0 where the objective is 0)
    """

    objective: torch.Tensor
    dual: torch.Tensor
    gap: torch.Tensor
    rel_gap: torch.Tensor


class L1Stat(NamedTuple):
    """One FISTA iteration; every field but ``iteration`` is a per-sample tensor ``(B,)``.

    objective : :math:`F(z_i)=\\|x-\\mathbf W^Tz_i\\|^2+\\lambda\\|z_i\\|_1`
    rel_change : :math:`\\|z_i - z_{i-1}\\|/\\|z_i\\|` (0 once a sample has stopped)
    gap, rel_gap : duality gap :math:`F(z_i) - D(\\theta_i)` and ``gap / objective``
    nnz : number of non-zeros of :math:`z_i`
    step : the step :math:`1/L` used
    code_error : :math:`\\|z_i - z\\|/\\|z\\|` when the true code is given, else None
    """

    iteration: int
    objective: torch.Tensor
    rel_change: torch.Tensor
    gap: torch.Tensor
    rel_gap: torch.Tensor
    nnz: torch.Tensor
    step: torch.Tensor
    code_error: torch.Tensor | None


@dataclass
class L1Result(HistoryMixin):
    """Output of :func:`fista`: the code and how the run went.

    ``n_iter`` counts the iterations of the batch (the slowest sample); ``sample_iters``
    those of each sample, which stops updating once it meets the criterion, so a sample
    gets the same code in a batch as alone. ``converged`` says which samples met it and
    ``lipschitz`` is the final :math:`L` per sample (raised by backtracking if the estimate
    had underestimated :math:`2\\|\\mathbf W\\|^2`) and ``lipschitz_source`` where
    the first came from: ``"given"``, ``"dft"`` (the filters' DFTs, a proven bound) or
    ``"lanczos"`` (Lanczos, with a margin).
    """

    _stat: ClassVar[type] = L1Stat
    _solver: ClassVar[str] = "fista"

    z: torch.Tensor
    x_hat: torch.Tensor
    n_iter: int
    stop_reason: str
    converged: torch.Tensor
    sample_iters: torch.Tensor
    lipschitz: torch.Tensor
    history: list[L1Stat] = field(default_factory=list)
    lipschitz_source: str = "given"


# ------------------------------------------------------------------ checks


def _check_lam(lam: object) -> float:
    return check_number(lam, "lam", minimum=0.0)


def _finite(values: torch.Tensor, what: str) -> torch.Tensor:
    """A per-sample result, checked: inputs checked finite can still overflow."""
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{what} overflowed {values.dtype}: x, z or W is too large")
    return values


# ------------------------------------------------------------------ kernels


def _l1(z: torch.Tensor) -> torch.Tensor:
    return z.abs().sum(dims(z))


def _project(z: torch.Tensor, mask: torch.Tensor | None, nonneg: bool) -> torch.Tensor:
    """Onto the constraint set: zero outside ``mask``, and ``z >= 0`` when ``nonneg``."""
    if nonneg:
        z = z.clamp_min(0)
    if mask is not None:
        z = torch.where(mask, z, torch.zeros((), dtype=z.dtype, device=z.device))
    return z


def _prox_l1(
    v: torch.Tensor, thresh: torch.Tensor, mask: torch.Tensor | None, nonneg: bool
) -> torch.Tensor:
    r"""Prox of :math:`\tau\|\cdot\|_1` plus the constraints: soft thresholding by
    ``thresh`` (per sample), ``max(v - thresh, 0)`` when ``nonneg``, zero outside ``mask``.
    Overwrites ``v`` (a temporary of the caller's)."""
    t = bcast(thresh, v)
    if nonneg:
        out = v.sub_(t).clamp_min_(0)
    else:
        out = v.abs().sub_(t).clamp_min_(0).mul_(torch.sign(v))
    if mask is not None:
        out = out.masked_fill_(~mask, 0)
    return out


def _extrapolate(a: torch.Tensor, a_prev: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """FISTA's momentum step :math:`a + \beta (a - a_{prev})` per sample, in one new tensor."""
    return torch.sub(a, a_prev).mul_(bcast(beta, a)).add_(a)


def _gradient_step(y: torch.Tensor, grad: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """:math:`y - \nabla/L` per sample, in one new tensor."""
    return torch.div(grad, bcast(L, y)).neg_().add_(y)


def _duality(
    r: torch.Tensor,
    g: torch.Tensor,
    z: torch.Tensor,
    lam: float,
    mask: torch.Tensor | None,
    nonneg: bool,
) -> DualityGap:
    r"""Gap at ``z`` from its residual ``r = x - W^T z`` and ``g = 2 W r`` (see :func:`fista`;
    ``g`` is overwritten).

    With :math:`c = \max_{i\in S} |g_i|` (:math:`\max_{i\in S} (g_i)_+` when non-negative)
    and :math:`s=\min(1, \lambda/c)`, :math:`\theta = s\,r` is dual feasible and
    :math:`F(z) - D(\theta) = (1-s)^2\|r\|^2 + \lambda\|z\|_1 - s\langle g, z\rangle`, a sum
    of non-negative terms (no cancellation of :math:`\|x\|^2`).
    """
    score = g.clamp_min(0) if nonneg else g.abs()
    if mask is not None:
        score = score.masked_fill_(~mask, 0)
    c = score.amax(dims(score))
    del score
    s = torch.where(c > lam, lam / c.clamp_min(torch.finfo(c.dtype).tiny), torch.ones_like(c))
    r_sq = per_sample_norm(r) ** 2
    l1 = lam * _l1(z)
    objective = r_sq + l1
    gap = (1 - s) ** 2 * r_sq + l1 - s * g.mul_(z).sum(dims(g))  # <g, z>, in g's memory
    return DualityGap(objective, objective - gap, gap, safe_div(gap, objective))


# ------------------------------------------------------------------ public functions


def lam_max(
    W: LinearOperator,
    x: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    nonneg: bool = False,
) -> torch.Tensor:
    r""":math:`\lambda_{\max} = \|2\mathbf W x\|_\infty` per sample: the smallest
    :math:`\lambda` for which :math:`z = 0` minimises :math:`F` (over the mask, and with
    :math:`(\cdot)_+` in place of :math:`|\cdot|` when ``nonneg``). A convenient scale for
    :math:`\lambda`: ``lam = 0.1 * lam_max(W, x).max()``."""
    xb, _ = check_signal(W, x)
    maskb = check_mask(W, mask, xb.shape[0])
    check_bool(nonneg, "nonneg")
    g = 2 * W.matvec(xb)
    score = g.clamp_min(0) if nonneg else g.abs()
    if maskb is not None:
        score = torch.where(maskb, score, torch.zeros((), dtype=g.dtype, device=g.device))
    return _finite(score.flatten(1).amax(1), "lam_max")


def lasso_objective(
    W: LinearOperator, x: torch.Tensor, z: torch.Tensor, lam: float
) -> torch.Tensor:
    r""":math:`F(z) = \|x - \mathbf W^T z\|_2^2 + \lambda\|z\|_1` per sample, shape ``(B,)``."""
    xb, _ = check_signal(W, x)
    lam = _check_lam(lam)
    zb = check_code(W, z, "z", xb.shape[0], required=True)
    return _finite(per_sample_norm(xb - W.rmatvec(zb)) ** 2 + lam * _l1(zb), "lasso_objective")


def lasso_gap(
    W: LinearOperator,
    x: torch.Tensor,
    z: torch.Tensor,
    lam: float,
    *,
    mask: torch.Tensor | None = None,
    nonneg: bool = False,
) -> DualityGap:
    r"""Duality gap of the (restricted) Lasso at ``z``: a certificate,
    :math:`F(z) - F^\star \le` ``gap``. The dual is derived in :func:`fista`.

    ``z`` must be feasible (zero outside ``mask``, non-negative when ``nonneg``), else
    ``ValueError``.
    """
    xb, _ = check_signal(W, x)
    lam = _check_lam(lam)
    zb = check_code(W, z, "z", xb.shape[0], required=True)
    maskb = check_mask(W, mask, xb.shape[0])
    check_bool(nonneg, "nonneg")
    if not torch.equal(_project(zb, maskb, nonneg), zb):
        raise ValueError("z is not feasible: it has entries outside mask or negative entries")
    r = xb - W.rmatvec(zb)
    gap = _duality(r, 2 * W.matvec(r), zb, lam, maskb, nonneg)
    _finite(torch.stack([gap.objective, gap.gap]), "lasso_gap")
    return gap


def fista(
    W: LinearOperator,
    x: torch.Tensor,
    lam: float,
    *,
    mask: torch.Tensor | None = None,
    nonneg: bool = False,
    max_iter: int = 1000,
    tol: float = 1e-6,
    criterion: str = "gap",
    z0: torch.Tensor | None = None,
    z_true: torch.Tensor | None = None,
    lipschitz: float | None = None,
    restart: bool = True,
    callback: Callable[[int, torch.Tensor, L1Stat], None] | None = None,
    max_backtrack: int = 20,
) -> L1Result:
    r"""l1-regularised least squares on a layer by FISTA (Beck & Teboulle 2009).

    Solves, for every sample of the batch,

    .. math::

        \min_z\; F(z) = \|x - \mathbf W^T z\|_2^2 + \lambda\|z\|_1
        \quad\text{s.t. } z_i = 0 \text{ for } i\notin S,\ (z \ge 0),

    the paper's form (Algorithm 2, steps 1 and 3): no factor 1/2 and no division by the
    size. scikit-learn's ``Lasso(alpha, fit_intercept=False)`` minimises
    :math:`\frac1{2n}\|x - Az\|^2 + \alpha\|z\|_1` with :math:`A` = ``W.dense().T`` and
    :math:`n = MD` = ``prod(W.in_shape)``; multiplying by :math:`2n` shows it is this
    problem with :math:`\lambda = 2n\alpha`.

    Parameters
    ----------
    W : LinearOperator
        The layer (any operator: a conv layer, its dense matrix, a product of layers);
        :math:`\mathbf W^T` synthesises ``x`` from the code.
    x : Tensor
        Signals ``(B, *W.in_shape)`` or one ``W.in_shape`` sample, on ``W``'s device.
    lam : float
        :math:`\lambda \ge 0`, the same for every sample (see :func:`lam_max` for a scale).
    mask : bool Tensor, optional
        The allowed support :math:`S`, shape ``(B, K, *output_size)`` or
        ``(K, *output_size)``; entries outside are held at exactly 0.
    nonneg : bool
        Constrain :math:`z \ge 0`.
    max_iter : int
        Iteration cap.
    tol : float
        Threshold of the stopping criterion. In float32 the relative gap bottoms out near
        1e-7 (rounding), so ask for ``tol >= 1e-6`` there; float64 reaches 1e-12.
    criterion : ``"gap"`` or ``"rel_change"``
        ``"gap"``: relative duality gap :math:`(F(z_i)-D(\theta_i))/F(z_i)\le` ``tol``, a
        certificate of accuracy. ``"rel_change"``: :math:`\|z_i-z_{i-1}\|/\|z_i\|\le`
        ``tol``. Each sample stops (its code is frozen) when it meets the criterion; the run
        stops when all have.
    z0 : Tensor, optional
        Warm start (default 0), projected onto the constraints.
    z_true : Tensor, optional
        Planted code: records the code error in the history.
    lipschitz : float, optional
        :math:`L \ge 2\|\mathbf W\|_2^2`, the step being :math:`1/L`. Default:
        ``2 * W.norm_sq_estimate().value``, computed once per operator: for a stride-1
        convolution the bound from its filters' DFTs (no iterations; within a few percent
        of the norm), else ``1.02 * W.norm_sq_lanczos(30)`` (Lanczos: as close as 100 power
        iterations, at a third of the products);
        ``lipschitz_source`` in the result says which. Lanczos and the power method approach
        :math:`\|\mathbf W\|^2` from below, so every step is checked: for the quadratic,
        :math:`f(z^+) \le f(y) + \langle\nabla f(y), d\rangle + \frac L2\|d\|^2` with
        :math:`d = z^+ - y` is exactly :math:`2\|\mathbf W^Td\|^2 \le L\|d\|^2`, which costs
        nothing extra (:math:`\mathbf W^T z^+` is needed anyway); when it fails, :math:`L`
        is raised for that sample and the step redone (backtracking, at most
        ``max_backtrack`` times per iteration).
    restart : bool
        Gradient-based adaptive restart of the momentum (O'Donoghue & Candès 2015): when
        :math:`\langle y - z^+, z^+ - z\rangle > 0` the sample's momentum is reset. It
        keeps FISTA's :math:`O(1/i^2)` rate and removes its oscillations once the support
        has settled (linear convergence); ``False`` is plain FISTA.
    callback : callable, optional
        ``callback(iteration, z, stat)`` after every iteration.

    Returns
    -------
    L1Result
        ``z``, ``x_hat = W.T z``, ``n_iter``, ``stop_reason`` (``"converged"`` when every
        sample met the criterion, else ``"max_iter"``), per-sample ``converged``,
        ``sample_iters`` and ``lipschitz``, and the per-iteration ``history``.

    Raises
    ------
    ValueError
        A parameter out of range (``lam < 0``, ``tol < 0``, unknown ``criterion``), a shape
        or device mismatch, NaN or inf in ``x``, ``z0`` or ``z_true``.

    Notes
    -----
    Iteration, with :math:`\nabla f(y) = -2\mathbf W(x - \mathbf W^T y)`,
    :math:`t_1 = 1`:

    .. math::

        z_i = \operatorname{prox}_{\lambda\|\cdot\|_1/L}\big(y_i - \nabla f(y_i)/L\big),\quad
        t_{i+1} = \tfrac{1+\sqrt{1+4t_i^2}}2,\quad
        y_{i+1} = z_i + \tfrac{t_i-1}{t_{i+1}}(z_i - z_{i-1}),

    the prox being soft thresholding (:math:`\max(v-\lambda/L, 0)` when non-negative)
    followed by zeroing outside :math:`S`. :math:`\mathbf W^T y` and
    :math:`\mathbf W\mathbf W^T y` are combined linearly from those of :math:`z_i,
    z_{i-1}`, so an iteration costs one ``W.T`` and one ``W`` and yields the gradient at
    :math:`z_i` too, hence the duality gap for free.

    *Dual.* Writing :math:`r = x - \mathbf W^T z` as a constraint with multiplier
    :math:`2\theta`, minimising the Lagrangian over :math:`r` (at :math:`r = \theta`) and over
    feasible :math:`z` gives

    .. math::

        D(\theta) = 2\langle\theta, x\rangle - \|\theta\|^2 = \|x\|^2 - \|x-\theta\|^2,
        \qquad\text{s.t. } |2(\mathbf W\theta)_i| \le \lambda,\ i \in S

    (one-sided, :math:`2(\mathbf W\theta)_i \le \lambda`, when :math:`z\ge0`), with
    :math:`\theta^\star = r^\star`. From the iterate's residual,
    :math:`\theta = r\min\big(1, \lambda/\max_{i\in S}|2(\mathbf W r)_i|\big)` is feasible and
    :math:`F(z)-D(\theta) \ge F(z) - F^\star \ge 0`, tending to 0 as :math:`z\to z^\star`.
    For :math:`\lambda = 0` (least squares) this :math:`\theta` is 0 and the gap is
    :math:`\|r\|^2`, so ``criterion="gap"`` is refused there: use ``"rel_change"``.

    >>> import torch
    >>> from cnninv.operators import ConvOperator
    >>> W = ConvOperator.gaussian(K=16, M=8, ell=5, input_size=32, seed=0, dtype=torch.float64)
    >>> x = torch.randn(3, 8, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> res = fista(W, x, lam=0.1 * float(lam_max(W, x).max()), tol=1e-8)
    >>> res.stop_reason, bool((res.history[-1].rel_gap <= 1e-8).all())
    ('converged', True)
    """
    xb, unbatched = check_signal(W, x)
    lam = _check_lam(lam)
    B = xb.shape[0]
    maskb = check_mask(W, mask, B)
    check_bool(nonneg, "nonneg")
    check_bool(restart, "restart")
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable, got {callback!r}")
    max_iter = check_positive_int(max_iter, "max_iter")
    max_backtrack = check_positive_int(max_backtrack, "max_backtrack")
    check_criterion(criterion, tol, lam)
    zt = check_code(W, z_true, "z_true", B)
    z = check_code(W, z0, "z0", B)
    L0, source = check_lipschitz(W, lipschitz)
    dtype, device = xb.dtype, xb.device
    # the state lives in the layout the operator computes in (no copy per product)
    xb = W.native_layout(xb)
    maskb = None if maskb is None else W.native_layout(maskb)
    z = torch.zeros((B, *W.out_shape), dtype=dtype, device=device) if z is None else z
    z = _project(W.native_layout(z), maskb, nonneg)

    eps = torch.finfo(dtype).eps
    L = torch.full((B,), L0, dtype=dtype, device=device)
    t = torch.ones((B,), dtype=dtype, device=device)
    Wx = W.matvec(xb)
    if z0 is None:  # z = 0: no products needed for W^T z and W W^T z
        Az, Gz = torch.zeros_like(xb), torch.zeros_like(Wx)
    else:
        Az = W.rmatvec(z)  # W^T z
        Gz = W.matvec(Az)  # W W^T z
    dz, Az_prev, Gz_prev = torch.zeros_like(z), Az, Gz  # dz: z - z_prev
    done = torch.zeros((B,), dtype=torch.bool, device=device)
    sample_iters = torch.zeros((B,), dtype=torch.long, device=device)
    check_norm(per_sample_norm(xb), "x")
    if zt is not None:
        zt_norm = per_sample_norm(zt)
        check_norm(zt_norm, "z_true")

    history: list[L1Stat] = []
    stop_reason = "max_iter"
    # a proven bound (the filters' DFTs) needs no backtracking test: the step is safe
    safe_step = source == "dft"
    any_done = False  # whether a sample has stopped (then its state is held)
    for it in range(1, max_iter + 1):
        t_next = (1 + torch.sqrt(1 + 4 * t**2)) / 2
        beta = (t - 1) / t_next
        # every temporary below is made once and updated in place (no allocation per
        # operation: at VGG sizes the page faults would cost more than the arithmetic)
        y = dz.mul_(bcast(beta, z)).add_(z)  # z + beta (z - z_prev)
        Ay = _extrapolate(Az, Az_prev, beta)
        v_grad = _extrapolate(Gz, Gz_prev, beta).sub_(Wx).mul_(2)  # gradient at y
        for _ in range(max_backtrack + 1):
            z_new = _prox_l1(_gradient_step(y, v_grad, L), lam / L, maskb, nonneg)
            Az_new = W.rmatvec(z_new)
            if safe_step:
                break
            d_sq = per_sample_norm(z_new - y) ** 2
            curv = 2 * per_sample_norm(Az_new - Ay) ** 2
            # W^T y is a combination of stored products, so W^T(z+ - y) carries rounding
            # of order eps ||W^T y||: below that floor the test is noise (float32 would
            # otherwise raise L without end once the iterates have settled)
            floor = 2 * (64 * eps * (per_sample_norm(Az_new) + per_sample_norm(Ay))) ** 2
            bad = (curv > L * d_sq * (1 + 1e-6) + floor) & ~done
            if not bool(bad.any()):
                break
            L = torch.where(bad, 1.1 * torch.maximum(L, safe_div(curv, d_sq)), L)
        Gz_new = W.matvec(Az_new)
        dz = z_new - z
        if restart:  # <y - z+, z+ - z> > 0: reset the momentum
            ahead = y.sub_(z_new).mul_(dz).sum(dims(y)) > 0
            t_next = torch.where(ahead, torch.ones_like(t), t_next)
        del y
        keep = ~done
        if any_done:  # samples that have stopped keep their code
            z_new = torch.where(bcast(keep, z), z_new, z)
            Az_new = torch.where(bcast(keep, Az), Az_new, Az)
            Gz_new = torch.where(bcast(keep, Gz), Gz_new, Gz)
            t = torch.where(keep, t_next, t)
            dz = z_new - z
        else:
            t = t_next
        change = safe_div(per_sample_norm(dz), per_sample_norm(z_new))
        Az_prev, Gz_prev = Az, Gz
        z, Az, Gz = z_new, Az_new, Gz_new
        dual = _duality(xb - Az, torch.sub(Wx, Gz).mul_(2), z, lam, maskb, nonneg)
        stat = L1Stat(
            iteration=it,
            objective=dual.objective,
            rel_change=change,
            gap=dual.gap,
            rel_gap=dual.rel_gap,
            nnz=(z != 0).sum(dims(z)),
            step=1.0 / L,
            code_error=None if zt is None else safe_div(per_sample_norm(z - zt), zt_norm),
        )
        met = dual.rel_gap <= tol if criterion == "gap" else change <= tol
        done = done | met
        # one read-back per iteration: overflow, and whether some or all samples stopped
        overflow, any_done, all_done = torch.stack(
            [~torch.isfinite(dual.objective).all(), done.any(), done.all()]
        ).tolist()
        if overflow:
            raise ValueError(
                f"fista: the objective overflowed {dtype} at iteration {it} (x, lam or W is "
                "too large for this dtype)"
            )
        history.append(stat)
        sample_iters = torch.where(keep, it, sample_iters)
        if callback is not None:
            callback(it, z, stat)
        if all_done:
            stop_reason = "converged"
            break
    x_hat = Az
    if unbatched:
        z, x_hat = z[0], x_hat[0]
    return L1Result(z, x_hat, len(history), stop_reason, done, sample_iters, L, history, source)
