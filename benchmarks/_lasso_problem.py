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
