r"""Model-based Iterative Hard Thresholding, Algorithm 1 of Gilbert et al. (2017).

With :math:`\Phi = \mathbf W^T` (the synthesis matrix, :math:`x = \mathbf W^T z`):

.. math::

    \hat z_0 = 0,\quad d = x;\qquad
    b \leftarrow \hat z_{i-1} + \mu\,\mathbf W d,\quad
    \hat z_i \leftarrow \mathbb M(b, k),\quad
    d \leftarrow x - \mathbf W^T \hat z_i .
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import torch

from cnninv._checks import check_int, check_number, check_positive_int, is_number
from cnninv.metrics import per_sample_norm
from cnninv.operators import LinearOperator
from cnninv.recovery._common import (
    HistoryMixin,
    bcast,
    check_code,
    check_norm,
    check_signal,
    dims,
    safe_div,
)
from cnninv.sparsity import Pool, check_k, check_variant, model_sparse

__all__ = ["STEP_RULES", "IHTResult", "IHTStat", "iht"]

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
class IHTResult(HistoryMixin):
    """Output of :func:`iht`: the code, the reconstruction and how the run went."""

    _stat: ClassVar[type] = IHTStat
    _solver: ClassVar[str] = "iht"

    z: torch.Tensor
    x_hat: torch.Tensor
    switches: torch.Tensor
    n_iter: int
    stop_reason: str
    history: list[IHTStat] = field(default_factory=list)


def _normalized_step(W: LinearOperator, g: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """NIHT step (Blumensath & Davies 2010): ||g_G||^2 / ||W^T g_G||^2 on the support G."""
    g_s = g * mask
    num = per_sample_norm(g_s) ** 2
    den = per_sample_norm(W.rmatvec(g_s)) ** 2
    return torch.where(
        den > 0, num / den.clamp_min(torch.finfo(g.dtype).tiny), torch.ones_like(num)
    )


def _check_step(step: object) -> float | str:
    if isinstance(step, str) and step in STEP_RULES:
        return step
    if not is_number(step) or not 0 < float(step) < math.inf:
        raise ValueError(
            f"step must be positive (a finite number) or one of {STEP_RULES}, got {step!r}"
        )
    return step


def iht(
    W: LinearOperator,
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
    W : LinearOperator
        The layer (a :class:`~cnninv.operators.ConvOperator`, or any operator, e.g. its
        dense :class:`~cnninv.operators.MatrixOperator`); :math:`\mathbf W^T` is the
        synthesis matrix :math:`\Phi`. A code of shape ``(N,)`` has one block per entry.
    x : Tensor
        Signals, ``(B, *W.in_shape)`` or one ``W.in_shape`` sample (any leading dims are
        flattened into the batch).
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
        :math:`\mu=\|g_\Gamma\|^2/\|\mathbf W^T g_\Gamma\|^2` with its backtracking safeguard
        (at most ``max_backtrack`` halvings per iteration), which converges whatever the
        scale of :math:`\mathbf W`.
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

    Raises
    ------
    ValueError
        A parameter out of range, a shape, dtype or device mismatch, NaN or inf in ``x``,
        ``z0`` or ``z_true``; and iterates that overflow (a fixed ``step`` too large for
        the scale of ``W``: the run diverged).
    """
    xb, unbatched = check_signal(W, x)
    max_iter = check_positive_int(max_iter, "max_iter")
    max_backtrack = check_int(max_backtrack, "max_backtrack", minimum=0)
    tol = check_number(tol, "tol", minimum=0.0, finite=False)
    step = _check_step(step)
    check_variant(variant)
    k = check_k(k, W.out_shape, pool)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable, got {callback!r}")
    if not isinstance(step, str) and step > torch.finfo(xb.dtype).max:
        raise ValueError(f"step={step!r} does not fit in {xb.dtype}")
    # the state lives in the layout the operator computes in (no copy per product)
    xb = W.native_layout(xb)
    B = xb.shape[0]
    zt = check_code(W, z_true, "z_true", B)
    z = check_code(W, z0, "z0", B)
    zt = None if zt is None else W.native_layout(zt)
    if z is None:
        z = W.native_layout(torch.zeros((B, *W.out_shape), dtype=xb.dtype, device=xb.device))
    else:
        z = W.native_layout(z)
    x_norm = per_sample_norm(xb)
    check_norm(x_norm, "x")
    x_hat = W.rmatvec(z) if z0 is not None else torch.zeros_like(xb)
    d = xb - x_hat
    if zt is not None:
        zt_norm, zt_supp = per_sample_norm(zt), zt != 0
        check_norm(zt_norm, "z_true")
        zt_count = zt_supp.sum(dims(zt_supp)).to(xb.dtype)

    def project(b: torch.Tensor):
        return model_sparse(b, k, pool, variant=variant, check=False)

    history: list[IHTStat] = []
    stop_reason, switches = "max_iter", None
    for it in range(1, max_iter + 1):
        g = W.matvec(d)
        if step == "normalized":
            mask = z != 0
            first = ~mask.any(dim=dims(mask))
            if bool(first.any()):  # empty support: use the support of M(g, k)
                mask = torch.where(bcast(first, z), project(g).code != 0, mask)
            mu = _normalized_step(W, g, mask)
        else:
            mu = torch.full((B,), float(step), dtype=xb.dtype, device=xb.device)
        # g first: the result takes g's (the operator's) layout; mu = 1 (the paper's step,
        # the default) multiplies by nothing (g * 1 == g exactly)
        proj = project(z + (g if step == 1 else g * bcast(mu, g)))
        if step == "normalized":
            # safeguard: when the support changes, mu must not exceed
            # omega = 0.99 ||dz||^2 / ||W^T dz||^2; else halve it and project again
            for _ in range(max_backtrack):
                changed = ((proj.code != 0) != (z != 0)).any(dim=dims(z))
                dz = proj.code - z
                omega = 0.99 * safe_div(
                    per_sample_norm(dz) ** 2, per_sample_norm(W.rmatvec(dz)) ** 2
                )
                bad = changed & (mu > omega) & (omega > 0)
                if not bool(bad.any()):
                    break
                mu = torch.where(bad, mu / 2.0, mu)
                proj = project(z + g * bcast(mu, g))
        z_new, switches = proj.code, proj.switches
        x_hat = W.rmatvec(z_new)
        d = xb - x_hat
        change = safe_div(per_sample_norm(z_new - z), per_sample_norm(z_new))
        z = z_new
        stat = IHTStat(
            iteration=it,
            residual=safe_div(per_sample_norm(d), x_norm),
            rel_change=change,
            step=mu,
            code_error=None if zt is None else safe_div(per_sample_norm(z - zt), zt_norm),
            support_recovery=None
            if zt is None
            else safe_div(((z != 0) & zt_supp).sum(dims(z)).to(xb.dtype), zt_count),
        )
        if not bool(torch.isfinite(torch.stack([stat.residual, change])).all()):
            raise ValueError(
                f"iht diverged at iteration {it}: the iterates overflowed {xb.dtype} "
                f"(step={step!r} is too large for the scale of W; try step='normalized')"
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
