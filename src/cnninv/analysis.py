r"""Analyses of trained networks, for any PyTorch CNN (an ``nn.Module`` and layer names).

* :func:`activation_sparsity` — % of non-zero activations per layer (Tables 2, 7);
* :func:`filter_coherence` — coherence of a layer's filters beside Gaussian filters of the
  same size, without and with shifts (Tables 3, 6);
* :func:`k_for_fraction` — the model sparsity ``k`` matching a measured density;
* :func:`reconstruct_activation` — :math:`\hat f = \mathbf W^T\mathbb M(\mathbf Wf, k)`
  (and more IHT iterations), rescaled to :math:`\|f\|` as in §4.5 (Table 4);
* :func:`pool_conv_pairs` — each pooling layer with the convolution that follows it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnninv._checks import check_finite, check_positive_int
from cnninv.networks import capture, nonzero_percent
from cnninv.operators import ConvOperator
from cnninv.recovery import iht
from cnninv.sparsity import Pool, num_blocks
from cnninv.theory import coherence

__all__ = [
    "activation_sparsity",
    "filter_coherence",
    "k_for_fraction",
    "pool_conv_pairs",
    "reconstruct_activation",
    "relative_error",
]


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


def k_for_fraction(fraction: float, shape: Sequence[int], pool: Pool) -> int:
    """``k`` = ``fraction`` of the blocks of a code of shape ``(K, *spatial)``, at least 1."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    blocks = num_blocks(shape, pool)
    return max(1, min(blocks, round(fraction * blocks)))


def relative_error(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """:math:`\\|\\hat f - f\\|/\\|f\\|` per sample."""
    return (estimate - target).flatten(1).norm(dim=1) / target.flatten(1).norm(dim=1)


def _rescale(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    en = estimate.flatten(1).norm(dim=1).clamp_min(torch.finfo(estimate.dtype).tiny)
    tn = target.flatten(1).norm(dim=1)
    return estimate * (tn / en).view(-1, *([1] * (estimate.dim() - 1)))


def reconstruct_activation(
    W: ConvOperator,
    f: torch.Tensor,
    k: int | None,
    *,
    pool: Pool = 2,
    variant: str = "abs",
    iters: int = 1,
    rescale: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Reconstruct activations ``f`` through the next layer ``W`` by IHT.

    One iteration is the paper's :math:`\hat f = \mathbf W^T\mathbb M(\mathbf W f, k)`
    (step 1); more iterations use normalised IHT, whose step adapts to the scale of
    learned filters (a fixed step diverges when :math:`\|\mathbf W\|\gg 1`). With
    ``rescale`` the estimate is scaled to :math:`\|f\|` (§4.5). Returns ``(f_hat, error)``
    with ``error`` = :math:`\|\hat f - f\|/\|f\|` per sample.
    """
    check_positive_int(iters, "iters")
    check_finite(f, "f")
    res = iht(
        W,
        f,
        k,
        pool=pool,
        variant=variant,
        max_iter=iters,
        step=1.0 if iters == 1 else "normalized",
    )
    f_hat = res.x_hat.reshape(f.shape)
    if rescale:
        f_hat = _rescale(f_hat.reshape(f.shape[0], -1), f.reshape(f.shape[0], -1)).view_as(f)
    return f_hat, relative_error(f_hat, f)


def pool_conv_pairs(layer_order: Sequence[str]) -> list[tuple[str, str]]:
    """Each pooling layer paired with the first convolution after it, from the layers in
    forward order (e.g. ``pool1 -> conv2_1`` in VGG16)."""
    pairs = []
    for i, name in enumerate(layer_order):
        if name.startswith("pool"):
            nxt = next((n for n in layer_order[i + 1 :] if n.startswith("conv")), None)
            if nxt is not None:
                pairs.append((name, nxt))
    return pairs
