r"""Stateless convolution kernels: :math:`\mathbf W x` and :math:`\mathbf W^T z` for a
filter bank, 1-d or 2-d, with stride, zero-padding, dilation and groups; circular padding
(:func:`pad_circular`) and its exact adjoint (:func:`pad_circular_adjoint`).

:class:`~cnninv.operators.ConvOperator` holds a layer's state (its filters and sizes) and
checks them once; these functions compute. :func:`conv` is the cross-correlation every CNN
computes and :func:`conv_transpose` its exact adjoint (``output_padding`` makes it land on
the input size when the stride leaves a remainder).

CPU fast path (measured by ``benchmarks/bench_fastpaths.py``, figures in BENCHMARKS.md):
on the CPU, floating tensors are convolved in channels-last memory format, a 1-d one as a
2-d one of height 1, and returned in that layout (same shape and values, other strides):
oneDNN's channels-last convolutions are as fast as or faster than the NCW/NCHW ones at
the benchmarked sizes, and max pooling, the core of the model-sparse projection, is several
times faster on a channels-last code. A filter bank in the default layout is converted at
each call (no copy when it already is channels-last: :class:`~cnninv.operators.ConvOperator`
stores its filters that way, since the copy costs about 10% of a VGG conv5 product).
Elsewhere (CUDA) nothing was measured and the default layout is kept.

>>> import torch
>>> x = torch.randn(2, 3, 10)
>>> w = torch.randn(4, 3, 3)
>>> z = conv(x, w, stride=2)
>>> z.shape, conv_transpose(z, w, stride=2, output_padding=1).shape
(torch.Size([2, 4, 4]), torch.Size([2, 3, 10]))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cnninv._checks import allocating, check_positive_int, int_tuple

__all__ = [
    "channels_last",
    "conv",
    "conv_transpose",
    "pad_circular",
    "pad_circular_adjoint",
]

_CONV = {1: F.conv1d, 2: F.conv2d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d}


def _use_channels_last(t: torch.Tensor) -> bool:
    """Whether to compute channels-last: on the CPU, for floating tensors."""
    return t.device.type == "cpu" and t.is_floating_point()


def _cl(t: torch.Tensor) -> torch.Tensor:
    """``t`` (4-d) in channels-last memory format; no copy when it already is."""
    return t.contiguous(memory_format=torch.channels_last)


def channels_last(t: torch.Tensor) -> torch.Tensor:
    """A batch ``(B, C, L)`` or ``(B, C, H, W)`` in the layout the kernels compute and
    return in on the CPU (channels-last; a 3-d tensor as a 4-d one of height 1); same
    values. Anything else (another device, other dimensions) is returned as it is."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"t must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu" or t.dim() not in (3, 4):
        return t
    if t.dim() == 3:
        return _cl(t.unsqueeze(2)).squeeze(2)
    return _cl(t)


def _conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
) -> torch.Tensor:
    """:func:`conv` without checks (tuples of the right length, compatible shapes)."""
    if _use_channels_last(x):
        if weight.dim() == 3:
            return F.conv2d(
                _cl(x.unsqueeze(2)),
                _cl(weight.unsqueeze(2)),
                None,
                (1, *stride),
                (0, *padding),
                (1, *dilation),
                groups,
            ).squeeze(2)
        return F.conv2d(_cl(x), _cl(weight), None, stride, padding, dilation, groups)
    weight = weight.contiguous()  # the default layout off the CPU (no copy when it is)
    return _CONV[weight.dim() - 2](x, weight, None, stride, padding, dilation, groups)


def _conv_transpose(
    z: torch.Tensor,
    weight: torch.Tensor,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
    output_padding: tuple[int, ...],
) -> torch.Tensor:
    """:func:`conv_transpose` without checks."""
    if _use_channels_last(z):
        if weight.dim() == 3:
            return F.conv_transpose2d(
                _cl(z.unsqueeze(2)),
                _cl(weight.unsqueeze(2)),
                None,
                (1, *stride),
                (0, *padding),
                (0, *output_padding),
                groups,
                (1, *dilation),
            ).squeeze(2)
        return F.conv_transpose2d(
            _cl(z), _cl(weight), None, stride, padding, output_padding, groups, dilation
        )
    weight = weight.contiguous()
    return _CONV_T[weight.dim() - 2](
        z, weight, None, stride, padding, output_padding, groups, dilation
    )


def _check_args(
    t: object, weight: object, name: str, stride, padding, dilation, groups
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], int]:
    """The checks :func:`conv` and :func:`conv_transpose` share; the sizes as tuples."""
    if not isinstance(weight, torch.Tensor) or weight.dim() not in (3, 4):
        what = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"weight must be a tensor (K, M, ell) or (K, M, ell_h, ell_w), got {what}")
    if not weight.is_floating_point() or weight.numel() == 0:
        raise ValueError(
            f"weight must be a non-empty floating-point tensor, got dtype {weight.dtype}, "
            f"shape {tuple(weight.shape)}"
        )
    ndim = weight.dim() - 2
    if not isinstance(t, torch.Tensor) or t.dim() != ndim + 2:
        what = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(
            f"{name} must be a batch (B, C, *spatial) with {ndim} spatial axes, got {what}"
        )
    if t.dtype != weight.dtype or t.device != weight.device:
        raise ValueError(
            f"{name} ({t.dtype} on {t.device}) and weight ({weight.dtype} on "
            f"{weight.device}) must have the same dtype and device"
        )
    stride = int_tuple(stride, ndim, "stride")
    padding = int_tuple(padding, ndim, "padding", minimum=0)
    dilation = int_tuple(dilation, ndim, "dilation")
    groups = check_positive_int(groups, "groups")
    if weight.shape[0] % groups:
        raise ValueError(f"groups={groups} must divide the number of filters {weight.shape[0]}")
    # conv reads M = weight.shape[1] * groups channels, conv_transpose K = weight.shape[0]
    channels = weight.shape[1] * groups if name == "x" else weight.shape[0]
    if t.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got {t.shape[1]}")
    return stride, padding, dilation, groups


def conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> torch.Tensor:
    r""":math:`\mathbf W x`: the cross-correlation of a batch ``x`` ``(B, M, *spatial)`` with
    the filters ``weight`` ``(K, M/groups, *kernel)`` (as ``torch.nn.functional.conv1d`` /
    ``conv2d``, without bias); channels-last on the CPU (see the module docstring)."""
    stride, padding, dilation, groups = _check_args(
        x, weight, "x", stride, padding, dilation, groups
    )
    for d, ell, p, a in zip(x.shape[2:], weight.shape[2:], padding, dilation, strict=True):
        if d + 2 * p < a * (ell - 1) + 1:
            raise ValueError(
                f"x of size {tuple(x.shape[2:])} with padding {padding} is shorter than the "
                f"filters {tuple(weight.shape[2:])} at dilation {dilation}"
            )
    with allocating("x"):
        return _conv(x, weight, stride, padding, dilation, groups)


def conv_transpose(
    z: torch.Tensor,
    weight: torch.Tensor,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    output_padding: int | Sequence[int] = 0,
) -> torch.Tensor:
    r""":math:`\mathbf W^T z`: the transposed convolution of a batch ``z`` ``(B, K,
    *spatial)`` with the same filters, the exact adjoint of :func:`conv` (as
    ``torch.nn.functional.conv_transpose1d`` / ``conv_transpose2d``, without bias).
    ``output_padding`` (``< max(stride, dilation)``) adds the input positions that the
    stride left out of the last window."""
    stride, padding, dilation, groups = _check_args(
        z, weight, "z", stride, padding, dilation, groups
    )
    ndim = weight.dim() - 2
    output_padding = int_tuple(output_padding, ndim, "output_padding", minimum=0)
    for o, t, a in zip(output_padding, stride, dilation, strict=True):
        if o >= max(t, a):
            raise ValueError(
                f"output_padding {output_padding} must be smaller than the stride or the "
                f"dilation, got stride {stride} and dilation {dilation}"
            )
    for n, ell, p, t, a, o in zip(
        z.shape[2:], weight.shape[2:], padding, stride, dilation, output_padding, strict=True
    ):
        if (n - 1) * t - 2 * p + a * (ell - 1) + o + 1 < 1:
            raise ValueError(f"padding {padding} leaves an empty output for z of size {n}")
    with allocating("z"):
        return _conv_transpose(z, weight, stride, padding, dilation, groups, output_padding)


def _pad_circular(x: torch.Tensor, padding: tuple[int, ...]) -> torch.Tensor:
    """:func:`pad_circular` without checks."""
    if not any(padding):
        return x
    pads: list[int] = []
    for p in reversed(padding):
        pads += [p, p]
    return F.pad(x, pads, mode="circular")


def _pad_circular_adjoint(y: torch.Tensor, padding: tuple[int, ...]) -> torch.Tensor:
    """:func:`pad_circular_adjoint` without checks."""
    out = y
    for axis, p in enumerate(padding):
        if p == 0:
            continue
        dim = 2 + axis
        n = out.shape[dim] - 2 * p
        core = out.narrow(dim, p, n).clone()
        # the left border holds x[n - p : n], the right one x[0 : p]: fold them back
        core.narrow(dim, n - p, p).add_(out.narrow(dim, 0, p))
        core.narrow(dim, 0, p).add_(out.narrow(dim, p + n, p))
        out = core
    return out


def _check_pad(t: object, padding: object, name: str) -> tuple[int, ...]:
    if not isinstance(t, torch.Tensor) or t.dim() not in (3, 4) or not t.is_floating_point():
        what = f"shape {tuple(t.shape)}, dtype {t.dtype}" if isinstance(t, torch.Tensor) else t
        raise ValueError(
            f"{name} must be a floating-point batch (B, C, L) or (B, C, H, W), got {what}"
        )
    return int_tuple(padding, t.dim() - 2, "padding", minimum=0)


def pad_circular(x: torch.Tensor, padding: int | Sequence[int]) -> torch.Tensor:
    r"""Circular padding of a batch ``(B, C, *spatial)`` by ``padding`` on both sides of
    every spatial axis (``padding <= size``): the map is treated as periodic, so a
    convolution of the result is a *circular* convolution (what
    ``torch.nn.Conv1d/Conv2d(padding_mode="circular")`` computes).

    >>> x = torch.arange(4.0).view(1, 1, 4)
    >>> pad_circular(x, 1)
    tensor([[[3., 0., 1., 2., 3., 0.]]])
    """
    padding = _check_pad(x, padding, "x")
    for d, p in zip(x.shape[2:], padding, strict=True):
        if p > d:
            raise ValueError(f"circular padding {padding} wraps more than once a map of {d}")
    return _pad_circular(x, padding)


def pad_circular_adjoint(y: torch.Tensor, padding: int | Sequence[int]) -> torch.Tensor:
    r"""The adjoint of :func:`pad_circular`: a padded batch ``(B, C, *(size + 2 padding))``
    folded back onto ``(B, C, *size)``, each border added to the entries it copied, so that
    :math:`\langle \mathrm{pad}(x), y\rangle = \langle x, \mathrm{pad}^T(y)\rangle`.

    >>> y = torch.ones(1, 1, 6)
    >>> pad_circular_adjoint(y, 1)       # the two ends were copies of x[3] and x[0]
    tensor([[[2., 1., 1., 2.]]])
    """
    padding = _check_pad(y, padding, "y")
    for s, p in zip(y.shape[2:], padding, strict=True):
        if s - 2 * p < max(p, 1):
            raise ValueError(
                f"y of size {tuple(y.shape[2:])} is not a map circularly padded by {padding}"
            )
    return _pad_circular_adjoint(y, padding)
