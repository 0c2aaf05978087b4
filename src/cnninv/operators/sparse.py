r"""A conv layer's products with *sparse* codes: :math:`\mathbf W^T z` as scaled filter
placements and :math:`\mathbf W\mathbf W^T z` through the layer's Gram operator.

A model-k-sparse code :math:`z` (Gilbert et al. 2017, §2.3) has ``k`` non-zeros, so
:math:`\mathbf W^T z` touches only ``k`` filters: it is a sum of ``k`` copies of filters,
each scaled by its coefficient and placed at its shift, costing :math:`O(k\,M\ell)` per
sample instead of the transposed convolution's :math:`O(K M\ell\, n)`. And the gradient
of IHT, :math:`\mathbf W(x - \mathbf W^T z) = \mathbf Wx - (\mathbf W\mathbf W^T)z`, needs
:math:`\mathbf Wx` once and then only the Gram operator :math:`\mathbf W\mathbf W^T` on a
sparse code: for a layer without padding, :math:`\mathbf W\mathbf W^T` is a convolution
whose taps are the filters' cross-correlations,

.. math::

    (\mathbf W\mathbf W^T)_{(j,q),(i,p)} = C_{j,i}(q - p) =
    \sum_{m}\sum_{u} w_{j,m}(u - q t)\, w_{i,m}(u - p t),

non-zero for :math:`|q-p|\,t < a(\ell-1)+1` (:math:`2\ell-1` taps per axis at stride 1),
so :math:`(\mathbf W\mathbf W^T)z` costs :math:`O(k\,K(2\ell-1))` per sample.

Both are one ``embedding_bag`` each (a fused gather, scale and sum): the rows of the
result are the bags, and each bag holds one slot per non-zero of its sample, pointing at
the filter tap (or Gram tap) that the non-zero puts there, or at a zero row when it puts
nothing. A code is given by its entries, :class:`SparseCode`: ``index`` (flat positions in
a sample's code, channel-major, as :meth:`LinearOperator.dense` flattens codes) and
``values``; entries may repeat (their values add up) and may be zero.

The results are exact up to float rounding (another summation order than the
convolutions'); ``tests/test_sparse_code.py`` checks them against the dense matrix.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from cnninv.operators.functional import _conv, _conv_transpose

__all__ = [
    "Affine",
    "SparseCode",
    "SparseKernels",
    "add_entries",
    "dense_code",
    "gather_entries",
    "sparse_code",
]


class SparseCode(NamedTuple):
    """A batch of codes by their entries: ``index`` ``(B, s)`` int64, flat positions in a
    sample's code of shape ``(K, *output_size)`` (channel-major), and ``values`` ``(B, s)``.
    Entries may repeat (their values add up) and may be zero."""

    index: torch.Tensor
    values: torch.Tensor


def sparse_code(z: torch.Tensor, s: int | None = None) -> SparseCode:
    """The entries of a batch of dense codes ``(B, K, *spatial)``: the ``s`` entries of
    largest magnitude of each sample (default: as many as the sample with the most
    non-zeros has, so that nothing is lost), index order unspecified."""
    B = z.shape[0]
    flat = z.reshape(B, -1)
    if s is None:
        s = int((flat != 0).sum(1).max()) if flat.numel() else 0
    s = max(0, min(int(s), flat.shape[1]))
    idx = flat.abs().topk(s, dim=1, sorted=False).indices
    return SparseCode(idx, flat.gather(1, idx))


def _memory_view(t: torch.Tensor) -> tuple[torch.Tensor, bool] | None:
    """``t`` ``(B, C, *spatial)`` as a ``(B, N)`` view in memory order, and whether that
    order is channels-last (else channel-major); None for another layout."""
    B = t.shape[0]
    if t.is_contiguous():
        return t.view(B, -1), False
    if t.dim() >= 3:
        view = t.permute(0, *range(2, t.dim()), 1)
        if view.is_contiguous():
            return view.view(B, -1), True
    return None


def _memory_index(index: torch.Tensor, shape: tuple[int, ...], last: bool) -> torch.Tensor:
    """Channel-major flat indices as indices in memory order (channels-last when ``last``)."""
    if not last:
        return index
    plane = math.prod(shape[1:])
    return (index % plane) * shape[0] + index // plane


def add_entries(t: torch.Tensor, code: SparseCode) -> torch.Tensor:
    """``t += z`` in place for a dense batch ``t`` ``(B, *shape)`` (contiguous or
    channels-last) and a sparse code ``z``; returns ``t``."""
    mv = _memory_view(t)
    if mv is None:
        raise ValueError("add_entries needs a contiguous or channels-last tensor")
    view, last = mv
    view.scatter_add_(1, _memory_index(code.index, tuple(t.shape[1:]), last), code.values)
    return t


def gather_entries(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The values of a dense batch ``t`` ``(B, *shape)`` at channel-major flat indices
    ``index`` ``(B, s)``, whatever ``t``'s layout."""
    mv = _memory_view(t)
    if mv is None:
        return t.reshape(t.shape[0], -1).gather(1, index)
    view, last = mv
    return view.gather(1, _memory_index(index, tuple(t.shape[1:]), last))


def dense_code(code: SparseCode, shape: tuple[int, ...], like: torch.Tensor | None = None):
    """The dense codes ``(B, *shape)`` of a :class:`SparseCode` (repeated entries added);
    in the memory layout of ``like`` when given (same shape)."""
    B = code.index.shape[0]
    if like is not None and _memory_view(like) is not None:
        out = torch.zeros_like(like, dtype=code.values.dtype)
    else:
        out = code.values.new_zeros((B, *shape))
    return add_entries(out, code)


#: a row offset that no sum of the others can bring back to >= 0 (clamped to the zero row)
_NEG = -(2**40)


def _axis_lut(offsets: range, span: int, dilation: int) -> list[int]:
    """For each offset ``o`` of an input position from a filter's origin: its tap index
    ``o // dilation`` when the filter has a tap there, else -1."""
    return [o // dilation if 0 <= o < span and o % dilation == 0 else -1 for o in offsets]


class Affine(NamedTuple):
    """A product's tables with a fixed batch appended (:meth:`SparseKernels.affine`): the
    ``table`` with the batch's rows after the product's, the per-axis lookup tables
    ``luts`` extended so that one more slot per bag finds them, that slot's lookup
    ``starts`` per axis (``(B,)`` each), and the ``batch`` size."""

    kind: str
    table: torch.Tensor
    luts: list
    starts: list
    batch: int


class SparseKernels:
    r"""The tables for the sparse products of one conv layer (built once per filter bank;
    :class:`~cnninv.operators.ConvOperator` caches them until its weight changes).

    ``rmatvec(code)`` is :math:`\mathbf W^T z` for any stride, padding and dilation;
    ``gram(code)`` is :math:`\mathbf W\mathbf W^T z`, exact for a layer without padding
    (``gram_exact``); with padding the filters that cross the border lose taps and the Gram
    operator is no longer a convolution, so ``gram`` refuses it.
    """

    def __init__(self, op) -> None:
        weight = op.weight
        K, Mg = weight.shape[:2]
        kernel = tuple(weight.shape[2:])
        self.ndim = len(kernel)
        self.K, self.M, self.groups = K, op.M, op.groups
        self.in_size, self.out_size = tuple(op.input_size), tuple(op.output_size)
        self.stride, self.padding = tuple(op.stride), tuple(op.padding)
        self.dilation = tuple(op.dilation)
        self.gram_exact = all(p == 0 for p in self.padding)
        dtype, device = weight.dtype, weight.device
        taps = math.prod(kernel)
        self.taps = taps
        # placement table: row 1 + i*taps + t holds filter i's tap t over all M channels
        # (zeros outside its group); row 0 is zero, where a slot puts nothing
        full = weight.new_zeros((K, self.M, *kernel))
        per = K // self.groups
        for g in range(self.groups):
            full[g * per : (g + 1) * per, g * Mg : (g + 1) * Mg] = weight[g * per : (g + 1) * per]
        rows = full.permute(0, *range(2, 2 + self.ndim), 1).reshape(K * taps, self.M)
        self.place_table = torch.cat([rows.new_zeros((1, self.M)), rows]).contiguous()
        spans = [a * (ell - 1) + 1 for a, ell in zip(self.dilation, kernel, strict=True)]
        self.kernel = kernel
        # the row of the placement table that input position u receives from an entry of
        # channel i at output position p, per axis, indexed by (i, u + pad - p*stride -
        # o_min): the first axis carries the channel and its tap's offset (NEG: no tap),
        # the second only its tap; their sum (clamped at 0, the zero row) is the row
        inner = [math.prod(kernel[a + 1 :]) for a in range(self.ndim)]
        self.place_luts, self.place_omin = [], []
        for axis, (D, n, t, pad, span, a) in enumerate(
            zip(self.in_size, self.out_size, self.stride, self.padding, spans, self.dilation,
                strict=True)
        ):  # fmt: skip
            o_min, o_max = -(n - 1) * t, D - 1 + pad
            lut = torch.tensor(
                _axis_lut(range(o_min, o_max + 1), span, a), dtype=torch.long, device=device
            )
            self.place_luts.append(self._bake(lut, inner[axis], taps, axis == 0))
            self.place_omin.append(o_min)
        # Gram taps: |q - p| * t < span per axis; rows indexed by (i, q - p + n - 1)
        self.reach = tuple((span - 1) // t for span, t in zip(spans, self.stride, strict=True))
        width = [2 * r + 1 for r in self.reach]
        G = math.prod(width)
        ginner = [math.prod(width[a + 1 :]) for a in range(self.ndim)]
        self.gram_luts = []
        for axis, (n, R) in enumerate(zip(self.out_size, self.reach, strict=True)):
            d = torch.arange(-(n - 1), n, device=device)
            lut = torch.where(d.abs() <= R, d + R, -1)
            self.gram_luts.append(self._bake(lut, ginner[axis], G, axis == 0))
        self.gram_table = self._gram_table(op) if self.gram_exact else None
        self.dtype, self.device = dtype, device

    def _bake(self, lut: torch.Tensor, inner: int, per_channel: int, first: bool):
        """An axis's tap indices (-1: none) as row offsets: ``(K, L)`` with the channel's
        first row for the first axis, ``(1, L)`` for the others; where there is no tap,
        ``_NEG`` (0, the zero row itself, for a 1-d layer)."""
        none = 0 if self.ndim == 1 else _NEG
        off = torch.where(lut >= 0, lut * inner, _NEG)
        if not first:
            return off.unsqueeze(0).contiguous()
        chan = torch.arange(self.K, device=lut.device).view(-1, 1) * per_channel + 1
        return torch.where(lut.view(1, -1) >= 0, chan + off.view(1, -1), none).contiguous()

    # ------------------------------------------------------------------ tables
    def _gram_table(self, op) -> torch.Tensor:
        """Row ``1 + i*G + flat(delta + R)`` holds :math:`C_{\\cdot,i}(\\delta)` over the
        ``K`` output channels; computed exactly (float64) from a small 'valid' layer."""
        n_c = tuple(2 * r + 1 for r in self.reach)
        w = op.weight.detach().to(torch.float64)
        K = self.K
        e = torch.zeros((K, K, *n_c), dtype=torch.float64, device=w.device)
        centre = (slice(None), slice(None), *self.reach)
        e[centre] = torch.eye(K, dtype=torch.float64, device=w.device)
        # W W^T of an impulse at the centre of a 'valid' layer whose code is 2R + 1 long
        zero = (0,) * self.ndim
        x = _conv_transpose(e, w, self.stride, zero, self.dilation, self.groups, zero)
        cols = _conv(x, w, self.stride, zero, self.dilation, self.groups).contiguous()
        G = math.prod(n_c)
        rows = cols.permute(0, *range(2, 2 + self.ndim), 1).reshape(K * G, K)
        table = torch.cat([rows.new_zeros((1, K)), rows]).to(op.weight.dtype).contiguous()
        return table

    # ------------------------------------------------------------------ products
    def _coords(self, code: SparseCode, sizes: tuple[int, ...]):
        """Channel and per-axis positions of the entries, for a code of spatial ``sizes``."""
        plane = math.prod(sizes)
        channel = code.index // plane
        pos = code.index % plane
        coords = []
        for axis in range(self.ndim):
            inner = math.prod(sizes[axis + 1 :])
            coords.append((pos // inner) % sizes[axis])
        return channel, coords

    def _bag(self, rows, values, table, weight=None):
        """``embedding_bag`` over ``rows`` ``(B, P, s)`` (a bag per result row) weighted by
        each sample's ``values`` ``(B, s)`` (and ``weight``, per sample, for the base slot,
        the last, when there is one): ``(B, P, width)``."""
        B, P, s = rows.shape
        if weight is not None:
            values = torch.cat([values, weight.view(B, 1).to(values.dtype)], 1)
        if s == 0:
            return table.new_zeros((B, P, table.shape[1]))
        w = values.unsqueeze(1).expand(B, P, s).reshape(B * P, s)
        out = F.embedding_bag(rows.view(B * P, s), table, per_sample_weights=w, mode="sum")
        return out.view(B, P, table.shape[1])

    def _product(self, kind: str):
        """The table, lookup tables (flat), lookup origins, coordinate scale and result
        sizes of :meth:`rmatvec` (``"place"``) or :meth:`gram` (``"gram"``)."""
        if kind == "place":
            origins = [o - pad for o, pad in zip(self.place_omin, self.padding, strict=True)]
            return self.place_table, self.place_luts, origins, self.stride, self.in_size
        if self.gram_table is None:
            raise ValueError(
                f"the Gram operator of a padded layer (padding={self.padding}) is not a "
                "convolution; use W.matvec(W.sparse_rmatvec(code))"
            )
        origins = [-(n - 1) for n in self.out_size]
        return self.gram_table, self.gram_luts, origins, (1,) * self.ndim, self.out_size

    def affine(self, kind: str, base: torch.Tensor) -> Affine:
        """The tables of a product (``"place"``: :meth:`rmatvec`, ``"gram"``: :meth:`gram`)
        extended by the rows of ``base``, a ``(B, C, *sizes)`` batch of the product's result
        shape, so that ``weight * base + product(code)`` is one bag: each bag gets one more
        slot, pointing at its own row of ``base``."""
        table, luts, _, _, sizes = self._product(kind)
        B, C = base.shape[:2]
        rows = base.permute(0, *range(2, base.dim()), 1).reshape(-1, C).to(table.dtype)
        P = math.prod(sizes)
        device = table.device
        # sample b's base slot at result position u is the row table.shape[0] + b P + flat(u):
        # each axis's lookup table gets a segment that gives its part, the first axis's
        # (one run of positions per sample) carrying the sample's b P
        ext, starts = [], []
        for axis, lut in enumerate(luts):
            inner = math.prod(sizes[axis + 1 :])
            pos = torch.arange(sizes[axis], device=device) * inner
            if axis == 0:
                per_b = table.shape[0] + torch.arange(B, device=device).view(-1, 1) * P
                seg = (per_b + pos.view(1, -1)).view(-1)
                start = lut.numel() + torch.arange(B, device=device) * sizes[0]
            else:
                seg = pos
                start = torch.full((B,), lut.numel(), dtype=torch.long, device=device)
            ext.append(torch.cat([lut.view(-1), seg]))
            starts.append(start)
        return Affine(kind, torch.cat([table, rows]), ext, starts, B)

    def _to_layout(self, rows: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
        """``(B, prod(sizes), C)`` rows as a ``(B, C, *sizes)`` batch, channels-last."""
        B, _, C = rows.shape
        return rows.view(B, *sizes, C).permute(0, self.ndim + 1, *range(1, self.ndim + 1))

    def _apply(self, kind: str, code: SparseCode, base: Affine | None, weight) -> torch.Tensor:
        table, luts, origins, scale, sizes = self._product(kind)
        width0 = luts[0].shape[-1]  # the first axis's table has one row per channel
        starts = None
        if base is not None:
            if base.kind != kind or base.batch != code.index.shape[0] or weight is None:
                raise ValueError(
                    f"base: a {kind!r} Affine of batch {code.index.shape[0]} and a weight"
                )
            table, flat, starts = base.table, base.luts, base.starts
        else:
            flat = [lut.view(-1) for lut in luts]
        channel, coords = self._coords(code, self.out_size)
        B = code.index.shape[0]
        parts = []
        for axis in range(self.ndim):
            # per axis: the lookup u - scale * p - origin (from the channel's row on the
            # first axis) for every result position u and entry p: (B, sizes[axis], s)
            at = -(coords[axis] * scale[axis]) - origins[axis]
            if axis == 0:
                at = at + channel * width0
            if starts is not None:
                at = torch.cat([at, starts[axis].view(B, 1)], 1)
            u = torch.arange(sizes[axis], device=code.index.device).view(1, -1, 1)
            at = (at.unsqueeze(1) + u).view(-1)
            # index_select: several times faster than advanced indexing on the CPU
            parts.append(flat[axis].index_select(0, at).view(B, sizes[axis], -1))
        if self.ndim == 1:
            rows = parts[0]
        else:
            rows = (parts[0].unsqueeze(2) + parts[1].unsqueeze(1)).clamp_min_(0)
            rows = rows.view(B, -1, rows.shape[-1])
        out = self._bag(rows, code.values, table, weight)
        return self._to_layout(out, sizes)

    def gram_pairs(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        r"""The entries :math:`(\mathbf W\mathbf W^T)_{(a),(b)}` of the Gram operator for
        every pair of code positions ``rows`` ``(B, s)`` and ``cols`` ``(B, t)`` (flat
        indices): ``(B, s, t)``. With them, quadratic forms such as
        :math:`\|\mathbf W^T z\|^2 = z_S^T G_{SS} z_S` and the Gram operator restricted to a
        support cost :math:`O(s\,t)` per sample, no pass over a map."""
        table, luts, origins, _, _ = self._product("gram")
        width0 = luts[0].shape[-1]
        ch_c, co_c = self._coords(SparseCode(cols, cols), self.out_size)
        ch_r, co_r = self._coords(SparseCode(rows, rows), self.out_size)
        B, s, t = rows.shape[0], rows.shape[1], cols.shape[1]
        at = None
        for axis in range(self.ndim):
            # the lookup of column entry c at result position q = row entry's coordinate
            look = co_r[axis].unsqueeze(2) - co_c[axis].unsqueeze(1) - origins[axis]
            if axis == 0:
                look = look + (ch_c * width0).unsqueeze(1)
            part = luts[axis].view(-1).index_select(0, look.reshape(-1)).view(B, s, t)
            at = part if at is None else at + part
        row = at.clamp_min_(0) if self.ndim > 1 else at
        flat = row * self.K + ch_r.unsqueeze(2)
        return table.view(-1).index_select(0, flat.view(-1)).view(B, s, t)

    def rmatvec(self, code: SparseCode, base: Affine | None = None, weight=None) -> torch.Tensor:
        r""":math:`\mathbf W^T z`, ``(B, M, *input_size)`` in channels-last memory; with
        ``base`` (:meth:`affine`) ``weight * base + W^T z``, ``weight`` per sample."""
        return self._apply("place", code, base, weight)

    def gram(self, code: SparseCode, base: Affine | None = None, weight=None) -> torch.Tensor:
        r""":math:`\mathbf W\mathbf W^T z`, ``(B, K, *output_size)`` in channels-last memory
        (with ``base``: ``weight * base +`` it); only for a layer without padding
        (``ValueError`` otherwise)."""
        return self._apply("gram", code, base, weight)
