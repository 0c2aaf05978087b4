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
from cnninv.operators import ConvOperator, LinearOperator
from cnninv.operators.sparse import SparseCode, add_entries, dense_code, gather_entries, sparse_code
from cnninv.recovery._common import (
    HistoryMixin,
    bcast,
    check_code,
    check_norm,
    check_signal,
    dims,
    safe_div,
)
from cnninv.sparsity import (
    Pool,
    check_k,
    check_variant,
    model_sparse,
    model_sparse_entries,
    num_blocks,
)

__all__ = ["DOMAINS", "STEP_RULES", "IHTResult", "IHTStat", "code_domain_cost", "iht"]

STEP_RULES = ("normalized",)
#: Where an iteration computes (:func:`iht`'s ``domain``).
DOMAINS = ("auto", "signal", "code")


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
    #: where the iterations computed: ``"signal"`` (a convolution and a transposed
    #: convolution each) or ``"code"`` (sparse placements and the Gram operator)
    domain: str = "signal"


def _empty_support(prev, mask: torch.Tensor) -> torch.Tensor:
    """Per sample, whether the code is 0: from the last projection's block values (a
    code is those values at their switches), else from the code's ``mask``."""
    if prev is None:
        return ~mask.any(dim=dims(mask))
    return ~(prev.values != 0).any(dim=dims(prev.values))


def _support_changed(new, prev, z: torch.Tensor) -> torch.Tensor:
    """Per sample, whether the projection ``new`` has another support than ``z``: block by
    block when ``z`` is the projection ``prev`` (a block's entry is kept at its switch when
    its value is not 0, so the supports agree when every block agrees on both), else
    entry by entry."""
    if prev is None:
        return ((new.code != 0) != (z != 0)).any(dim=dims(z))
    nz_new, nz_old = new.values != 0, prev.values != 0
    diff = (nz_new != nz_old) | (nz_new & (new.switches != prev.switches))
    return diff.any(dim=dims(diff))


def _normalized_step(W: LinearOperator, g: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """NIHT step (Blumensath & Davies 2010): ||g_G||^2 / ||W^T g_G||^2 on the support G."""
    g_s = g * mask
    num = per_sample_norm(g_s) ** 2
    den = per_sample_norm(W.rmatvec(g_s)) ** 2
    return torch.where(
        den > 0, num / den.clamp_min(torch.finfo(g.dtype).tiny), torch.ones_like(num)
    )


def _check_and_stop(stat: IHTStat, dtype: torch.dtype, step, tol: float) -> bool:
    """Whether every sample met the stop test (``rel_change <= tol``); iterates that
    overflowed (a fixed step too large for W) are an error, not NaN. One read-back for
    both (one host synchronisation per iteration on a GPU)."""
    finite, stop = torch.stack(
        [torch.isfinite(torch.stack([stat.residual, stat.rel_change])).all(),
         (stat.rel_change <= tol).all()]
    ).tolist()  # fmt: skip
    if not finite:
        raise ValueError(
            f"iht diverged at iteration {stat.iteration}: the iterates overflowed {dtype} "
            f"(step={step!r} is too large for the scale of W; try step='normalized')"
        )
    return stop


def _check_step(step: object) -> float | str:
    if isinstance(step, str) and step in STEP_RULES:
        return step
    if not is_number(step) or not 0 < float(step) < math.inf:
        raise ValueError(
            f"step must be positive (a finite number) or one of {STEP_RULES}, got {step!r}"
        )
    return step


# ------------------------------------------------------------------ the code domain

#: The cost model of the two domains (nanoseconds of one CPU core, float32), fitted once to
#: ``benchmarks/bench_iht.py``'s sweep over k (BENCHMARKS.md, "crossover"). Per sample and
#: iteration, with E = K n + M D the entries of a code and a signal: the signal domain pays
#: its two convolutions' multiply-adds (``mac``) and its passes over the code and signal
#: (``elem``); the code domain pays its bag slots, one row of the table per result
#: position and non-zero (``row`` per entry of E per slot, k + 1 slots per bag), and its
#: own passes (``elem``). Per iteration, each domain pays a fixed cost for its calls
#: (``call_*``): the code domain makes more of them, so small batches stay in the signal
#: domain.
_COST = {"mac": 0.09, "elem": 12.0, "row": 0.5, "call_signal": 1.0e6, "call_code": 1.5e6}


def code_domain_cost(W: LinearOperator, batch: int, k: int | None) -> dict:
    """The cost model behind :func:`iht`'s ``domain="auto"``: estimated nanoseconds per
    iteration of a batch in each domain (``"signal"``, ``"code"``), and whether the code
    domain applies at all (``eligible``; ``reason`` says why not). Deterministic: the same
    sizes make the same choice, so the same seed gives the same numbers."""
    out = {"signal": None, "code": None, "eligible": False, "reason": ""}
    if not isinstance(W, ConvOperator):
        out["reason"] = "W is not a ConvOperator"
        return out
    spatial = math.prod(W.output_size)
    taps = math.prod(W.kernel_size)
    macs = 2 * W.K * (W.M // W.groups) * taps * spatial
    entries = W.K * spatial + W.M * math.prod(W.input_size)
    out["signal"] = batch * (macs * _COST["mac"] + entries * _COST["elem"]) + _COST["call_signal"]
    if k is None:
        out["reason"] = "k is None (every block kept: the code is not sparse)"
        return out
    if any(p != 0 for p in W.padding):
        out["reason"] = "the layer is padded (its Gram operator is not a convolution)"
        return out
    per_sample = entries * ((k + 1) * _COST["row"] + _COST["elem"])
    out["code"] = batch * per_sample + _COST["call_code"]
    out["eligible"] = True
    return out


def _use_code_domain(W, domain: str, batch: int, k, pool, z0) -> bool:
    if domain == "signal":
        return False
    cost = code_domain_cost(W, batch, k)
    reason = cost["reason"]
    if not reason and z0 is not None:
        reason = "z0 is given (the code domain starts from z = 0)"
    if not reason and k > num_blocks(W.out_shape, pool) // 2:
        reason = "k is more than half the blocks (the code is not sparse)"
    if domain == "code":
        if reason:
            raise ValueError(f"domain='code' does not apply here: {reason}")
        return True
    return not reason and cost["code"] < cost["signal"]


def _sorted_keys(code: SparseCode, big: int) -> torch.Tensor:
    """The indices of a code's non-zero entries, sorted, ``big`` in place of zero entries."""
    return torch.where(code.values != 0, code.index, big).sort(dim=1).values


def _merge(a: SparseCode, b: SparseCode) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The entries of ``a + b`` for two codes whose indices are distinct within each:
    ``(index, values, pair)`` sorted by index, each pair's sum in its first slot and 0 in
    its second (``pair[:, j]``: slots ``j`` and ``j + 1`` hold the same index). The sum is
    the one a dense ``a + b`` computes, so the values are exact."""
    idx, order = torch.cat([a.index, b.index], 1).sort(dim=1)
    val = torch.cat([a.values, b.values], 1).gather(1, order)
    pair = idx[:, 1:] == idx[:, :-1]
    zero = torch.zeros((), dtype=val.dtype, device=val.device)
    merged = val.clone()
    merged[:, :-1] += torch.where(pair, val[:, 1:], zero)
    merged[:, 1:] = torch.where(pair, zero, merged[:, 1:])
    return idx, merged, (pair, val)


def _norm(values: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(values, dim=1)


def _negated(code: SparseCode) -> SparseCode:
    return SparseCode(code.index, -code.values)


def _quadratic(kern, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    r""":math:`\|\mathbf W^T z\|^2 = z^T (\mathbf W\mathbf W^T) z` per sample for a code
    given by its (distinct) entries, from the Gram operator's entries between them."""
    G = kern.gram_pairs(index, index)
    return (torch.bmm(G, values.unsqueeze(2)).squeeze(2) * values).sum(1).clamp_min(0)


def _normalized_step_code(kern, Wx: torch.Tensor, z: SparseCode, project) -> torch.Tensor:
    r"""NIHT's step :math:`\|g_\Gamma\|^2/\|\mathbf W^T g_\Gamma\|^2` (as
    :func:`_normalized_step`) on the support :math:`\Gamma` of ``z`` (of
    :math:`\mathbb M(g, k)` where ``z`` is 0), without the gradient's map:
    :math:`g_\Gamma = (\mathbf Wx)_\Gamma - G_{\Gamma S}\,z_S` and the denominator a
    quadratic form, from the Gram operator's entries between the few positions involved."""
    zmask = z.values != 0
    first = ~zmask.any(dim=1)
    sel, smask = z.index, zmask
    g_sel = None
    if z.index.shape[1]:
        G = kern.gram_pairs(z.index, z.index)
        g_sel = gather_entries(Wx, z.index) - torch.bmm(G, z.values.unsqueeze(2)).squeeze(2)
    if bool(first.any()):  # empty support (z = 0, so g = W x): use the support of M(g, k)
        pg = project(Wx)
        g_pg = gather_entries(Wx, pg.index)
        if g_sel is None:
            sel, smask, g_sel = pg.index, pg.values != 0, g_pg
        else:
            f = bcast(first, sel)
            sel = torch.where(f, pg.index, sel)
            smask = torch.where(f, pg.values != 0, smask)
            g_sel = torch.where(f, g_pg, g_sel)
    g_s = g_sel * smask
    num = _norm(g_s) ** 2
    den = _quadratic(kern, sel, g_s)
    return torch.where(
        den > 0, num / den.clamp_min(torch.finfo(num.dtype).tiny), torch.ones_like(num)
    )


def _iht_code_domain(W, xb, k, pool, variant, max_iter, tol, step, zt, callback, max_backtrack):
    r"""Algorithm 1 on sparse codes: :math:`\mathbf W^T\hat z` by filter placements,
    :math:`\mathbf W(x - \mathbf W^T\hat z) = \mathbf Wx - (\mathbf W\mathbf W^T)\hat z`
    by the Gram operator (see :mod:`cnninv.operators.sparse`); the same iteration, history
    and stopping rule as the signal domain, to float rounding.

    Each product is one ``embedding_bag`` with the fixed term folded in:
    :math:`b = \mu\,\mathbf Wx - \mu(\mathbf W\mathbf W^T)\hat z` (then
    :math:`+\hat z` at its ``k`` entries) and :math:`d = x - \mathbf W^T\hat z`."""
    B = xb.shape[0]
    dtype, device = xb.dtype, xb.device
    shape = W.out_shape
    big = math.prod(shape)  # sorts after every index
    x_norm = per_sample_norm(xb)
    check_norm(x_norm, "x")
    kern = W.sparse_kernels()
    Wx = W.matvec(xb)
    gram_Wx = kern.affine("gram", Wx)  # mu W x - (W W^T)(mu z)
    place_x = kern.affine("place", xb)  # x - W^T z
    ones = torch.ones((B,), dtype=dtype, device=device)
    empty = torch.zeros((B, 0), dtype=torch.long, device=device)
    z = SparseCode(empty, torch.zeros((B, 0), dtype=dtype, device=device))
    if zt is not None:
        zt_norm = per_sample_norm(zt)
        check_norm(zt_norm, "z_true")
        zt_code = sparse_code(zt)
        zt_count = (zt_code.values != 0).sum(1).to(dtype)

    def project(b: torch.Tensor) -> SparseCode:
        p = model_sparse_entries(b, k, pool, variant=variant, switches=False)
        return SparseCode(p.index, p.values)

    def gradient_step(mu: torch.Tensor) -> torch.Tensor:
        """b = z + mu W(x - W^T z)."""
        if z.index.shape[1] == 0:
            return Wx if step == 1 else Wx * bcast(mu, Wx)
        scaled = SparseCode(z.index, -(z.values * bcast(mu, z.values)))
        return add_entries(kern.gram(scaled, gram_Wx, mu), z)

    history: list[IHTStat] = []
    stop_reason = "max_iter"
    for it in range(1, max_iter + 1):
        if step == "normalized":
            mu = _normalized_step_code(kern, Wx, z, project)
        else:
            mu = torch.full((B,), float(step), dtype=dtype, device=device)
        b = gradient_step(mu)
        proj = project(b)
        if step == "normalized":
            # safeguard, as in the signal domain; ||W^T dz||^2 = dz^T G dz on dz's entries
            old_keys = _sorted_keys(z, big)
            for _ in range(max_backtrack):
                new_keys = _sorted_keys(proj, big)
                if old_keys.shape[1] < new_keys.shape[1]:
                    pad = new_keys.shape[1] - old_keys.shape[1]
                    old_keys = torch.cat([old_keys, old_keys.new_full((B, pad), big)], 1)
                changed = (new_keys != old_keys).any(dim=1)
                idx, dz, _ = _merge(proj, _negated(z))
                omega = 0.99 * safe_div(_norm(dz) ** 2, _quadratic(kern, idx, dz))
                bad = changed & (mu > omega) & (omega > 0)
                if not bool(bad.any()):
                    break
                mu = torch.where(bad, mu / 2.0, mu)
                b = gradient_step(mu)
                proj = project(b)
        d = kern.rmatvec(_negated(proj), place_x, ones)  # x - W^T z
        _, diff, _ = _merge(proj, _negated(z))
        change = safe_div(_norm(diff), _norm(proj.values))
        z = proj
        if zt is not None:
            _, err, (pair, raw) = _merge(z, _negated(zt_code))
            both = pair & (raw[:, :-1] != 0) & (raw[:, 1:] != 0)
            code_error = safe_div(_norm(err), zt_norm)
            support = safe_div(both.sum(1).to(dtype), zt_count)
        stat = IHTStat(
            iteration=it,
            residual=safe_div(per_sample_norm(d), x_norm),
            rel_change=change,
            step=mu,
            code_error=None if zt is None else code_error,
            support_recovery=None if zt is None else support,
        )
        stop = _check_and_stop(stat, dtype, step, tol)
        history.append(stat)
        if callback is not None:
            callback(it, dense_code(z, shape, like=Wx), stat)
        if stop:
            stop_reason = "converged"
            break
    switches = model_sparse_entries(b, k, pool, variant=variant).switches
    x_hat = kern.rmatvec(z)
    return dense_code(z, shape, like=Wx), x_hat, switches, len(history), stop_reason, history


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
    domain: str = "auto",
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
    domain : ``"auto"``, ``"signal"`` or ``"code"``
        Where an iteration computes. ``"signal"``: :math:`\mathbf W d` and
        :math:`\mathbf W^T\hat z` as a convolution and a transposed convolution.
        ``"code"`` (a :class:`~cnninv.operators.ConvOperator` without padding, from
        :math:`\hat z_0 = 0`): :math:`\mathbf W^T\hat z` as ``k`` filter placements and
        :math:`\mathbf W d = \mathbf Wx - (\mathbf W\mathbf W^T)\hat z` through the Gram
        operator, :math:`O(kK\ell)` per sample instead of :math:`O(KM\ell n)`; the same
        iterates to float rounding. ``"auto"`` picks by :func:`code_domain_cost`.

    Returns
    -------
    IHTResult
        ``z``, ``x_hat = W.T z``, ``switches``, ``n_iter``, ``stop_reason``
        (``"converged"`` or ``"max_iter"``), the per-iteration ``history`` and the
        ``domain`` used.

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
    if not isinstance(domain, str) or domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
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
    if _use_code_domain(W, domain, B, k, pool, z0):
        out = _iht_code_domain(
            W, xb, k, pool, variant, max_iter, tol, step, zt, callback, max_backtrack
        )
        z, x_hat, switches, n_iter, stop_reason, history = out
        if unbatched:
            z, x_hat, switches = z[0], x_hat[0], switches[0]
        return IHTResult(z, x_hat, switches, n_iter, stop_reason, history, "code")
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
    prev = None  # the last projection: supports compared block by block, 1/pool^2 the work
    for it in range(1, max_iter + 1):
        g = W.matvec(d)
        if step == "normalized":
            mask = z != 0
            first = _empty_support(prev, mask)
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
            # omega = 0.99 ||dz||^2 / ||W^T dz||^2; else halve it and project again.
            # W^T dz = W^T z+ - W^T z, and W^T z+ is the next reconstruction: one product
            # per candidate instead of two
            for _ in range(max_backtrack):
                x_cand = W.rmatvec(proj.code)
                changed = _support_changed(proj, prev, z)
                if not bool(changed.any()):
                    break
                dz = proj.code - z
                omega = 0.99 * safe_div(
                    per_sample_norm(dz) ** 2, per_sample_norm(x_cand - x_hat) ** 2
                )
                bad = changed & (mu > omega) & (omega > 0)
                if not bool(bad.any()):
                    break
                mu = torch.where(bad, mu / 2.0, mu)
                proj = project(z + g * bcast(mu, g))
            else:  # halved max_backtrack times (or none allowed): the last one stands
                x_cand = W.rmatvec(proj.code)
        prev = proj
        z_new, switches = proj.code, proj.switches
        x_hat = x_cand if step == "normalized" else W.rmatvec(z_new)
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
        stop = _check_and_stop(stat, xb.dtype, step, tol)
        history.append(stat)
        if callback is not None:
            callback(it, z, stat)
        if stop:
            stop_reason = "converged"
            break
    if unbatched:
        z, x_hat, switches = z[0], x_hat[0], switches[0]
    return IHTResult(z, x_hat, switches, len(history), stop_reason, history)
