r"""The small CNN classifiers of Table 1 and Appendix C.1 (Table 5).

One to three layers of

    convolution (stride 1, kernel :math:`k`, :math:`n` output channels, 'same' padding)
    → batch normalisation with a learnable scale and bias → ReLU → 2×2 max pooling,

then an average pooling that brings the feature map to 4×4 (omitted when it already is),
dropout, and a learnable soft-max (linear) classifier. On 32×32 inputs (CIFAR-10, and
Fashion-MNIST padded to 32×32 by :mod:`cnninv.classify.data`) the maps are 16, 8, 4
pixels wide after one, two, three layers, so the average pooling is 4×4, 2×2 or none —
Table 5's ``4pave``, ``2pave`` and nothing.

Two variants of the convolutions (§4.1):

``"random"``
    i.i.d. :math:`\mathcal N(0, 1)` filters, frozen after initialisation (``requires_grad``
    is False and the optimiser never sees them); batch normalisation makes their scale
    irrelevant (footnote 5), and its scale and bias, and the classifier, are trained.
``"learned"``
    the same architecture with every filter trained, initialised :math:`\mathcal N(0,
    2/(c_{in} k^2))` (He), whose scale suits gradient training.

Names follow the paper's notation (Table 5): ``(n)kc`` a convolution with ``n`` outputs
and kernel ``k``, ``2pmax`` a 2×2 max pooling with stride 2, ``4pave`` a 4×4 average
pooling.

>>> model = ConvClassifier(depth=2, width=16, kernel_size=3, in_channels=1, variant="random")
>>> model.arch
'(16)3c-2pmax-(16)3c-2pmax-2pave'
>>> model(torch.zeros(4, 1, 32, 32)).shape
torch.Size([4, 10])
>>> [name for name, p in model.named_parameters() if not p.requires_grad]
['features.0.conv.weight', 'features.1.conv.weight']
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from cnninv._checks import check_positive_int, make_generator

__all__ = [
    "INPUT_SIZE",
    "VARIANTS",
    "ConvBlock",
    "ConvClassifier",
    "SeededDropout",
    "arch_name",
    "trainable_parameters",
]

#: The variants of §4.1: filters frozen at their Gaussian initialisation, or trained.
VARIANTS = ("random", "learned")
#: Input width and height the architectures are written for (CIFAR-10's).
INPUT_SIZE = 32


def _check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return variant


def _pool_after(depth: int, input_size: int) -> int:
    """Kernel of the average pooling that brings the final map to 4×4 (1 = none)."""
    size = input_size // 2**depth
    if size < 4:
        raise ValueError(
            f"depth={depth} leaves a {size}×{size} map from {input_size}×{input_size} "
            "inputs; the classifier expects at least 4×4"
        )
    if size % 4:
        raise ValueError(f"a {size}×{size} map cannot be average-pooled to 4×4")
    return size // 4


def arch_name(
    widths: Sequence[int], kernel_sizes: Sequence[int], input_size: int = INPUT_SIZE
) -> str:
    """The paper's name of an architecture (Table 5), e.g. ``(2048)3c-2pmax-4pave``.

    >>> arch_name([64, 64, 32], [3, 3, 5])
    '(64)3c-2pmax-(64)3c-2pmax-(32)5c-2pmax'
    """
    if len(widths) != len(kernel_sizes) or not widths:
        raise ValueError(
            f"widths and kernel_sizes must be non-empty and of one length, got "
            f"{list(widths)} and {list(kernel_sizes)}"
        )
    parts = [f"({n}){k}c-2pmax" for n, k in zip(widths, kernel_sizes, strict=True)]
    pool = _pool_after(len(widths), input_size)
    if pool > 1:
        parts.append(f"{pool}pave")
    return "-".join(parts)


class SeededDropout(nn.Module):
    """Dropout whose masks come from the :class:`torch.Generator` passed to ``forward`` (on
    the input's device), so that training is reproducible and resumable without the global
    RNG; with ``generator=None`` PyTorch's global generator is used, as
    :class:`torch.nn.Dropout` does. The module holds no generator (no state to mutate)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=generator)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ConvBlock(nn.Module):
    """conv (stride 1, 'same' padding, no bias: batch normalisation follows) → BN with a
    learnable scale and bias → ReLU → 2×2 max pooling."""

    def __init__(self, in_channels: int, width: int, kernel_size: int) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd ('same' padding), got {kernel_size}")
        self.conv = nn.Conv2d(in_channels, width, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(width, affine=True)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(self.bn(self.conv(x))))


class ConvClassifier(nn.Module):
    """Table 5's classifier with ``depth`` conv blocks of ``width`` channels and kernel
    ``kernel_size``; ``variant`` ``"random"`` freezes the Gaussian filters.

    Parameters
    ----------
    depth, width, kernel_size
        Number of conv blocks (1–3 in the paper), their output channels and kernel.
    in_channels, num_classes, input_size
        1 or 3 channels; 10 classes; 32×32 inputs.
    variant
        ``"random"`` or ``"learned"``.
    dropout
        Dropout probability before the classifier.
    seed, generator
        Where the initial weights come from (never the global RNG).
    """

    def __init__(
        self,
        depth: int,
        width: int,
        kernel_size: int,
        *,
        in_channels: int = 3,
        num_classes: int = 10,
        input_size: int = INPUT_SIZE,
        variant: str = "random",
        dropout: float = 0.3,
        seed: int | None = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for name, value in (
            ("depth", depth),
            ("width", width),
            ("kernel_size", kernel_size),
            ("in_channels", in_channels),
            ("num_classes", num_classes),
        ):
            check_positive_int(value, name)
        self.variant = _check_variant(variant)
        self.depth, self.width, self.kernel_size = depth, width, kernel_size
        pool = _pool_after(depth, input_size)
        self.arch = arch_name([width] * depth, [kernel_size] * depth, input_size)
        blocks = [
            ConvBlock(in_channels if i == 0 else width, width, kernel_size) for i in range(depth)
        ]
        self.features = nn.Sequential(*blocks)
        self.avgpool = nn.AvgPool2d(pool, pool) if pool > 1 else nn.Identity()
        self.dropout = SeededDropout(dropout)
        self.classifier = nn.Linear(width * 16, num_classes)
        self.reset_parameters(seed=seed, generator=generator)

    @torch.no_grad()
    def reset_parameters(
        self, *, seed: int | None = 0, generator: torch.Generator | None = None
    ) -> None:
        """Draw the filters (N(0, 1) for ``random``, He for ``learned``) and the classifier
        (PyTorch's default uniform law) from ``generator``; BN starts at scale 1, bias 0."""
        gen = make_generator(seed, generator)
        for block in self.features:
            w = block.conv.weight
            std = 1.0 if self.variant == "random" else math.sqrt(2.0 / (w[0].numel()))
            w.copy_(torch.randn(w.shape, generator=gen, dtype=w.dtype) * std)
            w.requires_grad_(self.variant != "random")
            block.bn.reset_parameters()
        bound = 1.0 / math.sqrt(self.classifier.in_features)
        for p in (self.classifier.weight, self.classifier.bias):
            p.copy_(torch.rand(p.shape, generator=gen, dtype=p.dtype) * 2 * bound - bound)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Class scores; ``generator`` draws the dropout masks in training mode."""
        h = self.avgpool(self.features(x))
        return self.classifier(self.dropout(torch.flatten(h, 1), generator))


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters an optimiser should see: those with ``requires_grad`` (for the
    ``random`` variant, everything but the frozen filters)."""
    return [p for p in model.parameters() if p.requires_grad]
