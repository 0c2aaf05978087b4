r"""The model-RIP, measured: random model-k-sparse codes (§4.2) and the ratios of Figure 2
and Figure 3, and the constants they imply.

* :func:`sample_model_sparse` — random model-k-sparse codes;
* :func:`model_rip_ratios` — :math:`\|\mathbf W^T z\|/\|z\|` (eq. (1));
* :func:`gram_ratios` — :math:`\|\mathbf W_\Omega\mathbf W^T z\|/\|z\|` (Lemma B.1);
* :func:`reconstruction_errors` — :math:`\|\mathbf W^T\mathbb M(\mathbf W x,k)-x\|/\|x\|`
  (Theorem 3.3);
* :func:`empirical_delta` — the smallest :math:`\delta` consistent with ratios.

Every function takes any :class:`~cnninv.operators.LinearOperator` ``W``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from cnninv._checks import (
    allocating,
    as_batch,
    check_bool,
    check_finite,
    check_float_dtype,
    check_number,
    check_positive_int,
    make_generator,
    resolve_device,
)
from cnninv.metrics import per_sample_norm
from cnninv.operators import LinearOperator
from cnninv.sparsity import (
    Pool,
    block_shape,
    check_k,
    model_sparse,
    naive_switches,
    num_blocks,
    pool_shape,
    unpool,
)

__all__ = [
    "empirical_delta",
    "gram_ratios",
    "model_rip_ratios",
    "reconstruction_errors",
    "sample_model_sparse",
]


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
    r"""Random model-k-sparse codes of shape ``(batch, *shape)``, ``shape`` being
    ``(K, n)``, ``(K, H, W)`` or ``(N,)`` (every entry a block).

    For each sample: ``k`` distinct blocks chosen uniformly, one position chosen uniformly
    in each, values uniform on ``[low, high]`` (the paper's :math:`[-1, 1]`). All samples
    are drawn at once (no Python loop over samples).
    """
    batch = check_positive_int(batch, "batch")
    total = num_blocks(shape, pool)  # checks shape and pool
    shape = tuple(int(s) for s in shape)
    k = check_k(k, shape, pool)
    if k is None:
        raise ValueError("k must be an integer: sample_model_sparse draws k blocks, got None")
    low = check_number(low, "low")
    high = check_number(high, "high")
    if not low < high:
        raise ValueError(f"need low < high, got low={low}, high={high}")
    dtype = check_float_dtype(dtype)
    device = resolve_device(device)
    spatial = shape[1:]
    kernel = pool_shape(spatial, pool)
    blocks = block_shape(spatial, pool)
    gen = make_generator(seed, generator, device)
    plane = math.prod(spatial)
    numel = shape[0] * plane
    # positions fit int32 below 2**31 entries: half the memory of torch's int64 indices
    index = torch.int32 if numel < 2**31 else torch.long
    with allocating(f"batch={batch}, shape={shape}"):
        z = torch.zeros((batch, numel), dtype=dtype, device=device)
        chosen = torch.empty((batch, k), dtype=index, device=device)
        rows = _row_chunks(batch, total, k, device)
        # 1. k distinct blocks per sample: those of the k largest of `total` uniforms
        for sl in rows:
            n = sl.stop - sl.start
            chosen[sl] = torch.rand((n, total), generator=gen, device=device).topk(k, dim=1)[1]
        # 2. one position in each block, axis by axis (every block's draw for an axis, then
        # the next axis); with blocks of one entry the block is the position
        whole = all(size == 1 for size in kernel)
        flat = chosen if whole else torch.empty_like(chosen)
        for axis in range(len(spatial)):
            inner, step = math.prod(blocks[axis + 1 :]), math.prod(spatial[axis + 1 :])
            for sl in rows:
                u = torch.rand((sl.stop - sl.start, k), generator=gen, device=device)
                if not whole:
                    _place(flat[sl], chosen[sl], u, axis, spatial, kernel, blocks, inner, step)
        # 3. the values, uniform on [low, high]
        for sl in rows:
            n = sl.stop - sl.start
            values = (
                torch.rand((n, k), generator=gen, device=device, dtype=dtype) * (high - low) + low
            )
            check_finite(values, f"the sampled values (low, high too large for {dtype})")
            z[sl].scatter_(1, flat[sl].long(), values)
    return z.view(batch, *shape)


#: temporaries of one chunk of rows in :func:`sample_model_sparse` (its uniforms and topk)
_CHUNK_BYTES = 2**26


def _row_chunks(batch: int, total: int, k: int, device: torch.device) -> list[slice]:
    """Rows drawn together. On the CPU torch draws a tensor's uniforms row after row, so
    drawing a few rows at a time gives the same numbers as all at once and bounds the
    temporaries; elsewhere (counter-based generators) every row is drawn at once."""
    if device.type != "cpu":
        return [slice(0, batch)]
    per = max(1, _CHUNK_BYTES // (4 * total + 24 * k))
    return [slice(i, min(i + per, batch)) for i in range(0, batch, per)]


def _place(
    flat: torch.Tensor,
    chosen: torch.Tensor,
    u: torch.Tensor,
    axis: int,
    spatial: tuple[int, ...],
    kernel: tuple[int, ...],
    blocks: tuple[int, ...],
    inner: int,
    step: int,
) -> None:
    """Add, in place, the coordinate along ``axis`` of the position drawn by ``u`` in each
    chosen block to the flat index ``flat`` (the channel's offset on the first axis)."""
    chosen = chosen.long()
    per_map = math.prod(blocks)
    region = chosen % per_map
    start = (region // inner) % blocks[axis] * kernel[axis]
    if spatial[axis] % kernel[axis] == 0:  # every block whole along this axis
        offset = (u * kernel[axis]).long().clamp_(max=kernel[axis] - 1)
    else:  # the last block is cut by the border: a position inside what is left
        extent = torch.clamp(spatial[axis] - start, max=kernel[axis])
        offset = torch.minimum((u * extent).long(), extent - 1)
    coord = (start + offset) * step
    if axis == 0:
        coord += chosen // per_map * math.prod(spatial)
        flat.copy_(coord)
    else:
        flat += coord


def _check_code(W: object, z: object) -> torch.Tensor:
    if not isinstance(W, LinearOperator):
        raise ValueError(f"W must be a LinearOperator, got {type(W).__name__}")
    zb, _ = as_batch(z, W.out_shape, "z", dtype=W.dtype, device=W.device, finite=True)
    if bool((per_sample_norm(zb) == 0).any()):
        raise ValueError("z contains an all-zero code; the ratios are undefined")
    return zb


def _ratio(num: torch.Tensor, den: torch.Tensor, what: str) -> torch.Tensor:
    out = num / den
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{what} overflowed {out.dtype}: z or W is too large")
    return out


def model_rip_ratios(W: LinearOperator, z: torch.Tensor) -> torch.Tensor:
    r""":math:`\|\mathbf W^T z\|_2 / \|z\|_2` per sample (eq. (1); Figure 2(a), Figure 3)."""
    zb = _check_code(W, z)
    return _ratio(per_sample_norm(W.rmatvec(zb)), per_sample_norm(zb), "model_rip_ratios")


def gram_ratios(W: LinearOperator, z: torch.Tensor, restrict: bool = True) -> torch.Tensor:
    r""":math:`\|\mathbf W_\Omega \mathbf W^T z\|_2/\|z\|_2` per sample, with
    :math:`\Omega=\mathrm{supp}(z)` (Lemma B.1, eqs. (5)–(6); Figure 2(b)).

    ``restrict=False`` gives the unrestricted :math:`\|\mathbf W\mathbf W^T z\|/\|z\|`,
    which Figure 2(b)'s caption writes but which grows with the redundancy :math:`Kn/MD`.
    """
    zb = _check_code(W, z)
    check_bool(restrict, "restrict")
    h = W.matvec(W.rmatvec(zb))
    if restrict:
        h = h * (zb != 0)
    return _ratio(per_sample_norm(h), per_sample_norm(zb), "gram_ratios")


def reconstruction_errors(
    W: LinearOperator,
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
    describes for its experiments. ``ValueError`` when a sample of ``x`` is all zero (its
    relative error is undefined).
    """
    if not isinstance(switches, str) or switches not in ("known", "naive"):
        raise ValueError(f"switches must be 'known' or 'naive', got {switches!r}")
    if not isinstance(W, LinearOperator):
        raise ValueError(f"W must be a LinearOperator, got {type(W).__name__}")
    check_k(k, W.out_shape, pool)
    xb, _ = as_batch(x, W.in_shape, "x", dtype=W.dtype, device=W.device, finite=True)
    if bool((per_sample_norm(xb) == 0).any()):
        raise ValueError("x has an all-zero sample: its relative error is undefined")
    proj = model_sparse(W.matvec(xb), k, pool, variant=variant)
    code = proj.code
    if switches == "naive":
        spatial = tuple(W.out_shape[1:])
        sw = naive_switches(proj.values.shape, pool, spatial, device=xb.device)
        code = unpool(proj.values, sw, spatial)
    # the ratio of norms, as model_rip_ratios (reduced in memory order, like the solvers)
    return _ratio(
        per_sample_norm(W.rmatvec(code) - xb), per_sample_norm(xb), "reconstruction_errors"
    )


def empirical_delta(ratios: torch.Tensor, squared: bool = True) -> float:
    r"""The smallest :math:`\delta` consistent with the observed ratios.

    For :math:`r=\|\Phi z\|/\|z\|`, eq. (1) needs :math:`1-\delta\le r^2\le 1+\delta`, so
    :math:`\delta \ge \max(r_{\max}^2-1,\ 1-r_{\min}^2)` (``squared=True``); for the Gram
    ratios of eqs. (5)–(6), :math:`\delta\ge\max(r_{\max}-1,\ 1-r_{\min})`
    (``squared=False``). Computed from samples, it is a **lower bound** on the true
    :math:`\delta_k`, which is a supremum over all model-k-sparse codes.
    """
    check_bool(squared, "squared")
    if isinstance(ratios, torch.Tensor) and (ratios.is_complex() or ratios.dtype == torch.bool):
        raise ValueError(f"ratios must be real numbers, got dtype {ratios.dtype}")
    try:
        r = torch.as_tensor(ratios, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"ratios must be a tensor or a sequence of numbers: {exc}") from exc
    if r.numel() == 0:
        raise ValueError("ratios is empty")
    check_finite(r, "ratios")
    if bool((r < 0).any()):
        raise ValueError("ratios must be non-negative (they are ratios of norms)")
    r = r**2 if squared else r
    delta = max(float(r.max()) - 1.0, 1.0 - float(r.min()), 0.0)
    if not math.isfinite(delta):
        raise ValueError("ratios are too large: their squares overflow float64")
    return delta
