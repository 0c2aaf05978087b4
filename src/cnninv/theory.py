r"""The paper's theory, and the empirical quantities that check it.

* :func:`theorem31_condition` — Theorem 3.1: Gaussian filters give :math:`\mathbf W^T`
  the model-RIP with constant :math:`\delta_k` with probability :math:`1-\epsilon` if
  :math:`M\ell^2/D \ge C\,\delta_k^{-2}\,(k(\log K + \log n) - \log\epsilon)`.
* :func:`theorem33_bound` — Theorem 3.3:
  :math:`\|\hat x - x\|/\|x\| \le \frac{5\delta_{2k}}{1-\delta_k}
  \sqrt{\frac{1+\delta_{2k}}{1-\delta_{2k}}}`.
* :func:`sample_model_sparse` — random model-k-sparse codes (§4.2).
* :func:`model_rip_ratios`, :func:`gram_ratios`, :func:`reconstruction_errors`,
  :func:`empirical_delta` — Figure 2's histograms and the constants they imply.
* :func:`coherence` — mutual coherence of a filter bank (Tables 3 and 6).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnninv._checks import check_finite, check_positive_int, make_generator
from cnninv.operators import ConvOperator
from cnninv.sparsity import Pool, _kernel, block_shape, model_sparse, naive_switches, unpool

__all__ = [
    "Theorem31",
    "coherence",
    "empirical_delta",
    "gram_ratios",
    "model_rip_ratios",
    "reconstruction_errors",
    "sample_model_sparse",
    "theorem31_condition",
    "theorem33_bound",
]


@dataclass(frozen=True)
class Theorem31:
    """Theorem 3.1 evaluated: ``ratio`` = :math:`M\\ell^2/D`, ``required`` = its right-hand
    side (the smallest :math:`M\\ell^2/D` that satisfies the condition), ``satisfied``, and
    ``min_channels``, the smallest :math:`M` that satisfies it for the given ``ell`` and ``D``."""

    ratio: float
    required: float
    satisfied: bool
    min_channels: int


def theorem31_condition(
    *,
    M: int,
    ell: int,
    D: int,
    K: int,
    k: int,
    delta: float,
    eps: float,
    C: float,
    stride: int = 1,
) -> Theorem31:
    r"""Check Theorem 3.1's sufficient condition
    :math:`M\ell^2/D \ge \frac{C}{\delta^2}(k(\log K + \log n) - \log \epsilon)`,
    with :math:`n = (D-\ell)/t + 1`. The constant ``C`` is not given by the paper: the
    caller supplies it.

    >>> r = theorem31_condition(M=32, ell=5, D=32, K=96, k=10, delta=0.5, eps=0.01, C=0.01)
    >>> round(r.ratio, 2), round(r.required, 3), r.satisfied
    (25.0, 3.343, True)
    """
    for name, v in (("M", M), ("ell", ell), ("D", D), ("K", K), ("k", k), ("stride", stride)):
        check_positive_int(v, name)
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    if not 0 < eps < 1:
        raise ValueError(f"eps must be in (0, 1), got {eps!r}")
    if not C > 0:
        raise ValueError(f"C must be positive, got {C!r}")
    if ell > D or (D - ell) % stride:
        raise ValueError(f"stride={stride} with ell={ell}, D={D} gives no integer n")
    if k > K:
        raise ValueError(f"k={k} exceeds the number of blocks K={K}")
    n = (D - ell) // stride + 1
    required = C / delta**2 * (k * (math.log(K) + math.log(n)) - math.log(eps))
    ratio = M * ell**2 / D
    return Theorem31(ratio, required, ratio >= required, max(1, math.ceil(required * D / ell**2)))


def theorem33_bound(delta_k: float, delta_2k: float) -> float:
    r"""Theorem 3.3's bound on :math:`\|\hat x - x\|_2/\|x\|_2`:
    :math:`\frac{5\delta_{2k}}{1-\delta_k}\sqrt{\frac{1+\delta_{2k}}{1-\delta_{2k}}}`.

    >>> round(theorem33_bound(0.05, 0.1), 4)
    0.5819
    """
    if not 0 <= delta_k <= delta_2k < 1:
        raise ValueError(
            f"Theorem 3.3 needs 0 <= delta_k <= delta_2k < 1, got delta_k={delta_k}, "
            f"delta_2k={delta_2k}"
        )
    return 5 * delta_2k / (1 - delta_k) * math.sqrt((1 + delta_2k) / (1 - delta_2k))


def sample_model_sparse(
    batch: int,
    shape: Sequence[int],
    k: int,
    pool: Pool = None,
    *,
    low: float = -1.0,
    high: float = 1.0,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    r"""Random model-k-sparse codes of shape ``(batch, K, *spatial)``.

    For each sample: ``k`` distinct blocks chosen uniformly, one position chosen uniformly
    in each, values uniform on ``[low, high]`` (the paper's :math:`[-1, 1]`). All samples
    are drawn at once (no Python loop over samples).
    """
    batch = check_positive_int(batch, "batch")
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"shape must be (K, n) or (K, H, W), got {shape}")
    spatial = shape[1:]
    kernel = _kernel(pool, spatial)
    blocks = block_shape(spatial, pool)
    per_map = math.prod(blocks)
    total = shape[0] * per_map
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= total:
        raise ValueError(f"k must be between 1 and the number of blocks ({total}), got k={k!r}")
    if not low < high:
        raise ValueError(f"need low < high, got low={low}, high={high}")
    gen = make_generator(seed, generator, device)
    chosen = torch.rand((batch, total), generator=gen, device=device).topk(k, dim=1).indices
    channel, region = chosen // per_map, chosen % per_map
    plane = math.prod(spatial)
    flat = channel * plane
    for axis in range(len(spatial)):
        inner = math.prod(blocks[axis + 1 :])
        r = (region // inner) % blocks[axis]
        start = r * kernel[axis]
        extent = torch.clamp(spatial[axis] - start, max=kernel[axis])
        offset = (torch.rand((batch, k), generator=gen, device=device) * extent).long()
        flat = flat + (start + torch.minimum(offset, extent - 1)) * math.prod(spatial[axis + 1 :])
    values = torch.rand((batch, k), generator=gen, device=device, dtype=dtype) * (high - low) + low
    z = torch.zeros((batch, shape[0] * plane), dtype=dtype, device=device)
    z.scatter_(1, flat, values)
    return z.view(batch, *shape)


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    # reduce over every non-batch axis: no copy of a channels-last tensor (flatten(1) copies)
    return torch.linalg.vector_norm(t, dim=tuple(range(1, t.dim())))


def _check_code(W: ConvOperator, z: torch.Tensor) -> torch.Tensor:
    zb, _ = W._batch(z, W.out_shape, "z")
    check_finite(zb, "z")
    if bool((_per_sample_norm(zb) == 0).any()):
        raise ValueError("z contains an all-zero code; the ratios are undefined")
    return zb.to(W.weight.dtype)


def model_rip_ratios(W: ConvOperator, z: torch.Tensor) -> torch.Tensor:
    r""":math:`\|\mathbf W^T z\|_2 / \|z\|_2` per sample (eq. (1); Figure 2(a), Figure 3)."""
    zb = _check_code(W, z)
    return _per_sample_norm(W.rmatvec(zb)) / _per_sample_norm(zb)


def gram_ratios(W: ConvOperator, z: torch.Tensor, restrict: bool = True) -> torch.Tensor:
    r""":math:`\|\mathbf W_\Omega \mathbf W^T z\|_2/\|z\|_2` per sample, with
    :math:`\Omega=\mathrm{supp}(z)` (Lemma B.1, eqs. (5)–(6); Figure 2(b)).

    ``restrict=False`` gives the unrestricted :math:`\|\mathbf W\mathbf W^T z\|/\|z\|`,
    which Figure 2(b)'s caption writes but which grows with the redundancy :math:`Kn/MD`.
    """
    zb = _check_code(W, z)
    h = W.matvec(W.rmatvec(zb))
    if restrict:
        h = h * (zb != 0)
    return _per_sample_norm(h) / _per_sample_norm(zb)


def reconstruction_errors(
    W: ConvOperator,
    x: torch.Tensor,
    k: int | None,
    pool: Pool = None,
    *,
    variant: str = "abs",
    switches: str = "known",
) -> torch.Tensor:
    r""":math:`\|\hat x - x\|_2/\|x\|_2` with :math:`\hat x = \mathbf W^T\mathbb M(\mathbf W x, k)`
    (Theorem 3.3; Figure 2(c)).

    ``switches="known"`` unpools with the pooling switches (IHT's one iteration);
    ``"naive"`` puts each pooled value at the top-left of its block, as the paper's §4
    describes for its experiments.
    """
    if switches not in ("known", "naive"):
        raise ValueError(f"switches must be 'known' or 'naive', got {switches!r}")
    xb, _ = W._batch(x, W.in_shape, "x")
    check_finite(xb, "x")
    xb = xb.to(W.weight.dtype)
    proj = model_sparse(W.matvec(xb), k, pool, variant=variant)
    code = proj.code
    if switches == "naive":
        sw = naive_switches(proj.values.shape, pool, W.output_size, device=xb.device)
        code = unpool(proj.values, sw, W.output_size)
    return _per_sample_norm(W.rmatvec(code) - xb) / _per_sample_norm(xb)


def empirical_delta(ratios: torch.Tensor, squared: bool = True) -> float:
    r"""The smallest :math:`\delta` consistent with the observed ratios.

    For :math:`r=\|\Phi z\|/\|z\|`, eq. (1) needs :math:`1-\delta\le r^2\le 1+\delta`, so
    :math:`\delta \ge \max(r_{\max}^2-1,\ 1-r_{\min}^2)` (``squared=True``); for the Gram
    ratios of eqs. (5)–(6), :math:`\delta\ge\max(r_{\max}-1,\ 1-r_{\min})`
    (``squared=False``). Computed from samples, it is a **lower bound** on the true
    :math:`\delta_k`, which is a supremum over all model-k-sparse codes.
    """
    r = torch.as_tensor(ratios, dtype=torch.float64)
    if r.numel() == 0:
        raise ValueError("ratios is empty")
    check_finite(r, "ratios")
    r = r**2 if squared else r
    return max(float(r.max()) - 1.0, 1.0 - float(r.min()), 0.0)


def coherence(weight: torch.Tensor, shifts: bool = False, stride: int = 1) -> float:
    r"""Mutual coherence of a filter bank ``(K, M, *kernel)``.

    Each filter is normalised to unit :math:`\ell_2` norm over channels and taps.
    ``shifts=False``: :math:`\max_{i\ne j} |\langle w_i, w_j\rangle|` (the paper's footnote 8
    applied to the filters). ``shifts=True``: the coherence of the rows of the conv matrix
    :math:`\mathbf W` itself — the maximum over all relative shifts (multiples of ``stride``,
    partial overlaps included) of :math:`|\langle w_i, S w_j\rangle|`, excluding only a
    filter against itself at shift zero.
    """
    if not isinstance(weight, torch.Tensor) or weight.dim() not in (3, 4):
        raise ValueError("weight must have shape (K, M, ell) or (K, M, ell, ell)")
    check_finite(weight, "weight")
    K = weight.shape[0]
    if K < 2 and not shifts:
        raise ValueError("coherence needs at least two filters")
    w = weight.to(torch.float64) if weight.device.type == "cpu" else weight.double()
    norms = w.flatten(1).norm(dim=1)
    if bool((norms == 0).any()):
        raise ValueError("weight contains an all-zero filter; coherence is undefined")
    w = w / norms.view(-1, *([1] * (w.dim() - 1)))
    if not shifts:
        g = w.flatten(1) @ w.flatten(1).T
        g.fill_diagonal_(0)
        return float(g.abs().max())
    ndim = w.dim() - 2
    kernel = w.shape[2:]
    pad = [e - 1 for e in kernel]
    conv = F.conv1d if ndim == 1 else F.conv2d
    # out[i, j, s] = <w_i shifted by s, w_j>, for every lag s in [-(ell-1), ell-1]
    g = conv(w, w, padding=pad)
    centre = tuple(e - 1 for e in kernel)
    diag = torch.arange(K)
    g[(diag, diag, *(torch.full_like(diag, c) for c in centre))] = 0
    if stride > 1:
        idx = [torch.arange(c % stride, 2 * c + 1, stride) for c in centre]
        g = g[(slice(None), slice(None), *torch.meshgrid(*idx, indexing="ij"))]
    return float(g.abs().max())
