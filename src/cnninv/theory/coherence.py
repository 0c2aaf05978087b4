r"""Mutual coherence of a filter bank (Tables 3 and 6): of the filters, or of the rows of
the conv matrix :math:`\mathbf W` (every relative shift)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cnninv._checks import check_bool, check_finite, check_positive_int

__all__ = ["coherence"]


def coherence(weight: torch.Tensor, shifts: bool = False, stride: int = 1) -> float:
    r"""Mutual coherence of a filter bank ``(K, M, *kernel)``.

    Each filter is normalised to unit :math:`\ell_2` norm over channels and taps.
    ``shifts=False``: :math:`\max_{i\ne j} |\langle w_i, w_j\rangle|` (the paper's footnote 8
    applied to the filters). ``shifts=True``: the coherence of the rows of the conv matrix
    :math:`\mathbf W` itself — the maximum over all relative shifts (multiples of ``stride``,
    partial overlaps included) of :math:`|\langle w_i, S w_j\rangle|`, excluding only a
    filter against itself at shift zero.
    """
    if not isinstance(weight, torch.Tensor) or weight.dim() not in (3, 4):
        raise ValueError("weight must have shape (K, M, ell) or (K, M, ell, ell)")
    if not weight.is_floating_point() or weight.numel() == 0:
        raise ValueError(
            f"weight must be a non-empty floating-point tensor, got dtype {weight.dtype}, "
            f"shape {tuple(weight.shape)}"
        )
    check_finite(weight, "weight")
    check_bool(shifts, "shifts")
    stride = check_positive_int(stride, "stride")
    K = weight.shape[0]
    if K < 2 and not shifts:
        raise ValueError("coherence needs at least two filters")
    w = weight.to(torch.float64) if weight.device.type == "cpu" else weight.double()
    w = w.contiguous()  # the products below in the default layout, whatever the input's
    norms = w.flatten(1).norm(dim=1)
    if bool((norms == 0).any()):
        raise ValueError("weight contains an all-zero filter; coherence is undefined")
    if not bool(torch.isfinite(norms).all()):
        raise ValueError("weight is too large: the norm of a filter overflows float64")
    w = w / norms.view(-1, *([1] * (w.dim() - 1)))
    if not shifts:
        g = w.flatten(1) @ w.flatten(1).T
        g.fill_diagonal_(0)
        return float(g.abs().max())
    kernel = w.shape[2:]
    # g[i, j, s] = <w_i shifted by s, w_j>, for every lag s in [-(ell-1), ell-1]
    g = _shift_gram(w)
    centre = tuple(e - 1 for e in kernel)
    diag = torch.arange(K)
    g[(diag, diag, *(torch.full_like(diag, c) for c in centre))] = 0
    if stride > 1:
        # a stride beyond the 2c+1 lags of an axis keeps only lag 0 there, as 2c+1 does
        steps = [min(stride, 2 * c + 1) for c in centre]
        idx = [torch.arange(c % t, 2 * c + 1, t) for c, t in zip(centre, steps, strict=True)]
        g = g[(slice(None), slice(None), *torch.meshgrid(*idx, indexing="ij"))]
    return float(g.abs().max())


def _shift_gram(w: torch.Tensor, chunk_bytes: int = 64 * 2**20) -> torch.Tensor:
    """``conv(w, w, padding=ell - 1)`` of a filter bank ``(K, M, *kernel)`` with itself,
    ``(K, K, *(2 ell - 1))``: every filter's windows at every lag against every filter,
    as one matrix product per chunk of filters (float64 convolutions have no fast kernel
    on the CPU: this is about 3x faster at VGG16's conv5; the same sums in another order,
    so equal to float64 rounding)."""
    K = w.shape[0]
    kernel = tuple(w.shape[2:])
    ndim = len(kernel)
    pad = [p for e in reversed(kernel) for p in (e - 1, e - 1)]
    wp = F.pad(w, pad)
    for axis, e in enumerate(kernel):
        wp = wp.unfold(2 + axis, e, 1)  # (K, M, *lags, *kernel)
    lags = tuple(2 * e - 1 for e in kernel)
    order = (0, *range(2, 2 + ndim), 1, *range(2 + ndim, 2 + 2 * ndim))
    cols = w.flatten(1).T  # (M * taps, K)
    out = w.new_empty((K, *lags, K))
    per = max(1, chunk_bytes // max(1, math.prod(lags) * cols.shape[0] * w.element_size()))
    for start in range(0, K, per):
        rows = wp[start : start + per].permute(order).reshape(-1, cols.shape[0])
        out[start : start + per] = (rows @ cols).view(-1, *lags, K)
    return out.permute(0, ndim + 1, *range(1, ndim + 1))
