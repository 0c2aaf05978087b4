"""What a network's layers look like on real photos: the density of their activations
(Tables 2 and 7) and the coherence of their filters (Tables 3 and 6)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnninv._checks import check_positive_int
from cnninv.models import capture, nonzero_percent
from cnninv.theory import coherence

__all__ = ["activation_sparsity", "filter_coherence"]


def activation_sparsity(
    model: nn.Module,
    images: torch.Tensor,
    layers: Sequence[tuple[str, str]],
    *,
    batch_size: int = 4,
) -> dict[str, float]:
    """Percentage of non-zero entries at each layer, averaged over the images.

    ``layers`` is a list of ``(label, layer)`` pairs: the label to report and the layer
    whose output is counted (e.g. ``("conv1_1", "relu1_1")``: a convolution is counted
    after its ReLU, as in Table 2). Works for any module with ``named_modules()`` names.
    """
    check_positive_int(batch_size, "batch_size")
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(
            f"images must be a non-empty batch (N, C, H, W), got {tuple(images.shape)}"
        )
    totals = {label: 0.0 for label, _ in layers}
    names = [layer for _, layer in layers]
    for start in range(0, images.shape[0], batch_size):
        acts = capture(model, images[start : start + batch_size], names)
        for label, layer in layers:
            a = acts[layer]
            totals[label] += sum(nonzero_percent(a[i]) for i in range(a.shape[0]))
    return {label: v / images.shape[0] for label, v in totals.items()}


def filter_coherence(weight: torch.Tensor, *, stride: int = 1, seed: int = 0) -> dict[str, float]:
    """Coherence of ``weight`` (K, M, kh, kw) and of Gaussian filters of the same shape,
    without and with shifts (``stride`` restricts shifts to the layer's stride)."""
    g = torch.Generator().manual_seed(seed)
    random = torch.randn(weight.shape, generator=g, dtype=torch.float64)
    w = weight.detach().cpu()
    return {
        "learned_noshift": coherence(w),
        "learned_shift": coherence(w, shifts=True, stride=stride),
        "random_noshift": coherence(random),
        "random_shift": coherence(random, shifts=True, stride=stride),
    }
