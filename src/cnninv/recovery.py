r"""Recovery algorithms: model-based Iterative Hard Thresholding (Algorithm 1).

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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from cnninv._checks import check_finite, check_positive_int
from cnninv.operators import ConvOperator
from cnninv.sparsity import Pool, model_sparse, num_blocks

__all__ = ["IHTResult", "IHTStat", "iht"]

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


def _norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1)


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
    xb = xb.to(W.weight.dtype)
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
        return tb.to(xb.dtype)

    zt = as_code(z_true, "z_true")
    z = as_code(z0, "z0")
    if z is None:
        z = torch.zeros((xb.shape[0], *W.out_shape), dtype=xb.dtype, device=xb.device)
    x_norm = _norm(xb)
    d = xb - W.rmatvec(z)
    if zt is not None:
        zt_norm, zt_supp = _norm(zt), zt != 0
        zt_count = zt_supp.flatten(1).sum(1).to(xb.dtype)

    history: list[IHTStat] = []
    stop_reason, switches, x_hat = "max_iter", None, W.rmatvec(z)
    for it in range(1, max_iter + 1):
        g = W.matvec(d)
        if step == "normalized":
            mask = z != 0
            first = ~mask.flatten(1).any(1)
            if bool(first.any()):  # empty support: use the support of M(g, k)
                mask = torch.where(
                    _bcast(first, z), model_sparse(g, k, pool, variant=variant).code != 0, mask
                )
            mu = _normalized_step(W, g, mask)
        else:
            mu = torch.full((xb.shape[0],), float(step), dtype=xb.dtype, device=xb.device)
        proj = model_sparse(z + _bcast(mu, g) * g, k, pool, variant=variant)
        if step == "normalized":
            # safeguard: when the support changes, mu must not exceed
            # omega = 0.99 ||dz||^2 / ||W^T dz||^2; else halve it and project again
            for _ in range(max_backtrack):
                changed = ((proj.code != 0) != (z != 0)).flatten(1).any(1)
                dz = proj.code - z
                omega = 0.99 * _safe_div(_norm(dz) ** 2, _norm(W.rmatvec(dz)) ** 2)
                bad = changed & (mu > omega) & (omega > 0)
                if not bool(bad.any()):
                    break
                mu = torch.where(bad, mu / 2.0, mu)
                proj = model_sparse(z + _bcast(mu, g) * g, k, pool, variant=variant)
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
            else _safe_div(((z != 0) & zt_supp).flatten(1).sum(1).to(xb.dtype), zt_count),
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
