r"""Max pooling as the model-sparse projection :math:`\mathbb M(h, k)`.

Gilbert et al. (2017), §2.3: the code :math:`z\in\mathbb R^{Kn}` is split into blocks,
and a *model-k-sparse* code has at most one non-zero per block and ``k`` non-zeros in
all. :math:`\mathbb M(h,k)` returns the model-k-sparse vector closest to ``h``: keep the
largest-magnitude entry of each block (the *switch*), then the ``k`` blocks whose kept
entries are largest; everything else is zero, and the result has the shape of ``h``
(pooling followed by unpooling with the switches, eq. (2)).

Blocks (``pool`` argument):

* ``pool=None`` — the paper's 1-d model: one block per filter, holding all of its
  :math:`n` shifts (in 2-d, the whole map of a channel);
* ``pool=p`` — the practice of §4: pooling regions of ``p`` (1-d) or ``p x p`` (2-d)
  with stride ``p``; partial regions at the border are blocks too (``ceil_mode``), so
  every entry of ``h`` belongs to exactly one block.

``variant="abs"`` is the analysis' max-:math:`|\cdot|`; ``variant="relu"`` is what a
real CNN does (ReLU then max pooling: the largest positive value, zero if none).

* a code without a spatial axis, ``h`` of shape ``(B, N)`` (the output of a dense
  :class:`~cnninv.operators.MatrixOperator`, say): every entry is its own block, and
  :math:`\mathbb M(h, k)` is plain k-sparse hard thresholding (``pool`` must be None).

Codes are batched: ``h`` has shape ``(B, K, n)`` in 1-d, ``(B, K, H, W)`` in 2-d, or
``(B, N)``.

>>> import torch
>>> h = torch.tensor([[[0.1, -3.0, 2.0, 0.5], [1.0, 0.0, 0.2, -0.4]]])
>>> model_sparse(h, k=1).code          # one block per filter, keep the largest
tensor([[[ 0., -3.,  0.,  0.],
         [ 0.,  0.,  0.,  0.]]])
>>> model_sparse(h, k=2, pool=2, variant="relu").code
tensor([[[0., 0., 2., 0.],
         [1., 0., 0., 0.]]])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from cnninv._checks import check_bool, check_finite, is_int, resolve_device

__all__ = [
    "VARIANTS",
    "ModelSparse",
    "Pool",
    "SparseProjection",
    "block_shape",
    "check_k",
    "check_variant",
    "crelu",
    "max_pool_switches",
    "model_sparse",
    "model_sparse_entries",
    "naive_switches",
    "num_blocks",
    "pool_shape",
    "support",
    "unpool",
    "unpool_naive",
]

VARIANTS = ("abs", "relu")
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d}

Pool = int | Sequence[int] | None


class ModelSparse(NamedTuple):
    """Result of :func:`model_sparse`.

    code : the model-k-sparse code, shape of ``h``.
    values : the pooled values, one per block (zero where the block was not kept).
    switches : flat index, within each channel's map, of each block's kept entry
        (the convention of ``torch.nn.functional.max_pool2d(..., return_indices=True)``;
        0 for codes without a spatial axis).
    """

    code: torch.Tensor
    values: torch.Tensor
    switches: torch.Tensor


def _spatial(h: object, name: str = "h") -> tuple[int, ...]:
    if not isinstance(h, torch.Tensor) or h.dim() not in (2, 3, 4):
        shape = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
        raise ValueError(
            f"{name} must be a batched code of shape (B, K, n), (B, K, H, W) or (B, N), got {shape}"
        )
    if not h.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {h.dtype}")
    return tuple(h.shape[2:])


def _sizes(value: object, name: str, lengths: tuple[int, ...]) -> tuple[int, ...]:
    """A sequence of positive integers whose length is one of ``lengths``, as a tuple."""
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) not in lengths
        or not all(is_int(v) and v >= 1 for v in value)
    ):
        raise ValueError(
            f"{name} must be a tuple of {' or '.join(map(str, lengths))} positive integers, "
            f"got {value!r}"
        )
    return tuple(int(v) for v in value)


def _kernel(pool: Pool, spatial: tuple[int, ...]) -> tuple[int, ...]:
    if pool is None:
        return spatial
    if not spatial:
        raise ValueError(
            f"pool must be None for a code without a spatial axis (every entry is a block), "
            f"got {pool!r}"
        )
    if is_int(pool):
        kernel = (int(pool),) * len(spatial)
    elif isinstance(pool, Sequence) and not isinstance(pool, str):
        kernel = tuple(pool)
    else:
        kernel = ()
    if len(kernel) != len(spatial) or any(not is_int(p) or p < 1 for p in kernel):
        raise ValueError(f"pool must be None or a positive int per spatial axis, got {pool!r}")
    # a region larger than the map is the whole map (one block either way)
    return tuple(min(int(p), s) for p, s in zip(kernel, spatial, strict=True))


def pool_shape(spatial: Sequence[int], pool: Pool) -> tuple[int, ...]:
    """The size of a pooling region along each spatial axis: the whole map for
    ``pool=None``, else ``pool`` per axis (at most the map's size)."""
    return _kernel(pool, _sizes(spatial, "spatial", (0, 1, 2)))


def block_shape(spatial: Sequence[int], pool: Pool) -> tuple[int, ...]:
    """Number of blocks along each spatial axis (ceil of size / pool); ``()`` for a code
    without a spatial axis."""
    spatial = _sizes(spatial, "spatial", (0, 1, 2))
    kernel = _kernel(pool, spatial)
    return tuple(math.ceil(s / p) for s, p in zip(spatial, kernel, strict=True))


def num_blocks(shape: Sequence[int], pool: Pool) -> int:
    """Blocks of a code of shape ``(K, *spatial)``: ``K`` times the regions per map (``N``
    for a code of shape ``(N,)``, one block per entry)."""
    shape = _sizes(shape, "shape", (1, 2, 3))
    return shape[0] * math.prod(block_shape(shape[1:], pool))


def check_k(k: object, shape: Sequence[int], pool: Pool) -> int | None:
    """``k`` checked against a code of shape ``(K, *spatial)``: None (every block), or an
    integer between 1 and :func:`num_blocks`; ``ValueError`` otherwise. The one place the
    range of ``k`` is checked (projection, solvers, sampling)."""
    blocks = num_blocks(shape, pool)
    if k is None:
        return None
    if not is_int(k) or not 1 <= k <= blocks:
        raise ValueError(f"k must be between 1 and the number of blocks ({blocks}), got k={k!r}")
    return int(k)


def check_variant(variant: object) -> str:
    """``variant`` checked: one of :data:`VARIANTS` (``"abs"``, ``"relu"``)."""
    if not isinstance(variant, str) or variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return variant


def max_pool_switches(
    h: torch.Tensor, pool: Pool = None, variant: str = "abs"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Max pooling that also returns the switches: ``(values, switches)``.

    ``values`` are the signed entries of ``h`` at the switches for ``variant="abs"``, and
    the ReLU of the block maximum for ``variant="relu"``.
    """
    check_variant(variant)
    spatial = _spatial(h)
    check_finite(h, "h")
    return _max_pool_switches(h, _kernel(pool, spatial), variant)


def _max_pool_switches(
    h: torch.Tensor, kernel: tuple[int, ...], variant: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`max_pool_switches` without the checks, for the pooling regions ``kernel``."""
    spatial = tuple(h.shape[2:])
    if not spatial:  # every entry is its own block
        values = h.clone() if variant == "abs" else h.clamp_min(0)
        return values, torch.zeros(h.shape, dtype=torch.long, device=h.device)
    score = h.abs() if variant == "abs" else h
    if score.device.type == "cpu":
        # fast path: CPU max pooling is several times faster on a channels-last tensor
        # (benchmarks/bench_fastpaths.py); a 1-d code pools as a 2-d one of height 1, whose
        # flat switch index within the map is the same. Values, switches and tie-breaking
        # (first maximum in the region) are those of the NCHW/NCW kernel.
        score4 = score.unsqueeze(2) if len(spatial) == 1 else score
        kernel4 = (1, *kernel) if len(spatial) == 1 else kernel
        pooled, switches = F.max_pool2d(
            score4.contiguous(memory_format=torch.channels_last),
            kernel4,
            stride=kernel4,
            return_indices=True,
            ceil_mode=True,
        )
        if len(spatial) == 1:
            pooled, switches = pooled.squeeze(2), switches.squeeze(2)
    else:
        pooled, switches = _MAX_POOL[len(spatial)](
            score, kernel, stride=kernel, return_indices=True, ceil_mode=True
        )
    if variant == "abs":
        values = h.flatten(2).gather(2, switches.flatten(2)).view_as(switches)
    else:
        values = pooled.clamp_min(0)
    return values, switches


def unpool(
    values: torch.Tensor, switches: torch.Tensor, output_size: Sequence[int]
) -> torch.Tensor:
    """Place each pooled value at its switch in a zero map of ``output_size`` (unpooling).

    ``values`` ``(B, K, *blocks)`` floating, ``switches`` of the same shape, int64 flat
    indices within a map of ``output_size`` (``()`` for codes without a spatial axis).
    """
    output_size = _sizes(output_size, "output_size", (0, 1, 2))
    if not isinstance(values, torch.Tensor) or not values.is_floating_point():
        raise ValueError("values must be a floating-point tensor")
    if values.dim() != 2 + len(output_size):
        raise ValueError(
            f"values must have {2 + len(output_size)} dimensions for output_size "
            f"{output_size}, got shape {tuple(values.shape)}"
        )
    if not isinstance(switches, torch.Tensor) or switches.dtype != torch.long:
        kind = switches.dtype if isinstance(switches, torch.Tensor) else type(switches).__name__
        raise ValueError(f"switches must be an int64 tensor, got {kind}")
    if values.shape != switches.shape:
        raise ValueError(
            f"values {tuple(values.shape)} and switches {tuple(switches.shape)} differ in shape"
        )
    if values.device != switches.device:
        raise ValueError(f"values ({values.device}) and switches ({switches.device}) differ")
    check_finite(values, "values")
    plane = math.prod(output_size)
    if switches.numel() and (int(switches.min()) < 0 or int(switches.max()) >= plane):
        raise ValueError(f"switches must index a map of size {output_size}")
    return _unpool(values, switches, output_size)


def _unpool(
    values: torch.Tensor,
    switches: torch.Tensor,
    output_size: tuple[int, ...],
    like: torch.Tensor | None = None,
) -> torch.Tensor:
    """Unpooling; with ``like`` (a tensor of the output's shape) the output takes its memory
    layout, so a channels-last code stays channels-last through the projection."""
    if not output_size:
        return values.clone()
    if like is not None and like.shape == (*values.shape[:2], *output_size):
        out = torch.zeros_like(like, dtype=values.dtype)
        flat = out.flatten(2)
        if flat is out or flat._base is out:  # a view (else the layout is exotic: fall back)
            flat.scatter_(2, switches.flatten(2), values.flatten(2))
            return out
    out = values.new_zeros((*values.shape[:2], math.prod(output_size)))
    out.scatter_(2, switches.flatten(2), values.flatten(2))
    return out.view(*values.shape[:2], *output_size)


def naive_switches(
    pooled_shape: Sequence[int], pool: Pool, output_size: Sequence[int], device=None
) -> torch.Tensor:
    """The paper's naive switches: the top-left (first) entry of every pooling region.

    ``pooled_shape`` is ``(B, K, *blocks)``; returns int64 switches of that shape.
    """
    output_size = _sizes(output_size, "output_size", (0, 1, 2))
    pooled_shape = _sizes(pooled_shape, "pooled_shape", (2 + len(output_size),))
    device = None if device is None else resolve_device(device)
    kernel = _kernel(pool, output_size)
    blocks = pooled_shape[2:]
    if blocks != block_shape(output_size, pool):
        raise ValueError(f"pooled shape {pooled_shape} does not match {output_size} / {pool}")
    coords = [torch.arange(b, device=device) * p for b, p in zip(blocks, kernel, strict=True)]
    grids = torch.meshgrid(*coords, indexing="ij") if coords else ()
    flat = torch.zeros(blocks, dtype=torch.long, device=device)
    for axis, g in enumerate(grids):
        flat = flat + g * math.prod(output_size[axis + 1 :])
    return flat.expand(pooled_shape).contiguous()


def unpool_naive(values: torch.Tensor, pool: Pool, output_size: Sequence[int]) -> torch.Tensor:
    """Unpooling without switches: each value goes to the top-left of its region."""
    if not isinstance(values, torch.Tensor):
        raise ValueError(f"values must be a torch.Tensor, got {type(values).__name__}")
    sw = naive_switches(values.shape, pool, output_size, device=values.device)
    return unpool(values, sw, output_size)


def model_sparse(
    h: torch.Tensor,
    k: int | None,
    pool: Pool = None,
    *,
    variant: str = "abs",
    check: bool = True,
) -> ModelSparse:
    r""":math:`\mathbb M(h, k)`: the closest model-k-sparse code to ``h``.

    Parameters
    ----------
    h : Tensor
        Batched code, ``(B, K, n)``, ``(B, K, H, W)`` or ``(B, N)`` (every entry a block).
    k : int or None
        Number of blocks kept, ``1 <= k <= num_blocks``; ``None`` keeps every block
        (plain max pooling followed by unpooling).
    pool : None, int or tuple
        Block structure (see the module docstring).
    variant : ``"abs"`` or ``"relu"``
        Largest :math:`|h|` per block (the analysis), or largest positive value (ReLU + max
        pooling, a real CNN). With ``"abs"`` the result minimises :math:`\|h-z\|_2` over
        model-k-sparse ``z``; with ``"relu"`` over non-negative model-k-sparse ``z``.
    check : bool
        ``False`` skips the scan of ``h`` for NaN or inf and the range check of ``k``
        (the type and shape of ``h`` are still checked, from metadata), for solvers that
        checked their inputs once and project at every iteration: NaN in ``h`` then
        propagates, and a ``k`` out of range is an error from torch.

    Raises
    ------
    ValueError
        Wrong shape, ``k`` out of range, unknown variant, NaN or inf in ``h``.
    """
    check_bool(check, "check")
    check_variant(variant)
    spatial = _spatial(h)
    if check:
        check_finite(h, "h")
        check_k(k, tuple(h.shape[1:]), pool)
    kernel = _kernel(pool, spatial)
    if spatial and all(p == 1 for p in kernel):
        return _entry_sparse(h, k, variant)
    values, switches = _max_pool_switches(h, kernel, variant)
    if k is not None and k < math.prod(values.shape[1:]):
        flat = values.flatten(1)
        values = (flat * _top_k_mask(flat.abs(), k)).view_as(values)
    return ModelSparse(_unpool(values, switches, tuple(h.shape[2:]), like=h), values, switches)


class SparseProjection(NamedTuple):
    r""":math:`\mathbb M(h, k)` by its entries (:func:`model_sparse_entries`).

    index : ``(B, k)`` flat positions of the kept entries in a sample's code
        (channel-major, as ``h[b].flatten()`` orders them).
    values : ``(B, k)`` their values (zero where a kept block's value is zero).
    switches : as :class:`ModelSparse`'s, for every block (None when not asked for).
    """

    index: torch.Tensor
    values: torch.Tensor
    switches: torch.Tensor


def model_sparse_entries(
    h: torch.Tensor, k: int, pool: Pool = None, *, variant: str = "abs", switches: bool = True
) -> SparseProjection:
    r""":math:`\mathbb M(h, k)` as its ``k`` entries instead of a dense code: the same blocks,
    switches and values as :func:`model_sparse` (``model_sparse(h, k).code`` is these values
    scattered at these indices), without writing the code. For solvers that work on sparse
    codes (:func:`cnninv.recovery.iht` in the code domain); no checks of the values, ``k``
    must be an integer between 1 and the number of blocks. ``switches=False`` may leave
    the switches of every block out (None) where they cost a pass of their own: when a
    block is a whole map, the blocks are ranked by a max and a min reduction and only the
    ``k`` kept ones are searched for their switch.
    """
    check_variant(variant)
    spatial = _spatial(h)
    kernel = _kernel(pool, spatial)
    B, K = h.shape[0], h.shape[1]
    plane = math.prod(spatial) if spatial else 1
    if spatial and all(p == 1 for p in kernel):
        values = h if variant == "abs" else h.clamp_min(0)
        sw = torch.arange(plane, device=h.device).view(1, 1, *spatial).expand(h.shape)
        flat = values.reshape(B, -1)
        entry = _top_k_index(flat.abs() if variant == "abs" else flat, k)
        return SparseProjection(entry, flat.gather(1, entry), sw)
    if spatial and kernel == spatial and not switches:
        return _whole_map_entries(h, k, variant)
    values, sw = _max_pool_switches(h, kernel, variant)
    flat = values.reshape(B, -1)
    block = _top_k_index(flat.abs(), k)  # (B, k) blocks, channel-major
    per_map = flat.shape[1] // K
    index = (block // per_map) * plane + sw.reshape(B, -1).gather(1, block)
    return SparseProjection(index, flat.gather(1, block), sw)


def _whole_map_entries(h: torch.Tensor, k: int, variant: str) -> SparseProjection:
    """:func:`model_sparse_entries` when every block is a whole map: the block values from
    one max (and one min) reduction, the switches of the ``k`` kept blocks only (the first
    maximum, as max pooling's). Same blocks, switches and values."""
    B, K = h.shape[:2]
    dims = tuple(range(2, h.dim()))
    plane = math.prod(h.shape[2:])
    top = h.amax(dims)
    score = torch.maximum(top, h.amin(dims).neg()) if variant == "abs" else top.clamp_min(0)
    block = _top_k_index(score, k)  # (B, k) channels
    if h.permute(0, *dims, 1).is_contiguous():  # channels-last memory
        maps = h.permute(0, *dims, 1).reshape(B, plane, K)
        cols = maps.gather(2, block.unsqueeze(1).expand(B, plane, k)).transpose(1, 2)
    else:
        maps = h.reshape(B, K, plane)
        cols = maps.gather(1, block.unsqueeze(2).expand(B, k, plane))
    cols = cols.contiguous()  # (B, k, plane)
    # the first maximum of each kept map, as max pooling finds it (and several times
    # faster than argmax over a short axis on the CPU)
    _, sw = F.max_pool1d(cols.abs() if variant == "abs" else cols, plane, return_indices=True)
    values = cols.gather(2, sw).squeeze(2) if variant == "abs" else score.gather(1, block)
    return SparseProjection(block * plane + sw.squeeze(2), values, None)


def _top_k_index(score: torch.Tensor, k: int) -> torch.Tensor:
    """The indices ``(B, k)`` of the set :func:`_top_k_mask` keeps (the same set, ties
    included: the same selection)."""
    n = score.shape[1]
    if k > n // 2:
        mask = _top_k_mask(score, k)
        return mask.nonzero()[:, 1].view(score.shape[0], k)
    return score.topk(k, dim=1, sorted=False).indices


def _top_k_mask(score: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` largest entries of each row of ``score`` ``(B, n)``.

    ``sorted=False``: only the set matters, the same set without the final sort, and it is
    faster (benchmarks/bench_fastpaths.py). For ``k > n/2`` the ``n - k`` smallest are
    dropped instead: the same set up to ties, at a fraction of the cost."""
    n = score.shape[1]
    if k > n // 2:
        drop = score.topk(n - k, dim=1, largest=False, sorted=False).indices
        return torch.ones_like(score, dtype=torch.bool).scatter_(1, drop, False)
    keep = score.topk(k, dim=1, sorted=False).indices
    return torch.zeros_like(score, dtype=torch.bool).scatter_(1, keep, True)


def _entry_sparse(h: torch.Tensor, k: int | None, variant: str) -> ModelSparse:
    """𝕄 when every entry is its own block (plain k-sparsity): no pooling, no switches to
    compute; the code keeps ``h``'s memory layout."""
    values = h if variant == "abs" else h.clamp_min(0)
    plane = math.prod(h.shape[2:])
    switches = torch.arange(plane, device=h.device).view(1, 1, *h.shape[2:]).expand(h.shape)
    if k is not None and k < math.prod(h.shape[1:]):
        score = values.abs() if variant == "abs" else values
        mask = _top_k_mask(score.reshape(h.shape[0], -1), k).view(h.shape)
        values = values * mask
    elif variant == "abs":
        values = values.clone()
    return ModelSparse(values, values, switches)


def support(z: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the non-zeros of ``z``."""
    if not isinstance(z, torch.Tensor):
        raise ValueError(f"z must be a torch.Tensor, got {type(z).__name__}")
    return z != 0


def crelu(h: torch.Tensor, dim: int = 1) -> torch.Tensor:
    r"""Concatenated ReLU (Shang et al., 2016): :math:`[\mathrm{ReLU}(h), \mathrm{ReLU}(-h)]`
    along ``dim`` — the positive–negative filter pairs of §3.1."""
    if not isinstance(h, torch.Tensor) or h.dim() == 0 or not h.is_floating_point():
        what = f"dtype {h.dtype}, shape {tuple(h.shape)}" if isinstance(h, torch.Tensor) else h
        raise ValueError(f"h must be a floating-point tensor with at least one axis, got {what}")
    if not is_int(dim) or not -h.dim() <= dim < h.dim():
        raise ValueError(f"dim must be an axis of h (which has {h.dim()}), got {dim!r}")
    check_finite(h, "h")
    return torch.cat([F.relu(h), F.relu(-h)], dim=dim)
