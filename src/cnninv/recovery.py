r"""Recovery algorithms: model-based Iterative Hard Thresholding (Algorithm 1), and
l1-regularised least squares with the support fixed by max pooling (Algorithm 2).

With :math:`\Phi = \mathbf W^T` (the synthesis matrix, :math:`x = \mathbf W^T z`),
Algorithm 1 of Gilbert et al. (2017) is

.. math::

    \hat z_0 = 0,\quad d = x;\qquad
    b \leftarrow \hat z_{i-1} + \mu\,\mathbf W d,\quad
    \hat z_i \leftarrow \mathbb M(b, k),\quad
    d \leftarrow x - \mathbf W^T \hat z_i .

From :math:`\hat z_0 = 0` with :math:`\mu = 1`, one iteration is exactly a feed-forward
layer: convolution, max pooling, unpooling with the switches; and
:math:`\hat x = \mathbf W^T\hat z_1` is the reconstruction of Theorem 3.3. More
iterations are the "recurrent" inversion of the paper's footnote 4.

>>> import torch
>>> from cnninv.operators import ConvOperator
>>> from cnninv.theory import sample_model_sparse
>>> W = ConvOperator.gaussian(K=96, M=32, ell=5, input_size=32, seed=0)
>>> z = sample_model_sparse(4, W.out_shape, k=10, seed=1)
>>> res = iht(W, W.T(z), k=10, max_iter=20, z_true=z)
>>> res.stop_reason in {"converged", "max_iter"}
True
>>> bool(res.history[-1].code_error.max() < res.history[0].code_error.max())
True

Algorithm 2 (§4.4, "sparse hidden activation recovery") finds a model-sparse code for a
real activation ``x`` that need not be exactly :math:`\mathbf W^T z`: an
:math:`\ell_1`-regularised least-squares fit :math:`\min_z \|x-\mathbf W^Tz\|_2^2 +
\lambda\|z\|_1` (:func:`fista`, certified by the duality gap of :func:`lasso_gap`), max
pooling with switches to pick one entry per pooling region and channel, and the same fit
restricted to that support (:func:`algorithm2`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from cnninv._checks import check_finite, check_positive_int
from cnninv.operators import ConvOperator, _compute_layout
from cnninv.sparsity import Pool, _model_sparse, model_sparse, num_blocks

__all__ = [
    "Algorithm2Result",
    "DualityGap",
    "IHTResult",
    "IHTStat",
    "L1Result",
    "L1Stat",
    "algorithm2",
    "fista",
    "iht",
    "lam_max",
    "lasso_gap",
    "lasso_objective",
]

STEP_RULES = ("normalized",)


class IHTStat(NamedTuple):
    """One iteration of IHT; every field but ``iteration`` is a per-sample tensor ``(B,)``.

    residual : :math:`\\|x - \\mathbf W^T\\hat z_i\\|/\\|x\\|`
    rel_change : :math:`\\|\\hat z_i - \\hat z_{i-1}\\|/\\|\\hat z_i\\|`
    step : the step :math:`\\mu` used
    code_error : :math:`\\|\\hat z_i - z\\|/\\|z\\|` when the true code is given, else None
    support_recovery : fraction of :math:`\\mathrm{supp}(z)` found, else None
    """

    iteration: int
    residual: torch.Tensor
    rel_change: torch.Tensor
    step: torch.Tensor
    code_error: torch.Tensor | None
    support_recovery: torch.Tensor | None


@dataclass
class IHTResult:
    """Output of :func:`iht`: the code, the reconstruction and how the run went."""

    z: torch.Tensor
    x_hat: torch.Tensor
    switches: torch.Tensor
    n_iter: int
    stop_reason: str
    history: list[IHTStat] = field(default_factory=list)

    def history_array(self, name: str) -> torch.Tensor:
        """Stack one field of the history into an ``(n_iter, B)`` tensor."""
        if name not in IHTStat._fields or name == "iteration":
            raise ValueError(f"unknown history field {name!r}; one of {IHTStat._fields[1:]}")
        rows = [getattr(s, name) for s in self.history]
        if any(r is None for r in rows):
            raise ValueError(f"{name!r} was not recorded (give z_true to iht)")
        return torch.stack(rows)


def _dims(t: torch.Tensor) -> tuple[int, ...]:
    """Every axis but the batch axis (reducing over them needs no copy, whatever the
    layout; ``flatten(1)`` copies a channels-last tensor)."""
    return tuple(range(1, t.dim()))


def _norm(t: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(t, dim=_dims(t))


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def _safe_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(b > 0, a / b.clamp_min(torch.finfo(b.dtype).tiny), torch.zeros_like(a))


def _normalized_step(W: ConvOperator, g: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """NIHT step (Blumensath & Davies 2010): ||g_G||^2 / ||W^T g_G||^2 on the support G."""
    g_s = g * mask
    num = _norm(g_s) ** 2
    den = _norm(W.rmatvec(g_s)) ** 2
    return torch.where(
        den > 0, num / den.clamp_min(torch.finfo(g.dtype).tiny), torch.ones_like(num)
    )


def iht(
    W: ConvOperator,
    x: torch.Tensor,
    k: int | None,
    *,
    pool: Pool = None,
    variant: str = "abs",
    max_iter: int = 1,
    tol: float = 0.0,
    step: float | str = 1.0,
    z0: torch.Tensor | None = None,
    z_true: torch.Tensor | None = None,
    callback: Callable[[int, torch.Tensor, IHTStat], None] | None = None,
    max_backtrack: int = 10,
) -> IHTResult:
    r"""Model-based IHT (Algorithm 1) for :math:`x = \mathbf W^T z`, :math:`z` model-k-sparse.

    Parameters
    ----------
    W : ConvOperator
        The conv layer; :math:`\mathbf W^T` is the synthesis matrix :math:`\Phi`.
    x : Tensor
        Signals, ``(B, M, *input_size)`` or one ``(M, *input_size)``.
    k : int or None
        Blocks kept by :math:`\mathbb M` (None: all, plain max pooling).
    pool, variant
        Block structure and pooling variant of :func:`cnninv.sparsity.model_sparse`.
    max_iter : int
        Iterations; 1 is the feed-forward layer.
    tol : float
        Stop when :math:`\|\hat z_i-\hat z_{i-1}\|/\|\hat z_i\| \le` ``tol`` for every sample.
    step : float or ``"normalized"``
        :math:`\mu`; 1 is the paper's algorithm (and the CNN layer). ``"normalized"`` is
        normalised IHT (Blumensath & Davies 2010): per sample
        :math:`\mu=\|g_\Gamma\|^2/\|\mathbf W^T g_\Gamma\|^2` with its backtracking safeguard,
        which converges whatever the scale of :math:`\mathbf W`.
    z0 : Tensor, optional
        Starting code (default 0).
    z_true : Tensor, optional
        The planted code: records code error and support recovery in the history.
    callback : callable, optional
        ``callback(iteration, z, stat)`` after every iteration.

    Returns
    -------
    IHTResult
        ``z``, ``x_hat = W.T z``, ``switches``, ``n_iter``, ``stop_reason``
        (``"converged"`` or ``"max_iter"``) and the per-iteration ``history``.
    """
    if not isinstance(W, ConvOperator):
        raise ValueError(f"W must be a ConvOperator, got {type(W).__name__}")
    unbatched = x.dim() == len(W.in_shape)
    xb, _ = W._batch(x, W.in_shape, "x")
    check_finite(xb, "x")
    # the state lives in the layout the operator computes in (no copy per product)
    xb = _compute_layout(xb.to(W.weight.dtype))
    max_iter = check_positive_int(max_iter, "max_iter")
    if not (tol >= 0):
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    if isinstance(step, str):
        if step not in STEP_RULES:
            raise ValueError(f"step must be a positive number or one of {STEP_RULES}, got {step!r}")
    elif not (step > 0):
        raise ValueError(f"step must be positive, got {step!r}")
    blocks = num_blocks(W.out_shape, pool)
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= blocks):
        raise ValueError(f"k must be between 1 and the number of blocks ({blocks}), got k={k!r}")

    def as_code(t: torch.Tensor | None, name: str) -> torch.Tensor | None:
        if t is None:
            return None
        tb, _ = W._batch(t, W.out_shape, name)
        check_finite(tb, name)
        if tb.shape[0] != xb.shape[0]:
            raise ValueError(f"{name} has batch {tb.shape[0]} but x has {xb.shape[0]}")
        return _compute_layout(tb.to(xb.dtype))

    zt = as_code(z_true, "z_true")
    z = as_code(z0, "z0")
    if z is None:
        z = _compute_layout(
            torch.zeros((xb.shape[0], *W.out_shape), dtype=xb.dtype, device=xb.device)
        )
    x_norm = _norm(xb)
    x_hat = W.rmatvec(z) if z0 is not None else torch.zeros_like(xb)
    d = xb - x_hat
    if zt is not None:
        zt_norm, zt_supp = _norm(zt), zt != 0
        zt_count = zt_supp.sum(_dims(zt_supp)).to(xb.dtype)

    history: list[IHTStat] = []
    stop_reason, switches = "max_iter", None
    for it in range(1, max_iter + 1):
        g = W.matvec(d)
        if step == "normalized":
            mask = z != 0
            first = ~mask.any(dim=_dims(mask))
            if bool(first.any()):  # empty support: use the support of M(g, k)
                mask = torch.where(
                    _bcast(first, z), _model_sparse(g, k, pool, variant).code != 0, mask
                )
            mu = _normalized_step(W, g, mask)
        else:
            mu = torch.full((xb.shape[0],), float(step), dtype=xb.dtype, device=xb.device)
        # g first: the result takes g's (the operator's) layout; mu = 1 (the paper's step,
        # the default) multiplies by nothing (g * 1 == g exactly)
        proj = _model_sparse(z + (g if step == 1 else g * _bcast(mu, g)), k, pool, variant)
        if step == "normalized":
            # safeguard: when the support changes, mu must not exceed
            # omega = 0.99 ||dz||^2 / ||W^T dz||^2; else halve it and project again
            for _ in range(max_backtrack):
                changed = ((proj.code != 0) != (z != 0)).any(dim=_dims(z))
                dz = proj.code - z
                omega = 0.99 * _safe_div(_norm(dz) ** 2, _norm(W.rmatvec(dz)) ** 2)
                bad = changed & (mu > omega) & (omega > 0)
                if not bool(bad.any()):
                    break
                mu = torch.where(bad, mu / 2.0, mu)
                proj = _model_sparse(z + g * _bcast(mu, g), k, pool, variant)
        z_new, switches = proj.code, proj.switches
        x_hat = W.rmatvec(z_new)
        d = xb - x_hat
        change = _safe_div(_norm(z_new - z), _norm(z_new))
        z = z_new
        stat = IHTStat(
            iteration=it,
            residual=_safe_div(_norm(d), x_norm),
            rel_change=change,
            step=mu,
            code_error=None if zt is None else _safe_div(_norm(z - zt), zt_norm),
            support_recovery=None
            if zt is None
            else _safe_div(((z != 0) & zt_supp).sum(_dims(z)).to(xb.dtype), zt_count),
        )
        history.append(stat)
        if callback is not None:
            callback(it, z, stat)
        if bool((change <= tol).all()):
            stop_reason = "converged"
            break
    if unbatched:
        z, x_hat, switches = z[0], x_hat[0], switches[0]
    return IHTResult(z, x_hat, switches, len(history), stop_reason, history)


# ---------------------------------------------------------------------------------------
# l1-regularised least squares (FISTA) and Algorithm 2
# ---------------------------------------------------------------------------------------

CRITERIA = ("gap", "rel_change")
_VARIANTS = ("abs", "relu")


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
class L1Result:
    """Output of :func:`fista`: the code and how the run went.

    ``n_iter`` counts the iterations of the batch (the slowest sample); ``sample_iters``
    those of each sample, which stops updating once it meets the criterion, so a sample
    gets the same code in a batch as alone. ``converged`` says which samples met it and
    ``lipschitz`` is the final :math:`L` per sample (raised by backtracking if the power
    method had underestimated :math:`2\\|\\mathbf W\\|^2`).
    """

    z: torch.Tensor
    x_hat: torch.Tensor
    n_iter: int
    stop_reason: str
    converged: torch.Tensor
    sample_iters: torch.Tensor
    lipschitz: torch.Tensor
    history: list[L1Stat] = field(default_factory=list)

    def history_array(self, name: str) -> torch.Tensor:
        """Stack one field of the history into an ``(n_iter, B)`` tensor."""
        if name not in L1Stat._fields or name == "iteration":
            raise ValueError(f"unknown history field {name!r}; one of {L1Stat._fields[1:]}")
        rows = [getattr(s, name) for s in self.history]
        if any(r is None for r in rows):
            raise ValueError(f"{name!r} was not recorded (give z_true to fista)")
        return torch.stack(rows)


@dataclass
class Algorithm2Result:
    """Output of :func:`algorithm2`.

    z : the final code (step 3), model-sparse: supported in ``mask``
    z_init : the unconstrained Lasso solution (step 1)
    z_model : max pooling and unpooling of ``z_init`` with its switches (step 2)
    mask : :math:`\\mathrm{supp}(z^{\\text{model}})`, the support allowed in step 3
    switches : the pooling switches of step 2
    x_hat : :math:`\\mathbf W^T z`
    init, restricted : the solver results of steps 1 and 3
    """

    z: torch.Tensor
    z_init: torch.Tensor
    z_model: torch.Tensor
    mask: torch.Tensor
    switches: torch.Tensor
    x_hat: torch.Tensor
    init: L1Result
    restricted: L1Result


# ------------------------------------------------------------------ checks


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_lam(lam: object) -> float:
    if not _is_number(lam) or not 0 <= float(lam) < math.inf:
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    return float(lam)


def _check_signal(W: ConvOperator, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if not isinstance(W, ConvOperator):
        raise ValueError(f"W must be a ConvOperator, got {type(W).__name__}")
    xb, _ = W._batch(x, W.in_shape, "x")
    if xb.device != W.weight.device:
        raise ValueError(f"x is on {xb.device} but W is on {W.weight.device}")
    check_finite(xb, "x")
    return xb.to(W.weight.dtype), x.dim() == len(W.in_shape)


def _check_code(W: ConvOperator, t: torch.Tensor | None, name: str, batch: int):
    if t is None:
        return None
    tb, _ = W._batch(t, W.out_shape, name)
    if tb.device != W.weight.device:
        raise ValueError(f"{name} is on {tb.device} but W is on {W.weight.device}")
    check_finite(tb, name)
    if tb.shape[0] != batch:
        raise ValueError(f"{name} has batch {tb.shape[0]} but x has {batch}")
    return tb.to(W.weight.dtype)


def _check_mask(W: ConvOperator, mask: torch.Tensor | None, batch: int):
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        kind = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a boolean tensor, got {kind}")
    if tuple(mask.shape) == W.out_shape:  # one mask for every sample
        mask = mask.expand(batch, *W.out_shape)
    if tuple(mask.shape) != (batch, *W.out_shape):
        raise ValueError(
            f"Dimension mismatch: mask must have shape {W.out_shape} or "
            f"{(batch, *W.out_shape)}, got {tuple(mask.shape)}"
        )
    if mask.device != W.weight.device:
        raise ValueError(f"mask is on {mask.device} but W is on {W.weight.device}")
    return mask


# ------------------------------------------------------------------ kernels


def _l1(z: torch.Tensor) -> torch.Tensor:
    return z.abs().sum(_dims(z))


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(_dims(a))


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
    ``thresh`` (per sample), ``max(v - thresh, 0)`` when ``nonneg``, zero outside ``mask``."""
    t = _bcast(thresh, v)
    out = (v - t).clamp_min(0) if nonneg else torch.sign(v) * (v.abs() - t).clamp_min(0)
    return _project(out, mask, False)


def _duality(
    r: torch.Tensor,
    g: torch.Tensor,
    z: torch.Tensor,
    lam: float,
    mask: torch.Tensor | None,
    nonneg: bool,
) -> DualityGap:
    r"""Gap at ``z`` from its residual ``r = x - W^T z`` and ``g = 2 W r`` (see :func:`fista`).

    With :math:`c = \max_{i\in S} |g_i|` (:math:`\max_{i\in S} (g_i)_+` when non-negative)
    and :math:`s=\min(1, \lambda/c)`, :math:`\theta = s\,r` is dual feasible and
    :math:`F(z) - D(\theta) = (1-s)^2\|r\|^2 + \lambda\|z\|_1 - s\langle g, z\rangle`, a sum
    of non-negative terms (no cancellation of :math:`\|x\|^2`).
    """
    score = g.clamp_min(0) if nonneg else g.abs()
    if mask is not None:
        score = torch.where(mask, score, torch.zeros((), dtype=g.dtype, device=g.device))
    c = score.amax(_dims(score))
    s = torch.where(c > lam, lam / c.clamp_min(torch.finfo(c.dtype).tiny), torch.ones_like(c))
    r_sq = _norm(r) ** 2
    l1 = lam * _l1(z)
    objective = r_sq + l1
    gap = (1 - s) ** 2 * r_sq + l1 - s * _dot(g, z)
    return DualityGap(objective, objective - gap, gap, _safe_div(gap, objective))


def _check_criterion(criterion: str, tol: float, lam: float) -> None:
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    if not _is_number(tol) or not 0 <= float(tol) < math.inf:
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    if criterion == "gap" and lam == 0:
        raise ValueError(
            "criterion='gap' needs lam > 0 (for lam = 0 the dual point is 0 and the relative "
            "gap stays 1); use criterion='rel_change' for least squares"
        )


def _lipschitz(W: ConvOperator, lipschitz: object) -> float:
    r"""The given :math:`L`, checked, or :math:`2\cdot1.02\,\|\mathbf W\|^2` by power method."""
    if lipschitz is None:
        L = 2.0 * 1.02 * W.norm_sq(n_iter=100)
        return L if L > 0 else 1.0  # W = 0: any step, z -> 0
    if not _is_number(lipschitz) or not 0 < float(lipschitz) < math.inf:
        raise ValueError(f"lipschitz must be a finite positive number, got {lipschitz!r}")
    return float(lipschitz)


# ------------------------------------------------------------------ public functions


def lam_max(
    W: ConvOperator,
    x: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    nonneg: bool = False,
) -> torch.Tensor:
    r""":math:`\lambda_{\max} = \|2\mathbf W x\|_\infty` per sample: the smallest
    :math:`\lambda` for which :math:`z = 0` minimises :math:`F` (over the mask, and with
    :math:`(\cdot)_+` in place of :math:`|\cdot|` when ``nonneg``). A convenient scale for
    :math:`\lambda`: ``lam = 0.1 * lam_max(W, x).max()``."""
    xb, _ = _check_signal(W, x)
    maskb = _check_mask(W, mask, xb.shape[0])
    g = 2 * W.matvec(xb)
    score = g.clamp_min(0) if nonneg else g.abs()
    if maskb is not None:
        score = torch.where(maskb, score, torch.zeros((), dtype=g.dtype, device=g.device))
    return score.flatten(1).amax(1)


def lasso_objective(W: ConvOperator, x: torch.Tensor, z: torch.Tensor, lam: float) -> torch.Tensor:
    r""":math:`F(z) = \|x - \mathbf W^T z\|_2^2 + \lambda\|z\|_1` per sample, shape ``(B,)``."""
    xb, _ = _check_signal(W, x)
    lam = _check_lam(lam)
    zb = _check_code(W, z, "z", xb.shape[0])
    return _norm(xb - W.rmatvec(zb)) ** 2 + lam * _l1(zb)


def lasso_gap(
    W: ConvOperator,
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
    xb, _ = _check_signal(W, x)
    lam = _check_lam(lam)
    zb = _check_code(W, z, "z", xb.shape[0])
    maskb = _check_mask(W, mask, xb.shape[0])
    if not torch.equal(_project(zb, maskb, nonneg), zb):
        raise ValueError("z is not feasible: it has entries outside mask or negative entries")
    r = xb - W.rmatvec(zb)
    return _duality(r, 2 * W.matvec(r), zb, lam, maskb, nonneg)


def fista(
    W: ConvOperator,
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
    r"""l1-regularised least squares on the conv layer by FISTA (Beck & Teboulle 2009).

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
    W : ConvOperator
        The conv layer; :math:`\mathbf W^T` synthesises ``x`` from the code.
    x : Tensor
        Signals ``(B, M, *input_size)`` or one ``(M, *input_size)``, on ``W``'s device.
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
        ``2 * 1.02 * W.norm_sq(n_iter=100)``. The power method approaches
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
    xb, unbatched = _check_signal(W, x)
    lam = _check_lam(lam)
    B = xb.shape[0]
    maskb = _check_mask(W, mask, B)
    if not isinstance(nonneg, bool):
        raise ValueError(f"nonneg must be a bool, got {nonneg!r}")
    max_iter = check_positive_int(max_iter, "max_iter")
    max_backtrack = check_positive_int(max_backtrack, "max_backtrack")
    _check_criterion(criterion, tol, lam)
    zt = _check_code(W, z_true, "z_true", B)
    z = _check_code(W, z0, "z0", B)
    L0 = _lipschitz(W, lipschitz)
    dtype, device = xb.dtype, xb.device
    # the state lives in the layout the operator computes in (no copy per product)
    xb = _compute_layout(xb)
    maskb = None if maskb is None else _compute_layout(maskb)
    z = torch.zeros((B, *W.out_shape), dtype=dtype, device=device) if z is None else z
    z = _project(_compute_layout(z), maskb, nonneg)

    eps = torch.finfo(dtype).eps
    L = torch.full((B,), L0, dtype=dtype, device=device)
    t = torch.ones((B,), dtype=dtype, device=device)
    Wx = W.matvec(xb)
    Az = W.rmatvec(z)  # W^T z
    Gz = W.matvec(Az)  # W W^T z
    z_prev, Az_prev, Gz_prev = z, Az, Gz
    done = torch.zeros((B,), dtype=torch.bool, device=device)
    sample_iters = torch.zeros((B,), dtype=torch.long, device=device)
    if zt is not None:
        zt_norm = _norm(zt)

    history: list[L1Stat] = []
    stop_reason = "max_iter"
    for it in range(1, max_iter + 1):
        t_next = (1 + torch.sqrt(1 + 4 * t**2)) / 2
        beta = (t - 1) / t_next
        y = z + _bcast(beta, z) * (z - z_prev)
        Ay = Az + _bcast(beta, Az) * (Az - Az_prev)
        Gy = Gz + _bcast(beta, Gz) * (Gz - Gz_prev)
        v_grad = 2 * (Gy - Wx)  # gradient of the quadratic at y
        for _ in range(max_backtrack + 1):
            z_new = _prox_l1(y - v_grad / _bcast(L, y), lam / L, maskb, nonneg)
            Az_new = W.rmatvec(z_new)
            d_sq = _norm(z_new - y) ** 2
            curv = 2 * _norm(Az_new - Ay) ** 2
            # W^T y is a combination of stored products, so W^T(z+ - y) carries rounding
            # of order eps ||W^T y||: below that floor the test is noise (float32 would
            # otherwise raise L without end once the iterates have settled)
            floor = 2 * (64 * eps * (_norm(Az_new) + _norm(Ay))) ** 2
            bad = (curv > L * d_sq * (1 + 1e-6) + floor) & ~done
            if not bool(bad.any()):
                break
            L = torch.where(bad, 1.1 * torch.maximum(L, _safe_div(curv, d_sq)), L)
        Gz_new = W.matvec(Az_new)
        if restart:
            t_next = torch.where(_dot(y - z_new, z_new - z) > 0, torch.ones_like(t), t_next)
        # samples that have stopped keep their code
        keep = ~done
        z_new = torch.where(_bcast(keep, z), z_new, z)
        Az_new = torch.where(_bcast(keep, Az), Az_new, Az)
        Gz_new = torch.where(_bcast(keep, Gz), Gz_new, Gz)
        t = torch.where(keep, t_next, t)
        change = _safe_div(_norm(z_new - z), _norm(z_new))
        z_prev, Az_prev, Gz_prev = z, Az, Gz
        z, Az, Gz = z_new, Az_new, Gz_new
        dual = _duality(xb - Az, 2 * (Wx - Gz), z, lam, maskb, nonneg)
        stat = L1Stat(
            iteration=it,
            objective=dual.objective,
            rel_change=change,
            gap=dual.gap,
            rel_gap=dual.rel_gap,
            nnz=(z != 0).sum(_dims(z)),
            step=1.0 / L,
            code_error=None if zt is None else _safe_div(_norm(z - zt), zt_norm),
        )
        history.append(stat)
        sample_iters = torch.where(keep, it, sample_iters)
        met = dual.rel_gap <= tol if criterion == "gap" else change <= tol
        done = done | met
        if callback is not None:
            callback(it, z, stat)
        if bool(done.all()):
            stop_reason = "converged"
            break
    x_hat = Az
    if unbatched:
        z, x_hat = z[0], x_hat[0]
    return L1Result(z, x_hat, len(history), stop_reason, done, sample_iters, L, history)


def algorithm2(
    W: ConvOperator,
    x: torch.Tensor,
    lam: float,
    pool: Pool = None,
    *,
    k: int | None = None,
    variant: str = "abs",
    nonneg: bool = False,
    max_iter: int = 1000,
    tol: float = 1e-6,
    criterion: str = "gap",
    restart: bool = True,
    lipschitz: float | None = None,
    z_true: torch.Tensor | None = None,
) -> Algorithm2Result:
    r"""Algorithm 2 of Gilbert et al. (2017), §4.4: sparse hidden activation recovery.

    1. :math:`z^{\text{init}} = \arg\min_z \|x - \mathbf W^Tz\|_2^2 + \lambda\|z\|_1`;
    2. :math:`z^{\text{model}} = \text{unpool}(\text{maxpool}(z^{\text{init}}), s)` with the
       switches :math:`s` of :math:`z^{\text{init}}`: one entry per pooling region and
       channel (``model_sparse(z_init, k, pool, variant=variant)``; ``k=None`` keeps
       every block, as in the paper, an integer keeps only the ``k`` largest);
    3. :math:`z = \arg\min_z \|x - \mathbf W^Tz\|_2^2 + \lambda\|z\|_1` s.t. :math:`z_i = 0`
       where :math:`z^{\text{model}}_i = 0`, warm-started from :math:`z^{\text{model}}`.

    Both problems are solved by :func:`fista` (same ``lam``, ``tol``, ``criterion``,
    ``max_iter``, ``restart``, ``nonneg``; one Lipschitz estimate for both). The result is
    model-sparse: at most one non-zero per pooling region per channel (and at most ``k``
    non-zeros when ``k`` is given). With ``variant="relu"`` the support is chosen among the
    positive entries; give ``nonneg=True`` as well to keep the code non-negative in step 3.

    >>> import torch
    >>> from cnninv.operators import ConvOperator
    >>> W = ConvOperator.gaussian(K=8, M=4, ell=3, input_size=(10, 10), seed=0,
    ...                           dtype=torch.float64)
    >>> x = torch.randn(2, 4, 10, 10, generator=torch.Generator().manual_seed(0),
    ...                 dtype=torch.float64)
    >>> res = algorithm2(W, x, lam=1.0, pool=2)
    >>> res.z.shape, bool((res.z[~res.mask] == 0).all())
    (torch.Size([2, 8, 8, 8]), True)
    """
    xb, unbatched = _check_signal(W, x)
    lam = _check_lam(lam)
    blocks = num_blocks(W.out_shape, pool)
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= blocks):
        raise ValueError(f"k must be between 1 and the number of blocks ({blocks}), got k={k!r}")
    if variant not in _VARIANTS:
        raise ValueError(f"variant must be one of {_VARIANTS}, got {variant!r}")
    _check_criterion(criterion, tol, lam)
    lipschitz = _lipschitz(W, lipschitz)
    opts = dict(
        nonneg=nonneg,
        max_iter=max_iter,
        tol=tol,
        criterion=criterion,
        restart=restart,
        lipschitz=lipschitz,
        z_true=_check_code(W, z_true, "z_true", xb.shape[0]),
    )
    init = fista(W, xb, lam, **opts)
    proj = model_sparse(init.z, k, pool, variant=variant)
    mask = proj.code != 0
    restricted = fista(W, xb, lam, mask=mask, z0=proj.code, **opts)
    out = (restricted.z, init.z, proj.code, mask, proj.switches, restricted.x_hat)
    if unbatched:
        out = tuple(o[0] for o in out)
    return Algorithm2Result(*out, init=init, restricted=restricted)
