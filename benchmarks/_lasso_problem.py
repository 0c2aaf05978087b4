r"""The l1 problem that the anchor benchmarks (SPORCO, scikit-learn) share, and the
"time to the same objective" protocol.

Problem: Algorithm 2's step 1, :math:`F(z) = \|x - \mathbf W^Tz\|_2^2 + \lambda\|z\|_1`
(:func:`cnninv.recovery.fista`'s form), on a conv layer with Gaussian unit-norm filters and
'valid' boundaries, for a signal :math:`x = \mathbf W^T z_0 + e`: a planted model-sparse
code (2x2 pooling blocks, a fraction of them active) plus Gaussian noise, with
:math:`\lambda = 0.1\,\lambda_{\max}` (:func:`cnninv.recovery.lam_max`).

Protocol (the same for every solver, so no solver is timed to a looser target):

1. a certified reference: cnninv's FISTA run until its relative duality gap is below
   ``ref_tol``; :math:`F^\star` is the smallest objective any solver reached, and the gap
   bounds how far it can be from the true minimum;
2. the target :math:`T = (1 + 10^{-3})\,F^\star`;
3. each solver's number of iterations to reach :math:`T`, every objective evaluated the same
   way (:func:`objective64`: float64, cnninv's ``lasso_objective``), then each solver
   timed for exactly that many iterations, set-up included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cnninv.operators import ConvOperator
from cnninv.recovery import fista, lam_max, lasso_objective
from cnninv.theory import sample_model_sparse

__all__ = ["Problem", "cnninv_iters_to", "make_problem", "objective64"]

REL_TARGET = 1e-3


@dataclass
class Problem:
    W: ConvOperator  # float32
    x: torch.Tensor  # (B, M, *input_size), float32
    lam: float
    W64: ConvOperator
    x64: torch.Tensor

    @property
    def n(self) -> tuple[int, ...]:
        return self.W.output_size


def make_problem(
    K: int,
    M: int,
    ell: int,
    maps: int | tuple[int, ...],
    *,
    batch: int = 1,
    density: float = 0.05,
    noise: float = 0.05,
    lam_fraction: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Problem:
    """``maps`` is the size of the code maps; the signal is ``maps + ell - 1`` ('valid')."""
    ndim = 1 if isinstance(maps, int) else len(maps)
    maps = (maps,) if isinstance(maps, int) else tuple(maps)
    size = tuple(m + ell - 1 for m in maps)
    W = ConvOperator.gaussian(
        K, M, ell, size if ndim > 1 else size[0], seed=seed, unit_norm_rows=True, device=device
    )
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    blocks = K * math.prod(math.ceil(m / 2) for m in maps)
    k = max(1, round(density * blocks))
    z0 = sample_model_sparse(batch, W.out_shape, k, 2, generator=gen, device=device)
    clean = W.rmatvec(z0)
    e = torch.randn(clean.shape, generator=gen, device=device)
    scale = noise * torch.linalg.vector_norm(clean, dim=tuple(range(1, clean.dim())))
    e = e * (scale / torch.linalg.vector_norm(e, dim=tuple(range(1, e.dim())))).view(
        -1, *([1] * (e.dim() - 1))
    )
    x = (clean + e).contiguous()
    lam = lam_fraction * float(lam_max(W, x).max())
    W64 = ConvOperator(W.weight.double(), W.input_size, W.stride, W.padding)
    return Problem(W, x, lam, W64, x.double())


def objective64(p: Problem, z: torch.Tensor | np.ndarray) -> np.ndarray:
    """:math:`F(z)` per sample in float64 (cnninv's ``lasso_objective``), for a code of shape
    ``(B, K, *n)`` or ``(K, *n)``."""
    zt = torch.as_tensor(np.asarray(z) if isinstance(z, np.ndarray) else z.detach().cpu())
    zt = zt.double().reshape(p.x.shape[0], *p.W.out_shape)
    return lasso_objective(p.W64, p.x64.cpu(), zt.to(p.x64.device), p.lam).cpu().numpy()


def cnninv_iters_to(
    p: Problem, target: np.ndarray, max_iter: int, lipschitz: float | None = None
) -> int:
    """The smallest iteration count at which :func:`cnninv.recovery.fista` (default options,
    ``tol=0`` so it does not stop on its own) is at or below ``target`` for every sample:
    read from one run's history (float32 objective), then checked in float64."""
    res = fista(p.W, p.x, p.lam, max_iter=max_iter, tol=0.0, lipschitz=lipschitz)
    obj = res.history_array("objective").cpu().double().numpy()  # (iters, B)
    hit = np.nonzero((obj <= target[None, :]).all(axis=1))[0]
    n = int(hit[0]) + 1 if hit.size else max_iter
    while n < max_iter:  # float32 history vs float64 check: step on until both agree
        z = fista(p.W, p.x, p.lam, max_iter=n, tol=0.0, lipschitz=lipschitz).z
        if (objective64(p, z) <= target).all():
            return n
        n += 1
    return n


# ----------------------------------------------------------------------------- PyLops


def pylops_operator(W: ConvOperator, dtype: str = "float32"):
    r"""PyLops's own operator for :math:`\mathbf W^T` of a 'valid' conv layer (one sample):
    per output channel ``m``, a ``ConvolveND`` over the code's channel and spatial axes
    with the filters ``w[:, m]`` (flipped along the channel axis, centred so that the first
    channel of the result sums over every code channel), kept by a ``Restriction`` to that
    channel, the channels stacked by ``VStack``, after a ``Pad`` of the code to the signal's
    size. The benchmark checks it against ``W.T`` before timing.
    """
    import pylops
    from pylops.signalprocessing import ConvolveND

    w = W.weight.detach().cpu().contiguous().numpy().astype(dtype)  # (K, M, *kernel)
    K, M = w.shape[:2]
    nd = w.ndim - 2
    n, N = tuple(W.output_size), tuple(W.input_size)
    dims = (K, *N)
    pad = pylops.Pad(
        (K, *n), ((0, 0), *[(0, b - a) for a, b in zip(n, N, strict=True)]), dtype=dtype
    )
    rows = []
    for m in range(M):
        h = np.ascontiguousarray(w[::-1, m])
        conv = ConvolveND(
            dims, h, offset=(K - 1, *([0] * nd)), axes=tuple(range(nd + 1)), dtype=dtype
        )
        rows.append(pylops.Restriction(dims, [0], axis=0, dtype=dtype) @ conv)
    return pylops.VStack(rows) @ pad


def pylops_fista_to_target(p: Problem, target: np.ndarray, cap: int) -> dict:
    """PyLops's ``fista`` (its defaults: step from ``Op.eigs``, i.e. ARPACK, as a user
    gets it) on each sample, to ``target``: the iterations it needs (from its own cost
    history, then checked in float64), and the time of a run of exactly that many,
    set-up and step included; a lower bound when ``cap`` iterations do not reach it."""
    import time

    from pylops.optimization.sparsity import fista as pylops_fista

    Op = pylops_operator(p.W)
    z = torch.randn(1, *p.W.out_shape, generator=torch.Generator().manual_seed(0))
    check = np.abs(Op @ z.numpy().ravel() - p.W.T(z).numpy().ravel()).max()
    scale = float(np.abs(p.W.T(z).numpy()).max()) or 1.0
    if check > 1e-4 * scale:
        raise RuntimeError(f"PyLops's operator and W^T differ (relative {check / scale:.2g})")
    xs = p.x.cpu().numpy().reshape(p.x.shape[0], -1)
    eps = p.lam / 2  # PyLops: (1/2)||y - Op x||^2 + eps ||x||_1, half of cnninv's
    iters = []
    for b, y in enumerate(xs):
        _, _, cost = pylops_fista(Op, y, niter=cap, eps=eps, tol=0.0)
        hit = np.nonzero(2 * np.asarray(cost) <= target[b])[0]
        iters.append(int(hit[0]) + 1 if hit.size else None)
    reached = all(i is not None for i in iters)
    n = [i if i is not None else cap for i in iters]
    t0 = time.perf_counter()
    codes = [pylops_fista(Op, y, niter=k, eps=eps, tol=0.0)[0] for y, k in zip(xs, n, strict=True)]
    seconds = time.perf_counter() - t0
    obj = objective64(p, np.stack(codes).astype(np.float64))
    return {
        "iterations": n,
        "reached": reached and bool((obj <= target * (1 + 1e-6)).all()),
        "s": seconds,
        "objective": obj.tolist(),
        "operator_check_rel": check / scale,
        "cap": cap,
    }
