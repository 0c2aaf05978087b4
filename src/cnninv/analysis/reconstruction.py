r"""Table 4's reconstruction of a pooled activation through the next layer.

For a pooling layer's activation :math:`f`, the paper (§4.5) takes the convolution that
follows, :math:`\mathbf W` (its learned filters normalised to unit norm, or Gaussian
filters of the same size), a model sparsity ``k`` matching the density of that
convolution's ReLU output on the same photos, and reconstructs
:math:`\hat f = \mathbf W^T\mathbb M(\mathbf W f, k)`, rescaled to :math:`\|f\|`.

* :func:`next_layer` — the one place where "pool → next conv → **W** → density → k" is
  decided (used by Table 4 in both spaces, Figures 4–5 and ``cnninv invert``);
* :func:`reconstruct_activation` — :math:`\hat f` by 1 (or more) IHT iterations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cnninv._checks import check_finite, check_positive_int, make_generator
from cnninv.metrics import relative_error, rescale_to
from cnninv.models import next_conv
from cnninv.operators import ConvOperator
from cnninv.recovery import iht
from cnninv.sparsity import Pool, num_blocks

__all__ = [
    "FILTERS",
    "NextLayer",
    "k_for_fraction",
    "next_layer",
    "reconstruct_activation",
    "reconstruct_activation_iters",
]

#: The filters of :func:`next_layer`: the network's own, or Gaussian of the same size.
FILTERS = ("learned", "random")

#: Densities are floored at this fraction, so that an all-zero layer still gives k = 1.
_MIN_DENSITY = 1e-6


def k_for_fraction(fraction: float, shape: Sequence[int], pool: Pool) -> int:
    """``k`` = ``fraction`` of the blocks of a code of shape ``(K, *spatial)``, at least 1."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    blocks = num_blocks(shape, pool)
    return max(1, min(blocks, round(fraction * blocks)))


@dataclass
class NextLayer:
    """The layer after a pooling layer, as Table 4 uses it.

    conv_name : the next convolution's name (``conv5_1`` after VGG16's ``pool4``).
    W : its operator at the activation's size, with the learned filters (scaled to unit
        norm when ``unit_norm``).
    density : fraction of non-zeros of the next convolution's ReLU output on ``f``.
    k : the model sparsity matching ``density`` (:func:`k_for_fraction`).
    unit_norm : whether the filters were scaled to unit norm.
    """

    conv_name: str
    W: ConvOperator
    density: float
    k: int
    unit_norm: bool = True

    def operator(self, filters: str, generator: torch.Generator | None = None) -> ConvOperator:
        """``W`` with the learned filters (``"learned"``) or Gaussian filters of the same
        size drawn from ``generator`` (``"random"``; unit-norm rows when ``unit_norm``)."""
        if filters not in FILTERS:
            raise ValueError(f"filters must be one of {FILTERS}, got {filters!r}")
        if filters == "learned":
            return self.W
        W = self.W
        gen = generator if generator is not None else make_generator(0, None, W.weight.device)
        return ConvOperator.gaussian(
            W.K, W.M, W.kernel_size, W.input_size, W.stride, W.padding,
            unit_norm_rows=self.unit_norm, generator=gen, device=W.weight.device,
        )  # fmt: skip


def next_layer(
    model: nn.Module,
    layer: str,
    f: torch.Tensor,
    *,
    unit_norm: bool = True,
    pool: Pool = 2,
    batch_size: int | None = None,
) -> NextLayer:
    """The convolution after pooling layer ``layer``, its operator and the ``k`` that
    matches its density on the activations ``f`` (``(B, C, h, w)``, the layer's output).

    The density is measured with the network's own convolution and ReLU, on chunks of
    ``batch_size`` activations (None: all at once); :meth:`NextLayer.operator` gives the
    learned or Gaussian operator.
    """
    step = f.shape[0] if batch_size is None else check_positive_int(batch_size, "batch_size")
    conv_name, conv, relu = next_conv(model, layer)
    nonzero, total = 0, 0
    with torch.no_grad():
        for s in range(0, f.shape[0], step):
            a = relu(conv(f[s : s + step]))
            nonzero += int(torch.count_nonzero(a))
            total += a.numel()
    density = nonzero / total
    W = ConvOperator.from_conv(conv, tuple(f.shape[-2:])).to(f.device)
    if unit_norm:
        W = W.unit_norm_filters()
    k = k_for_fraction(max(density, _MIN_DENSITY), W.out_shape, pool)
    return NextLayer(conv_name, W, density, k, unit_norm)


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
        # in f's logical layout: the solver's (channels-last on the CPU) would change how
        # a decoder's convolutions round its output
        f_hat = rescale_to(f_hat.contiguous(), f)
    return f_hat, relative_error(f_hat, f)


def reconstruct_activation_iters(
    W: ConvOperator,
    f: torch.Tensor,
    k: int | None,
    iters: Sequence[int],
    *,
    pool: Pool = 2,
    variant: str = "abs",
    rescale: bool = True,
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    r""":func:`reconstruct_activation` for several iteration counts at once: ``{iters:
    (f_hat, error)}``, the same numbers as one call per count.

    Normalised IHT's first iterations are the same whatever ``max_iter``, so the counts
    above 1 share one run of the largest, read at each count on the way (and its
    reconstruction :math:`\mathbf W^T\hat z_i` computed as the run would); 1 is its own
    run (the paper's step 1).
    """
    counts = sorted({check_positive_int(i, "iters") for i in iters})
    if not counts:
        raise ValueError("iters must name at least one iteration count")
    check_finite(f, "f")
    out = {}
    if counts[0] == 1:
        out[1] = reconstruct_activation(
            W, f, k, pool=pool, variant=variant, iters=1, rescale=rescale
        )
    wanted = [c for c in counts if c > 1]
    if not wanted:
        return out
    codes: dict[int, torch.Tensor] = {}
    res = iht(
        W, f, k, pool=pool, variant=variant, max_iter=wanted[-1], step="normalized",
        callback=lambda i, z, stat: codes.__setitem__(i, z) if i in wanted else None,
    )  # fmt: skip
    for c in wanted:
        # a run of c iterations ends at c, or earlier when it has converged
        x_hat = res.x_hat if c >= res.n_iter else W.rmatvec(codes[c])
        f_hat = x_hat.reshape(f.shape)
        if rescale:
            f_hat = rescale_to(f_hat.contiguous(), f)
        out[c] = (f_hat, relative_error(f_hat, f))
    return out
