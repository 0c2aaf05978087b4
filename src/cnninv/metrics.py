r"""Per-sample norms and errors of batched tensors: the measurements every experiment
reports, in one place.

A batch has its samples along the first axis; every other axis belongs to the sample.
:func:`per_sample_norm` reduces over those axes in memory order (no copy of a
channels-last tensor: the solvers' inner loops use it); :func:`relative_error` and
:func:`rescale_to`, which produce the numbers the experiments report, reduce in the
sample's logical order, so that their results do not depend on the memory layout of
their arguments.

>>> import torch
>>> target = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
>>> per_sample_norm(target)
tensor([5., 1.])
>>> relative_error(torch.tensor([[3.0, 4.0], [0.0, 0.0]]), target)
tensor([0., 1.])
>>> rescale_to(torch.tensor([[0.6, 0.8], [2.0, 0.0]]), target)
tensor([[3., 4.],
        [1., 0.]])
"""

from __future__ import annotations

import torch

__all__ = ["per_sample_norm", "relative_error", "rescale_to"]


def _check_batch(t: object, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.dim() < 1 or not t.is_floating_point():
        what = f"dtype {t.dtype}, shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else t
        raise ValueError(f"{name} must be a floating-point batch (B, ...), got {what}")
    return t


def _check_pair(estimate: object, target: object) -> None:
    _check_batch(estimate, "estimate")
    _check_batch(target, "target")
    if estimate.shape != target.shape:
        raise ValueError(
            f"estimate {tuple(estimate.shape)} and target {tuple(target.shape)} differ in shape"
        )
    if estimate.device != target.device:
        raise ValueError(f"estimate ({estimate.device}) and target ({target.device}) differ")


def _finite(t: torch.Tensor, what: str) -> torch.Tensor:
    if t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(
            f"{what} is not finite: the inputs hold NaN or inf, or their norms overflow {t.dtype}"
        )
    return t


def per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    r""":math:`\|t_b\|_2` for every sample ``b``: a tensor ``(B,)``.

    Over every axis but the first, whatever the memory layout (no copy of a channels-last
    tensor); for a 1-d ``t`` each entry is a sample, and the result is ``|t|``.
    """
    _check_batch(t, "t")
    if t.dim() == 1:
        return t.abs()
    return torch.linalg.vector_norm(t, dim=tuple(range(1, t.dim())))


def _logical_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-sample norm in the sample's logical (C) order, whatever the memory layout."""
    if t.dim() == 1:
        return t.abs()
    return torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1)


def relative_error(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r""":math:`\|\hat t_b - t_b\|_2 / \|t_b\|_2` per sample, shape ``(B,)``.

    ``ValueError`` (naming ``target``) when a sample of ``target`` is all zero, where the
    relative error is undefined, and when the result is not finite.
    """
    _check_pair(estimate, target)
    norm = _logical_norm(target)
    if bool((norm == 0).any()):
        raise ValueError("target has an all-zero sample: its relative error is undefined")
    return _finite(_logical_norm(estimate - target) / norm, "relative_error")


def rescale_to(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""``estimate`` with every sample scaled to the norm of ``target``'s:
    :math:`\hat t_b\,\|t_b\|/\|\hat t_b\|` (an all-zero sample of ``estimate`` stays zero)."""
    _check_pair(estimate, target)
    en = _logical_norm(estimate)
    tn = _logical_norm(target)
    ratio = tn / en.clamp_min(torch.finfo(en.dtype).tiny)
    scale = _finite(torch.where(en > 0, ratio, 0.0), "the scale ||target|| / ||estimate||")
    return _finite(estimate * scale.view(-1, *([1] * (estimate.dim() - 1))), "rescale_to")
