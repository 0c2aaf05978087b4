r"""The model-RIP constant :math:`\delta_k` bracketed from both sides.

**Which matrix.** The model-RIP of eq. (1) is a property of the synthesis matrix
:math:`\Phi = \mathbf W^T \in \mathbb R^{MD\times Kn}` acting on codes
:math:`z\in\mathbb R^{Kn}`. The columns of :math:`\Phi` are the *rows* of :math:`\mathbf W`:
column :math:`a = (i, j)` (flat index into the code, channel-major as everywhere in cnninv)
is :math:`\varphi_a` = filter :math:`i` shifted by :math:`j\cdot t` (truncated at the
border under zero padding). Their Gram matrix is

.. math::

    G = \Phi^T\Phi = \mathbf W\mathbf W^T \in \mathbb R^{Kn\times Kn},\qquad
    G_{ab} = \langle \varphi_a, \varphi_b\rangle .

For a support :math:`S` (a set of code entries),
:math:`\delta(S) = \|G_S - I\|_2 = \max(\lambda_{\max}(G_S) - 1,\ 1 - \lambda_{\min}(G_S))`
is the smallest :math:`\delta` with :math:`(1-\delta)\|z\|^2 \le \|\mathbf W^Tz\|^2 \le
(1+\delta)\|z\|^2` for every :math:`z` supported on :math:`S`, and :math:`\delta_k` is the
largest :math:`\delta(S)` over the supports of the model:

* ``order=1``, :math:`\mathcal M_k`: at most one entry per block, :math:`k` entries (eq. (1));
* ``order=2``, :math:`\mathcal M_k^2`: sums of two model-k-sparse codes, i.e. at most two
  entries per block and :math:`2k` entries (Theorem 3.3's :math:`\delta_{2k}`).

Blocks are those of :func:`cnninv.sparsity.model_sparse` (``pool``). Eigenvalues of a
principal submatrix interlace those of the matrix, so the maximum over a model is attained
on its largest supports (``support_size``): everything here works on those.

**Lower bounds**, each attained by an explicit support (returned):

* *sampled* — random supports of the model, :math:`\delta(S)` of each: exact eigenvalues on
  small layers; on large ones Lanczos Ritz values, which are Rayleigh quotients
  :math:`\|\mathbf W^Tz\|^2/\|z\|^2` of explicit codes :math:`z` on :math:`S` (recomputed in
  float64), so still attained. Beside it, ``lower_random_codes``: the same supports with
  uniform random values (the estimator of Figure 2), the weakest of all.
* *search* — an adversarial search from the worst sampled supports: greedy growth from the
  most coherent pairs and local swaps (one entry out, one in) that maximise
  :math:`\lambda_{\max}(G_S)` or minimise :math:`\lambda_{\min}(G_S)` (small layers and
  supports of at most 64 entries, exact
  eigenvalues), and the truncated power method with the model's projection
  (:math:`z \leftarrow \mathbb M(Gz)` or :math:`\mathbb M((cI-G)z)`, monotone for
  :math:`c \ge \|G\|`; any size, one product :math:`\mathbf W\mathbf W^T` per step).

**Upper bounds**, exact computations over every support (no sampling), by Gershgorin's
theorem on :math:`G_S`: every eigenvalue lies within
:math:`|G_{aa}-1| + \sum_{b\in S, b\ne a}|G_{ab}|` of 1 for some :math:`a\in S`. With
:math:`s` the support size,

* *coherence*: :math:`\delta \le \max_a|G_{aa}-1| + (s-1)\,\mu`, :math:`\mu` the largest
  :math:`|G_{ab}|` between distinct columns that can be active together (different blocks
  for :math:`\mathcal M_k`; any two for :math:`\mathcal M_k^2`);
* *Babel* (cumulative coherence, Tropp 2004, made block-aware):
  :math:`\delta \le \max_a\big(|G_{aa}-1| + \mu_1(a)\big)`, :math:`\mu_1(a)` the largest sum
  of :math:`s-1` values :math:`|G_{ab}|` over columns :math:`b` that can be active with
  :math:`a` (at most one per other block, none of :math:`a`'s own block, for
  :math:`\mathcal M_k`; two per other block and one more of its own for
  :math:`\mathcal M_k^2`). Never above the coherence bound.

On a :class:`~cnninv.operators.ConvOperator` with zero padding the bounds use the structure
of :math:`G`: an entry depends only on the two filters, their relative shift and which
border window truncates the first row, so :math:`G` is a handful of cross-correlations of
(cropped) filters, exact at any size (VGG16's conv5 at 14×14: :math:`10^5` columns). Other
operators use the dense :math:`G` when it fits.

:func:`exact_delta` enumerates every support (tiny layers: the tests' oracle).

>>> import torch
>>> from cnninv.operators import ConvOperator
>>> W = ConvOperator.gaussian(K=3, M=2, ell=2, input_size=4, seed=0, dtype=torch.float64)
>>> b = delta_bracket(W, k=2, samples=20, seed=0)
>>> ex = exact_delta(W, k=2)
>>> b.lower_sampled <= b.lower_search <= ex.delta <= b.upper_babel <= b.upper_coherence
True
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from cnninv._checks import (
    allocating,
    check_bool,
    check_int,
    check_memory,
    check_positive_int,
    make_generator,
)
from cnninv.operators import ConvOperator, LinearOperator
from cnninv.sparsity import Pool, block_shape, check_k, num_blocks, pool_shape

__all__ = [
    "DeltaBracket",
    "ExactDelta",
    "block_ids",
    "bracket_summary",
    "delta_bracket",
    "exact_delta",
    "support_delta",
    "support_size",
]

#: Layers with at most this many code entries use the dense Gram matrix (exact eigenvalues
#: of every support, swap search, bounds from G itself).
DENSE_MAX = 6144
#: Supports up to this size get exact eigenvalues on the dense path (larger ones: Lanczos).
EXACT_SUPPORT_MAX = 256
#: Supports up to this size are also searched by greedy growth and swaps.
SWAP_SUPPORT_MAX = 64


# --------------------------------------------------------------------------- the model
def block_ids(shape: Sequence[int], pool: Pool = None) -> torch.Tensor:
    """The block of every entry of a code of shape ``(K, *spatial)`` (or ``(N,)``: every
    entry its own block), flattened row-major: the blocks of
    :func:`cnninv.sparsity.model_sparse` (channel-major, then the pooling regions)."""
    num_blocks(shape, pool)  # checks shape and pool
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        return torch.arange(shape[0])
    spatial = shape[1:]
    kernel = pool_shape(spatial, pool)
    blocks = block_shape(spatial, pool)
    grids = torch.meshgrid(*[torch.arange(s) for s in spatial], indexing="ij")
    region = torch.zeros(spatial, dtype=torch.long)
    for axis, g in enumerate(grids):
        region = region * blocks[axis] + g // kernel[axis]
    per_map = math.prod(blocks)
    return (torch.arange(shape[0]).view(-1, *([1] * len(spatial))) * per_map + region).flatten()


def _check_order(order: object) -> int:
    if order not in (1, 2) or isinstance(order, bool):
        raise ValueError(
            f"order must be 1 (the model M_k) or 2 (M_k^2, for delta_2k), got {order!r}"
        )
    return int(order)


def support_size(shape: Sequence[int], k: int, pool: Pool = None, order: int = 1) -> int:
    """The size of the largest supports of the model: ``order * k`` entries, at most
    ``order`` per block (fewer when the blocks are too small)."""
    order = _check_order(order)
    k = check_k(k, shape, pool)
    if k is None:
        raise ValueError("k must be an integer, got None")
    counts = torch.bincount(block_ids(shape, pool))
    return min(order * k, int(counts.clamp(max=order).sum()))


def _grouped(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each block starts when the entries are grouped by block: ``first[b]``."""
    counts = torch.bincount(ids)
    return torch.cumsum(counts, 0) - counts, counts


def _project(score: torch.Tensor, ids: torch.Tensor, order: int, size: int) -> torch.Tensor:
    """The support of the model closest to ``score`` ``(B, N)`` (non-negative): the
    ``order`` largest entries of each block, then the ``size`` largest of those; returns the
    flat indices ``(B, size)``, sorted. For ``order=1`` this is the support of
    :func:`cnninv.sparsity.model_sparse` (up to ties)."""
    N = score.shape[1]
    first, _ = _grouped(ids)
    by_score = torch.argsort(score, dim=1, descending=True, stable=True)
    by_block = torch.argsort(ids[by_score], dim=1, stable=True)
    perm = by_score.gather(1, by_block)  # grouped by block, best first within a block
    rank = torch.arange(N, device=score.device) - first.to(score.device)[ids[perm]]
    cand = torch.where(rank < order, score.gather(1, perm), score.new_full((), -1.0))
    top = cand.topk(size, dim=1).indices
    return perm.gather(1, top).sort(dim=1).values


# --------------------------------------------------------------------------- supports
def _gram_dense(W: LinearOperator) -> torch.Tensor:
    A = W.dense().to(torch.float64)
    return A @ A.T


def _support_gram(G: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    return G[S.unsqueeze(-1), S.unsqueeze(-2)]


def support_delta(W: LinearOperator, supports: torch.Tensor) -> torch.Tensor:
    r""":math:`(\lambda_{\min}, \lambda_{\max})` of :math:`G_S = \Phi_S^T\Phi_S` for each
    support, exactly: ``supports`` ``(B, s)`` flat code indices; returns ``(B, 2)`` in
    float64. :math:`\delta(S)` is ``max(lmax - 1, 1 - lmin)``. Builds :math:`\Phi_S` from
    :math:`\mathbf W^T` of the unit codes (``B * s`` products), so it is for small supports.
    """
    if not isinstance(W, LinearOperator):
        raise ValueError(f"W must be a LinearOperator, got {type(W).__name__}")
    N = math.prod(W.out_shape)
    if (
        not isinstance(supports, torch.Tensor)
        or supports.dim() != 2
        or supports.dtype != torch.long
        or supports.numel() == 0
    ):
        raise ValueError("supports must be a non-empty int64 tensor of shape (B, s)")
    if int(supports.min()) < 0 or int(supports.max()) >= N:
        raise ValueError(f"supports must index a code of {N} entries")
    s_sorted = supports.sort(dim=1).values
    if bool((s_sorted[:, 1:] == s_sorted[:, :-1]).any()):
        raise ValueError("a support repeats an entry")
    B, s = supports.shape
    W64 = _as64(W)
    with allocating(f"{B} supports of {s} entries"):
        eye = torch.zeros((B * s, N), dtype=torch.float64, device=W64.device)
        eye[torch.arange(B * s), supports.flatten().to(W64.device)] = 1.0
        phi = W64.rmatvec(eye.view(B * s, *W.out_shape)).reshape(B, s, -1)
    ev = torch.linalg.eigvalsh(phi @ phi.transpose(1, 2))
    return torch.stack([ev[:, 0], ev[:, -1]], dim=1).cpu()


def _as64(W: LinearOperator) -> LinearOperator:
    return W if W.dtype == torch.float64 else _copy_to(W, torch.float64)


def _copy_to(W: LinearOperator, dtype: torch.dtype) -> LinearOperator:
    import copy

    return copy.deepcopy(W).to(dtype)


def _sample_supports(
    ids: torch.Tensor, order: int, size: int, count: int, gen: torch.Generator
) -> torch.Tensor:
    """Random supports of the model: independent uniform scores, projected (so the blocks
    are chosen uniformly when they have equal sizes, the entries uniformly within them)."""
    score = torch.rand((count, ids.numel()), generator=gen, dtype=torch.float64)
    return _project(score, ids, order, size)


# --------------------------------------------------------------------------- results
@dataclass
class DeltaBracket:
    r""":math:`\delta_k` (``order=1``) or :math:`\delta_{2k}` (``order=2``) of
    :math:`\mathbf W^T`, bracketed: ``lower_random_codes <= lower_sampled <= lower_search
    <= delta <= upper_babel <= upper_coherence`` (an upper bound is None when it could not be
    computed). ``worst_support`` (flat code indices) attains ``lower_search``, on the side
    ``worst_side``: ``"upper"`` (:math:`\lambda_{\max}-1`) or ``"lower"``
    (:math:`1-\lambda_{\min}`). ``mu`` is the coherence of the model's admissible pairs,
    ``diag_deviation`` :math:`\max_a|G_{aa}-1|`."""

    k: int
    order: int
    size: int
    lower_random_codes: float
    lower_sampled: float
    lower_search: float
    upper_babel: float | None
    upper_coherence: float | None
    worst_support: list[int]
    worst_side: str
    worst_eigenvalue: float
    mu: float | None
    diag_deviation: float | None
    method: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self, shape: Sequence[int] | None = None) -> dict[str, Any]:
        """JSON-ready; with ``shape`` (the code's ``(K, *spatial)``) the worst support is
        also given as ``[channel, *position]`` entries."""
        out = {
            "k": self.k,
            "order": self.order,
            "support_size": self.size,
            "lower_random_codes": self.lower_random_codes,
            "lower_sampled": self.lower_sampled,
            "lower_search": self.lower_search,
            "upper_babel": self.upper_babel,
            "upper_coherence": self.upper_coherence,
            "mu": self.mu,
            "diag_deviation": self.diag_deviation,
            "worst_side": self.worst_side,
            "worst_eigenvalue": self.worst_eigenvalue,
            "worst_support": list(self.worst_support),
            "method": self.method,
            "notes": list(self.notes),
        }
        if shape is not None:
            num_blocks(shape, None)  # a valid code shape
        if shape is not None and len(shape) > 1:
            if math.prod(shape) <= max(self.worst_support):
                raise ValueError(f"shape {tuple(shape)} is not the shape of the code")
            idx = torch.tensor(self.worst_support, dtype=torch.long)
            coords = torch.stack(torch.unravel_index(idx, tuple(shape)), dim=1)
            out["worst_support_entries"] = coords.tolist()
        return out


@dataclass
class ExactDelta:
    """:func:`exact_delta`: the constant, the support attaining it and how many supports
    were enumerated."""

    delta: float
    support: list[int]
    side: str
    supports: int


# --------------------------------------------------------------------------- exact (oracle)
def exact_delta(
    W: LinearOperator,
    k: int,
    pool: Pool = None,
    *,
    order: int = 1,
    max_supports: int = 200_000,
) -> ExactDelta:
    r"""The exact :math:`\delta_k` (or :math:`\delta_{2k}`) by enumerating every largest
    support of the model (tiny layers only: ``ValueError`` beyond ``max_supports``)."""
    if not isinstance(W, LinearOperator):
        raise ValueError(f"W must be a LinearOperator, got {type(W).__name__}")
    order = _check_order(order)
    max_supports = check_positive_int(max_supports, "max_supports")
    size = support_size(W.out_shape, k, pool, order)
    ids = block_ids(W.out_shape, pool)
    N = ids.numel()
    members = [torch.nonzero(ids == b).flatten().tolist() for b in range(int(ids.max()) + 1)]
    if order == 2:
        count = math.comb(N, size)
    elif math.comb(len(members), size) > max_supports:
        count = max_supports + 1
    else:
        count = sum(
            math.prod(len(members[b]) for b in combo)
            for combo in itertools.combinations(range(len(members)), size)
        )
    if count > max_supports:
        raise ValueError(
            f"exact_delta would enumerate more than max_supports={max_supports} supports; it "
            "is an oracle for tiny layers (use delta_bracket)"
        )
    if order == 1:
        supports = [
            list(pick)
            for combo in itertools.combinations(range(len(members)), size)
            for pick in itertools.product(*(members[b] for b in combo))
        ]
    else:
        per = ids.tolist()
        supports = []
        for pick in itertools.combinations(range(N), size):
            blocks = [per[i] for i in pick]
            if all(blocks.count(b) <= 2 for b in set(blocks)):
                supports.append(list(pick))
    G = _gram_dense(W)
    S = torch.tensor(supports, dtype=torch.long)
    best, side, where = -math.inf, "upper", 0
    for start in range(0, len(supports), 20_000):
        ev = torch.linalg.eigvalsh(_support_gram(G, S[start : start + 20_000]))
        up, low = ev[:, -1] - 1, 1 - ev[:, 0]
        for vals, name in ((up, "upper"), (low, "lower")):
            i = int(vals.argmax())
            if float(vals[i]) > best:
                best, side, where = float(vals[i]), name, start + i
    return ExactDelta(max(best, 0.0), supports[where], side, len(supports))


# --------------------------------------------------------------------------- upper bounds
def _kept(
    vals: torch.Tensor, labels: torch.Tensor, own_label: torch.Tensor, order: int
) -> torch.Tensor:
    """The values a support containing each row's column can use, per block.

    ``vals`` ``(R, L)``: :math:`|G_{ab}|` of row ``a`` against ``L`` columns (-1 for the
    column itself, which never counts), ``labels`` ``(L,)`` their blocks, ``own_label``
    ``(R,)`` each row's own block. Returns ``(R, n)`` non-negative values: the largest of
    every other block (``order=1``, the own block excluded), or the two largest of every
    other block and the largest of the own block (``order=2``); ties counted."""
    R, L = vals.shape
    used, labels = torch.unique(labels, return_inverse=True)  # compact labels
    own_label = torch.searchsorted(used, own_label).clamp_max(used.numel() - 1)
    nl = used.numel()
    idx = labels.expand(R, L)
    own = labels[None, :] == own_label[:, None]
    v = vals.masked_fill(own, -1.0) if order == 1 else vals
    top1 = vals.new_full((R, nl), -1.0).scatter_reduce(1, idx, v, "amax")
    if order == 1:
        return top1.clamp_min(0)
    is_top = (v == top1.gather(1, idx)) & (v >= 0)
    ties = vals.new_zeros((R, nl)).scatter_add(1, idx, is_top.to(vals.dtype))
    below = v.masked_fill(is_top, -1.0)
    top2 = vals.new_full((R, nl), -1.0).scatter_reduce(1, idx, below, "amax")
    top2 = torch.where(ties >= 2, top1, top2)
    top2[torch.arange(R), own_label] = -1.0  # one more of its own block, not two
    return torch.cat([top1, top2], dim=1).clamp_min(0)


def _kept_lag_groups(
    vals: torch.Tensor, group: torch.Tensor, own_group: int, order: int
) -> torch.Tensor:
    """:func:`_kept` for the rows of a conv layer's Gram structure, whose blocks are
    groups of lags: ``vals`` ``(L, R, K)`` (row ``a`` against channel ``j`` at lag
    ``s``), ``group`` ``(L,)`` each lag's block among the ``G`` of every channel
    (numbered in the order of their labels), ``own_group`` the block of the centre lag,
    which is each row's own block in its own channel (row ``a`` is channel ``a``). The
    same values in the same columns as :func:`_kept` with the labels ``j * G + group``;
    the maxima per block as element-wise maxima over runs of lag planes instead of a
    scatter over every column (exact: maxima and counts)."""
    R = vals.shape[1]
    order_of_lags = torch.argsort(group, stable=True)
    bounds = torch.searchsorted(group[order_of_lags], torch.arange(int(group.max()) + 2))
    # lags first, grouped: each block is a run of whole (R, K) planes, reduced plane by
    # plane (element-wise maxima over a few planes)
    v = vals.index_select(0, order_of_lags)
    rows = torch.arange(R)
    top1, top2 = [], []
    for g in range(bounds.numel() - 1):
        seg = v[int(bounds[g]) : int(bounds[g + 1])]
        t1 = seg.amax(0)
        if order == 1:
            if g == own_group:  # the row's own block is not usable
                t1[rows, rows] = -1.0
            top1.append(t1)
            continue
        is_top = (seg == t1) & (seg >= 0)
        t2 = seg.masked_fill(is_top, -1.0).amax(0)
        t2 = torch.where(is_top.sum(0) >= 2, t1, t2)
        if g == own_group:  # one more of its own block, not two
            t2[rows, rows] = -1.0
        top1.append(t1)
        top2.append(t2)
    cols = [torch.stack(top1, 2).reshape(R, -1)]
    if order == 2:
        cols.append(torch.stack(top2, 2).reshape(R, -1))
    return torch.cat(cols, dim=1).clamp_min(0)


def _bounds_from_rows(
    kept: torch.Tensor, diag_dev: torch.Tensor, size: int
) -> tuple[float, float, float]:
    """(Babel bound, mu, diag) over some rows: Babel = max of |G_aa - 1| + the sum of the
    ``size - 1`` largest usable values of the row."""
    mu = float(kept.max()) if kept.numel() else 0.0
    m = min(size - 1, kept.shape[1])
    if m == kept.shape[1]:
        babel_sum = kept.sum(1)
    elif m > 0:
        babel_sum = kept.topk(m, dim=1, sorted=False).values.sum(1)
    else:
        babel_sum = torch.zeros_like(diag_dev)
    return float((diag_dev + babel_sum).max()), mu, float(diag_dev.max())


def _combine(parts: list[tuple[float, float, float]], size: int) -> dict:
    babel = max(p[0] for p in parts)
    mu = max(p[1] for p in parts)
    diag = max(p[2] for p in parts)
    # mu and diag are over every column, so the coherence bound is diag + (s - 1) mu
    return {"babel": babel, "coherence": diag + (size - 1) * mu, "mu": mu, "diag": diag}


def _upper_dense(G: torch.Tensor, ids: torch.Tensor, order: int, size: int) -> dict:
    diag_dev = (G.diagonal() - 1).abs()
    parts = []
    for start in range(0, G.shape[0], 512):
        rows = torch.arange(start, min(start + 512, G.shape[0]))
        vals = G[rows].abs()
        vals[torch.arange(rows.numel()), rows] = -1.0
        kept = _kept(vals, ids, ids[rows], order)
        parts.append(_bounds_from_rows(kept, diag_dev[rows], size))
    return _combine(parts, size)


def _full_weight(W: ConvOperator) -> torch.Tensor:
    """W's filters as a bank over all ``M`` channels with dense taps (groups and dilation
    expanded with zeros): the same rows of W, in float64."""
    w = W.weight.detach().to("cpu", torch.float64).contiguous()
    if W.groups > 1:
        K, per = w.shape[:2]
        full = w.new_zeros((K, per * W.groups, *w.shape[2:]))
        out_per = K // W.groups
        for g in range(W.groups):
            full[g * out_per : (g + 1) * out_per, g * per : (g + 1) * per] = w[
                g * out_per : (g + 1) * out_per
            ]
        w = full
    if any(a > 1 for a in W.dilation):
        span = [a * (e - 1) + 1 for a, e in zip(W.dilation, w.shape[2:], strict=True)]
        dense = w.new_zeros((*w.shape[:2], *span))
        index = (slice(None), slice(None), *(slice(None, None, a) for a in W.dilation))
        dense[index] = w
        w = dense
    return w


def _axis_keys(n: int, D: int, ell: int, t: int, p: int, region: int) -> tuple[int, dict]:
    """Per output position along one axis: the window of taps inside the map, and for each
    lag whether the neighbour exists and its region relative to the position's. Positions
    with the same key have the same Gram rows up to translation."""
    r = (ell - 1) // t
    keys: dict[tuple, list[int]] = {}
    for q in range(n):
        lo, hi = max(0, p - q * t), min(ell, D + p - q * t)
        lags = tuple(
            (q + s) // region - q // region if 0 <= q + s < n else None for s in range(-r, r + 1)
        )
        keys.setdefault((lo, hi, lags), []).append(q)
    return r, keys


def _window_grams(
    w: torch.Tensor, windows: list[tuple], t: tuple, r: tuple
) -> dict[tuple, torch.Tensor]:
    """For each window (per axis ``(lo, hi)``: the taps of a row inside the map):
    ``C[s, i, j] = sum_m sum_{tau in window} w_i[m, tau] w_j[m, tau - s t]`` for lags
    ``|s| <= r`` (per axis; lags first, flattened), the Gram entries between a row so
    truncated and the row ``s`` shifts further. One GEMM per tap, shared by every
    window."""
    K = w.shape[0]
    ell = tuple(w.shape[2:])
    lags = list(itertools.product(*(range(-x, x + 1) for x in r)))
    out = {win: w.new_zeros((len(lags), K, K)) for win in windows}
    for tau in itertools.product(*(range(e) for e in ell)):
        inside = [
            win
            for win in windows
            if all(lo <= a < hi for a, (lo, hi) in zip(tau, win, strict=True))
        ]
        if not inside:
            continue
        partner, valid = [], []
        for li, s in enumerate(lags):
            other = tuple(a - b * st for a, b, st in zip(tau, s, t, strict=True))
            if all(0 <= o < e for o, e in zip(other, ell, strict=True)):
                partner.append(w[(slice(None), slice(None), *other)])
                valid.append(li)
        if not valid:
            continue
        T = torch.einsum("im,sjm->sij", w[(slice(None), slice(None), *tau)], torch.stack(partner))
        for win in inside:
            out[win][valid] += T
    return out


def _upper_conv(W: ConvOperator, pool: Pool, order: int, size: int) -> dict:
    """The coherence and Babel bounds of a zero-padded conv layer from the structure of G."""
    w = _full_weight(W)
    K = w.shape[0]
    ell = tuple(w.shape[2:])
    ndim = len(ell)
    regions = pool_shape(W.output_size, pool)
    axes = [
        _axis_keys(n, D, e, t, p, reg)
        for n, D, e, t, p, reg in zip(
            W.output_size, W.input_size, ell, W.stride, W.padding, regions, strict=True
        )
    ]
    r = tuple(a[0] for a in axes)
    lag_shape = tuple(2 * x + 1 for x in r)
    L = math.prod(lag_shape)
    combos = list(itertools.product(*(list(a[1]) for a in axes)))
    windows = sorted({tuple((key[0], key[1]) for key in combo) for combo in combos})
    check_memory(
        8 * K * K * L * (len(windows) + 4), f"the Gram structure of a layer of K={K} filters"
    )
    grams = _window_grams(w, windows, W.stride, r)
    strides = [math.prod(lag_shape[a + 1 :]) for a in range(ndim)]
    centre = sum(x * st for x, st in zip(r, strides, strict=True))
    rows = torch.arange(K)
    parts = []
    for combo in combos:
        C = grams[tuple((key[0], key[1]) for key in combo)]  # (L, K, K), lags flattened
        valid = torch.ones(lag_shape, dtype=torch.bool)
        off_flat = torch.zeros(lag_shape, dtype=torch.long)
        for a, key in enumerate(combo):
            shape = [1] * ndim
            shape[a] = lag_shape[a]
            valid = valid & torch.tensor([o is not None for o in key[2]]).view(shape)
            off = torch.tensor([0 if o is None else o for o in key[2]]).view(shape)
            # the neighbour's region relative to the row's (|offset| <= r): its block
            off_flat = off_flat * lag_shape[a] + (off + r[a])
        # a lag's block is the neighbour's region relative to the row's; numbered in the
        # order of the labels (channel, then region) that _kept would give them
        _, group = torch.unique(off_flat.flatten(), return_inverse=True)
        vals = C.abs()
        vals[~valid.flatten()] = 0.0  # lags whose neighbour is outside the map
        vals[centre, rows, rows] = -1.0
        diag_dev = (C[centre, rows, rows] - 1).abs()
        kept = _kept_lag_groups(vals, group, int(group[centre]), order)
        parts.append(_bounds_from_rows(kept, diag_dev, size))
    return _combine(parts, size)


# --------------------------------------------------------------------------- lower bounds
def _eig_side(G_S: torch.Tensor, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    ev, vec = torch.linalg.eigh(G_S)
    if side == "upper":
        return ev[..., -1], vec[..., -1]
    return ev[..., 0], vec[..., 0]


def _objective(lam: torch.Tensor | float, side: str):
    return lam - 1 if side == "upper" else 1 - lam


def _swap_search(
    G: torch.Tensor,
    ids: torch.Tensor,
    S: torch.Tensor,
    order: int,
    side: str,
    *,
    max_sweeps: int,
    shortlist: int = 24,
) -> tuple[torch.Tensor, float]:
    """Local search from support ``S`` (1-d, sorted): swap one entry out and one in while
    the extreme eigenvalue of the side improves. Candidates are screened by the best
    Rayleigh quotient on span{v without entry i, e_c} (a 2x2 eigenproblem, all pairs at
    once), the ``shortlist`` best checked exactly."""
    N = G.shape[0]
    diagG = G.diagonal()
    sign = 1.0 if side == "upper" else -1.0
    lam, v = _eig_side(_support_gram(G, S), side)
    best = float(_objective(lam, side))
    for _ in range(max_sweeps):
        s = S.numel()
        GS = G[:, S]  # (N, s)
        Gv = GS @ v  # (N,)
        # w_i = v - v_i e_i; b[c, i] = <phi_c, Phi w_i>, a_i = w_i^T G_S w_i, n_i = |w_i|^2
        b = Gv[:, None] - GS * v[None, :]
        a = lam * (1 - 2 * v**2) + v**2 * diagG[S]
        n = (1 - v**2).clamp_min(1e-12)
        p = a / n
        mid = (p[None, :] + diagG[:, None]) / 2
        half = (p[None, :] - diagG[:, None]) / 2
        rad = torch.sqrt(half**2 + b**2 / n[None, :])
        score = sign * (mid + sign * rad)  # larger is better on either side
        # admissibility: c not in S; c's block has room once S[i] leaves
        blk_count = torch.bincount(ids[S], minlength=int(ids.max()) + 1)
        room = blk_count[ids][:, None] - (ids[:, None] == ids[S][None, :]).long() < order
        in_S = torch.zeros(N, dtype=torch.bool)
        in_S[S] = True
        ok = room & ~in_S[:, None]
        score = torch.where(ok, score, torch.full_like(score, -math.inf))
        m = min(shortlist, int(ok.sum()))
        if m == 0:
            break
        top = score.flatten().topk(m).indices
        cs, is_ = top // s, top % s
        trial = S.expand(m, s).clone()
        trial[torch.arange(m), is_] = cs
        trial = trial.sort(dim=1).values
        lam_t, vec_t = _eig_side(_support_gram(G, trial), side)
        obj = _objective(lam_t, side)
        j = int(obj.argmax())
        if float(obj[j]) <= best + 1e-12:
            break
        S, lam, v, best = trial[j], lam_t[j], vec_t[j], float(obj[j])
    return S, best


def _greedy(
    G: torch.Tensor, ids: torch.Tensor, seed_pair: tuple[int, int], size: int, order: int,
    side: str, shortlist: int = 24,
) -> torch.Tensor:  # fmt: skip
    """Greedy growth from a pair: add the entry that most improves the side's extreme
    eigenvalue (screened by a 2x2 Rayleigh quotient, the shortlist checked exactly)."""
    diagG = G.diagonal()
    sign = 1.0 if side == "upper" else -1.0
    S = torch.tensor(sorted(seed_pair), dtype=torch.long)
    nb = int(ids.max()) + 1
    while S.numel() < size:
        lam, v = _eig_side(_support_gram(G, S), side)
        b = G[:, S] @ v
        mid = (lam + diagG) / 2
        rad = torch.sqrt(((lam - diagG) / 2) ** 2 + b**2)
        score = sign * (mid + sign * rad)
        count = torch.bincount(ids[S], minlength=nb)
        ok = count[ids] < order
        ok[S] = False
        score = torch.where(ok, score, torch.full_like(score, -math.inf))
        m = min(shortlist, int(ok.sum()))
        if m == 0:
            break
        cand = score.topk(m).indices
        trial = torch.cat([S.expand(m, -1), cand[:, None]], dim=1).sort(dim=1).values
        lam_t, _ = _eig_side(_support_gram(G, trial), side)
        S = trial[int(_objective(lam_t, side).argmax())]
    return S


def _tpm(
    apply_G: Callable[[torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    ids: torch.Tensor,
    order: int,
    size: int,
    side: str,
    shift: float,
    iters: int,
) -> torch.Tensor:
    """Truncated power method with the model's projection: ``z <- P(G z)`` (upper side) or
    ``z <- P((shift I - G) z)`` (lower side), normalised; stops when no support changes.
    Returns the final codes ``(B, N)``."""
    z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-300)
    supp = None
    for _ in range(iters):
        h = apply_G(z)
        if side == "lower":
            h = shift * z - h
        new = _project(h.abs().to(torch.float64), ids, order, size)
        mask = torch.zeros_like(z, dtype=torch.bool).scatter_(1, new.to(z.device), True)
        z = torch.where(mask, h, torch.zeros((), dtype=h.dtype, device=h.device))
        z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-300)
        if supp is not None and torch.equal(new, supp):
            break
        supp = new
    return z


def _lanczos(
    apply_A: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rayleigh-Ritz on the Krylov space of ``A`` from ``v0`` ``(B, N)`` (full
    reorthogonalisation): the Ritz vectors of the smallest and largest Ritz values,
    ``(B, N)`` each. ``A`` must keep the support of ``v0`` (a restricted Gram matrix)."""
    V: list[torch.Tensor] = []
    AV: list[torch.Tensor] = []
    v = v0 / v0.norm(dim=1, keepdim=True).clamp_min(1e-300)
    for _ in range(steps):
        V.append(v)
        w = apply_A(v)
        AV.append(w)
        basis = torch.stack(V, dim=1)  # (B, j, N)
        for _ in range(2):
            w = w - torch.einsum("bj,bjn->bn", torch.einsum("bjn,bn->bj", basis, w), basis)
        nrm = w.norm(dim=1, keepdim=True)
        if bool((nrm <= 1e-10 * v0.abs().amax()).all()):
            break
        v = w / nrm.clamp_min(1e-300)
    basis, images = torch.stack(V, dim=1), torch.stack(AV, dim=1)
    H = torch.einsum("bjn,bin->bji", basis, images)
    H = (H + H.transpose(1, 2)) / 2
    _, Y = torch.linalg.eigh(H)
    lo = torch.einsum("bj,bjn->bn", Y[:, :, 0], basis)
    hi = torch.einsum("bj,bjn->bn", Y[:, :, -1], basis)
    return lo, hi


def _rayleigh(W64: LinearOperator, z: torch.Tensor) -> torch.Tensor:
    """:math:`\\|\\mathbf W^Tz\\|^2/\\|z\\|^2` in float64 (the honest value of a code)."""
    z = z.to(torch.float64)
    x = W64.rmatvec(z.view(z.shape[0], *W64.out_shape)).reshape(z.shape[0], -1)
    return (x**2).sum(1) / (z**2).sum(1)


# --------------------------------------------------------------------------- entry point
def delta_bracket(
    W: LinearOperator,
    k: int,
    pool: Pool = None,
    *,
    order: int = 1,
    samples: int = 200,
    starts: int = 4,
    sweeps: int = 50,
    tpm_iters: int = 50,
    lanczos_steps: int = 24,
    upper: bool = True,
    seed: int | None = 0,
    dense_max: int = DENSE_MAX,
) -> DeltaBracket:
    r"""Bracket :math:`\delta_k` (``order=1``) or :math:`\delta_{2k}` (``order=2``) of
    :math:`\mathbf W^T` on the model of ``k`` blocks (``pool`` as in
    :func:`~cnninv.sparsity.model_sparse`). See the module docstring for the definitions.

    Parameters
    ----------
    samples : random supports for the sampled lower bound.
    starts : the worst sampled supports the search starts from (and, on small layers, the
        most coherent pairs greedy growth starts from), per side.
    sweeps : swap sweeps at most per start (small layers).
    tpm_iters : truncated power iterations at most per start.
    lanczos_steps : Krylov steps per support on large layers (Ritz values approach the
        extreme eigenvalues from inside: still lower bounds on :math:`\delta`).
    upper : compute the upper bounds (coherence, Babel).
    dense_max : code sizes up to which the dense Gram matrix is used.

    Returns
    -------
    DeltaBracket

    Raises
    ------
    ValueError
        ``k`` out of range, a bad parameter, a layer too large for the dense path that is
        not a :class:`~cnninv.operators.ConvOperator` with zero padding (then only the lower
        bounds are computed and the upper ones are None, with a note).
    """
    if not isinstance(W, LinearOperator):
        raise ValueError(f"W must be a LinearOperator, got {type(W).__name__}")
    order = _check_order(order)
    samples = check_positive_int(samples, "samples")
    starts = check_positive_int(starts, "starts")
    sweeps = check_int(sweeps, "sweeps", minimum=0)
    tpm_iters = check_int(tpm_iters, "tpm_iters", minimum=0)
    lanczos_steps = check_positive_int(lanczos_steps, "lanczos_steps")
    dense_max = check_positive_int(dense_max, "dense_max")
    check_bool(upper, "upper")
    size = support_size(W.out_shape, k, pool, order)
    ids = block_ids(W.out_shape, pool)
    N = ids.numel()
    gen = make_generator(seed, None, "cpu")
    notes: list[str] = []
    small = N <= dense_max and N * math.prod(W.in_shape) <= 50_000_000
    dense = small and size <= EXACT_SUPPORT_MAX
    S0 = _sample_supports(ids, order, size, samples, gen)
    values = (torch.rand(S0.shape, generator=gen, dtype=torch.float64) * 2 - 1).clamp_min(-1)
    W64 = _as64(W)
    # the estimator of Figure 2: random values on the sampled supports
    rq = []
    for c in range(0, samples, 32):
        zr = torch.zeros((min(32, samples - c), N), dtype=torch.float64)
        zr.scatter_(1, S0[c : c + 32], values[c : c + 32])
        rq.append(_rayleigh(W64, zr.to(W64.device)).cpu())
    rq = torch.cat(rq)
    lower_random = max(float(rq.max()) - 1, 1 - float(rq.min()), 0.0)
    best = {"value": -math.inf, "support": S0[0], "side": "upper", "lam": 1.0}

    def consider(S: torch.Tensor, lam: float, side: str) -> None:
        value = float(_objective(lam, side))
        if value > best["value"]:
            best.update(value=value, support=S.clone(), side=side, lam=lam)

    if dense:
        G = _gram_dense(W)
        ev = torch.linalg.eigvalsh(_support_gram(G, S0))
        for side, lam in (("upper", ev[:, -1]), ("lower", ev[:, 0])):
            i = int(_objective(lam, side).argmax())
            consider(S0[i], float(lam[i]), side)
        if size == 1:  # every support: delta = max |G_aa - 1|
            d = G.diagonal()
            for side in ("upper", "lower"):
                i = int(_objective(d, side).argmax())
                consider(torch.tensor([i]), float(d[i]), side)
        lower_sampled = best["value"]
        method = "exact eigenvalues of every support (dense G)"
        shift = 1.05 * W.norm_sq(n_iter=100)  # c >= ||G|| keeps the lower-side TPM monotone

        def apply_G(z: torch.Tensor) -> torch.Tensor:
            return z @ G

        offdiag = G.abs().clone()
        offdiag.fill_diagonal_(0)
        if order == 1:
            offdiag[ids[:, None] == ids[None, :]] = 0
        pair_order = offdiag.flatten().topk(min(2 * starts, N * N)).indices
        pairs = [(int(a) // N, int(a) % N) for a in pair_order]
        pairs = [p for p in pairs if p[0] < p[1]][:starts]
        for side, lam in (("upper", ev[:, -1]), ("lower", ev[:, 0])):
            obj = _objective(lam, side)
            worst = obj.topk(min(starts, samples)).indices
            inits = [S0[int(i)] for i in worst]
            if 2 <= size <= SWAP_SUPPORT_MAX:
                inits += [_greedy(G, ids, p, size, order, side) for p in pairs]
            for S in inits if size <= SWAP_SUPPORT_MAX else []:
                S_best, _ = _swap_search(G, ids, S, order, side, max_sweeps=sweeps)
                lam_s, _ = _eig_side(_support_gram(G, S_best), side)
                consider(S_best, float(lam_s), side)
            # the truncated power method from the worst sampled supports' eigenvectors
            if tpm_iters:
                Sw = S0[worst]
                _, vec = _eig_side(_support_gram(G, Sw), side)
                z = torch.zeros((len(worst), N), dtype=torch.float64).scatter_(1, Sw, vec)
                z = _tpm(apply_G, z, ids, order, size, side, shift, tpm_iters)
                Sz = _project(z.abs(), ids, order, size)
                lam_z, _ = _eig_side(_support_gram(G, Sz), side)
                for j in range(len(worst)):
                    consider(Sz[j], float(lam_z[j]), side)
    else:
        method = (
            f"Lanczos Ritz values ({lanczos_steps} steps) per support: Rayleigh quotients of "
            "explicit codes on it"
        )
        dev = W.device
        dtype = W.dtype

        def apply_G(z: torch.Tensor) -> torch.Tensor:
            zb = z.view(z.shape[0], *W.out_shape)
            return W.matvec(W.rmatvec(zb)).reshape(z.shape[0], -1)

        def extremes(S: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """Ritz codes (lower, upper) on each support, in chunks."""
            lows, highs = [], []
            chunk = max(1, min(8, 2**27 // max(1, N * lanczos_steps * 8)))
            for c in range(0, S.shape[0], chunk):
                Sc = S[c : c + chunk].to(dev)
                mask = torch.zeros((Sc.shape[0], N), dtype=torch.bool, device=dev)
                mask.scatter_(1, Sc, True)
                v0 = torch.where(
                    mask,
                    torch.rand(mask.shape, generator=gen, dtype=torch.float64).to(dev, dtype),
                    torch.zeros((), dtype=dtype, device=dev),
                )

                def restricted(v: torch.Tensor, mask=mask) -> torch.Tensor:
                    return apply_G(v) * mask

                lo, hi = _lanczos(restricted, v0, min(lanczos_steps, Sc.shape[1]))
                lows.append(lo)
                highs.append(hi)
            return torch.cat(lows), torch.cat(highs)

        lo, hi = extremes(S0)
        rq_lo, rq_hi = _rayleigh(W64, lo).cpu(), _rayleigh(W64, hi).cpu()
        for side, lam in (("upper", rq_hi), ("lower", rq_lo)):
            i = int(_objective(lam, side).argmax())
            consider(S0[i], float(lam[i]), side)
        lower_sampled = best["value"]
        shift = 1.05 * W.norm_sq(n_iter=100)
        for side, lam, codes in (("upper", rq_hi, hi), ("lower", rq_lo, lo)):
            if not tpm_iters:
                break
            worst = _objective(lam, side).topk(min(starts, samples)).indices
            z = _tpm(apply_G, codes[worst.to(dev)], ids.to(dev), order, size, side, shift,
                     tpm_iters)  # fmt: skip
            Sz = _project(z.abs().to(torch.float64).cpu(), ids, order, size)
            candidates = [(Sz[j], float(_rayleigh(W64, z[j : j + 1])[0])) for j in range(len(z))]
            # polish: Lanczos on each final support
            plo, phi = extremes(Sz)
            polished = _rayleigh(W64, phi if side == "upper" else plo).cpu()
            candidates += [(Sz[j], float(polished[j])) for j in range(len(Sz))]
            for S, lam_j in candidates:
                consider(S, lam_j, side)

    up = {"babel": None, "coherence": None, "mu": None, "diag": None}
    if upper:
        if small:
            up = _upper_dense(G if dense else _gram_dense(W), ids, order, size)
        elif isinstance(W, ConvOperator) and W.padding_mode == "zeros":
            up = _upper_conv(W, pool, order, size)
        else:
            notes.append(
                "upper bounds not computed: the layer is too large for the dense Gram matrix "
                "and is not a zero-padded ConvOperator"
            )
    return DeltaBracket(
        k=int(k),
        order=order,
        size=size,
        lower_random_codes=lower_random,
        lower_sampled=max(lower_sampled, 0.0),
        lower_search=max(best["value"], lower_sampled, 0.0),
        upper_babel=up["babel"],
        upper_coherence=up["coherence"],
        worst_support=best["support"].tolist(),
        worst_side=best["side"],
        worst_eigenvalue=float(best["lam"]),
        mu=up["mu"],
        diag_deviation=up["diag"],
        method=method,
        notes=notes,
    )


def bracket_summary(
    delta_k: DeltaBracket, delta_2k: DeltaBracket, shape: Sequence[int] | None = None
) -> dict[str, Any]:
    r"""The brackets of :math:`\delta_k` and :math:`\delta_{2k}` as one JSON-ready record,
    with Theorem 3.3's bound at each end.

    Since :math:`\mathcal M_k\subset\mathcal M_k^2`, a lower bound on :math:`\delta_k` is
    one on :math:`\delta_{2k}` too: the :math:`\delta_{2k}` lower bounds are the larger of
    the two. ``theorem33_bound.at_lower`` is the bound at the lower ends (the true bound is
    at least this); ``at_upper`` at the upper ends (Babel); each is None where its
    :math:`\delta_{2k} \ge 1`, outside the theorem's hypothesis."""
    from cnninv.theory.theorems import theorem33_bound

    if not isinstance(delta_k, DeltaBracket) or not isinstance(delta_2k, DeltaBracket):
        raise ValueError("delta_k and delta_2k must be DeltaBracket results")
    if delta_k.order != 1 or delta_2k.order != 2 or delta_k.k != delta_2k.k:
        raise ValueError("delta_k must be order 1 and delta_2k order 2, for the same k")

    def fields(b: DeltaBracket, floor: DeltaBracket | None) -> dict[str, Any]:
        out = {
            "lower_random_codes": b.lower_random_codes,
            "lower_sampled": b.lower_sampled,
            "lower_search": b.lower_search,
            "upper_babel": b.upper_babel,
            "upper_coherence": b.upper_coherence,
            "mu": b.mu,
            "diag_deviation": b.diag_deviation,
            "support_size": b.size,
            "method": b.method,
        }
        if floor is not None:
            for key in ("lower_random_codes", "lower_sampled", "lower_search"):
                out[key] = max(out[key], getattr(floor, key))
        return out

    dk, d2k = fields(delta_k, None), fields(delta_2k, delta_k)
    lk, l2k = dk["lower_search"], d2k["lower_search"]
    uk, u2k = dk["upper_babel"], d2k["upper_babel"]
    at_lower = theorem33_bound(lk, l2k) if l2k < 1 else None
    at_upper = theorem33_bound(uk, max(u2k, uk)) if uk is not None and u2k < 1 else None
    if at_lower is None:
        note = (
            f"δ_2k ≥ {l2k:.3g} ≥ 1 (attained by an explicit support): Theorem 3.3's "
            "hypothesis fails and it says nothing about this layer"
        )
    elif at_upper is None:
        note = (
            "the bound at the lower ends holds only if δ is near its lower bound; the upper "
            "bounds on δ_2k reach 1, where the theorem no longer applies"
        )
    else:
        note = "the true bound lies between at_lower and at_upper"
    shape = None if shape is None else tuple(shape)

    def worst(b: DeltaBracket) -> dict[str, Any]:
        d = b.to_dict(shape)
        keep = ("worst_side", "worst_eigenvalue", "worst_support", "worst_support_entries")
        return {key.replace("worst_", ""): d[key] for key in keep if key in d}

    return {
        "k": delta_k.k,
        "delta_k": dk,
        "delta_2k": d2k,
        "theorem33_bound": {"at_lower": at_lower, "at_upper": at_upper, "note": note},
        "worst_support": {"delta_k": worst(delta_k), "delta_2k": worst(delta_2k)},
        "notes": sorted(set(delta_k.notes) | set(delta_2k.notes)),
    }
