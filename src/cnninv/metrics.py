"""TEMPORARY stand-in until the core branch lands (same API)."""

from __future__ import annotations

import torch

__all__ = ["per_sample_norm", "relative_error", "rescale_to"]


def per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(t, dim=tuple(range(1, t.dim())))


def _logical_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1)


def relative_error(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    tn = _logical_norm(target)
    if bool((tn == 0).any()):
        raise ValueError("target contains an all-zero sample; the relative error is undefined")
    return _logical_norm(estimate - target) / tn


def rescale_to(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    en = _logical_norm(estimate).clamp_min(torch.finfo(estimate.dtype).tiny)
    tn = _logical_norm(target)
    return estimate * (tn / en).view(-1, *([1] * (estimate.dim() - 1)))
