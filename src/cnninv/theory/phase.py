r"""Theorem 3.1 measured: its scaling variable, one grid point of the phase transition, and
the fit of its constant :math:`C`.

Theorem 3.1 says that Gaussian filters (entries :math:`N(0,1)/\sqrt{M\ell}`) give
:math:`\mathbf W^T` the model-RIP with constant :math:`\delta_k`, with probability
:math:`1-\epsilon`, once

.. math::

    \frac{M\ell^2}{D} \ge \frac{C}{\delta_k^2}\Big(k(\log K + \log n) - \log\epsilon\Big),

that is :math:`\delta_k^2 \le C\,x` with
:math:`x = (k(\log K+\log n)-\log\epsilon)/(M\ell^2/D)` (:func:`scaling_variable`). Measured
:math:`\delta_k` against :math:`x` should then lie under a line through 0 of slope
:math:`C`; on log–log axes, a line of slope 1.

* :func:`phase_point` — one grid point: a Gaussian layer of the given sizes, its
  :math:`\delta_k` bracketed (:func:`cnninv.theory.delta_bracket`), and how often IHT
  recovers the support of planted model-k-sparse codes exactly, after one iteration (the
  CNN layer) and converged (normalised IHT). A pure function of a plain dict: one Dask
  task.
* :func:`fit_constant` — :math:`C` by least squares of :math:`\delta_k^2 = C x` through 0,
  with a bootstrap interval, the per-point ratios :math:`\delta_k^2/x`, the smallest
  :math:`C` consistent with every point, and the log–log slope.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from cnninv._checks import check_number, check_positive_int, make_generator
from cnninv.operators import ConvOperator
from cnninv.recovery import iht
from cnninv.theory.delta import delta_bracket
from cnninv.theory.rip import sample_model_sparse

__all__ = ["POINT_KEYS", "fit_constant", "phase_point", "scaling_variable"]

#: The sizes that define a grid point (the rest of a spec is effort and seeds).
POINT_KEYS = ("M", "ell", "D", "K", "k", "t")


def _n(D: int, ell: int, t: int) -> int:
    if ell > D or (D - ell) % t:
        raise ValueError(f"stride t={t} with ell={ell}, D={D} gives no integer n = (D - ell)/t + 1")
    return (D - ell) // t + 1


def scaling_variable(
    *, M: int, ell: int, D: int, K: int, k: int, t: int = 1, eps: float = 0.01
) -> float:
    r"""Theorem 3.1's :math:`x = (k(\log K + \log n) - \log\epsilon)/(M\ell^2/D)`: the
    theorem gives :math:`\delta_k^2 \le C x`.

    >>> round(scaling_variable(M=32, ell=5, D=32, K=96, k=10), 3)
    3.343
    """
    for name, v in (("M", M), ("ell", ell), ("D", D), ("K", K), ("k", k), ("t", t)):
        check_positive_int(v, name)
    eps = check_number(eps, "eps")
    if not 0 < eps < 1:
        raise ValueError(f"eps must be in (0, 1), got {eps!r}")
    if k > K:
        raise ValueError(f"k={k} exceeds the number of blocks K={K}")
    n = _n(D, ell, t)
    return (k * (math.log(K) + math.log(n)) - math.log(eps)) / (M * ell**2 / D)


def phase_point(spec: Mapping[str, Any]) -> dict[str, Any]:
    """One grid point (see the module docstring). ``spec`` holds the sizes
    :data:`POINT_KEYS` and ``eps``, ``seed``, ``samples``, ``starts``, ``sweeps`` (δ's
    effort), ``trials`` (planted codes), ``iters`` (IHT iterations at most to converge).
    Returns the sizes, ``n``, ``x``, ``delta_lower``, ``delta_upper`` (None if not
    computed), ``delta_lower_random_codes``, ``success_1``, ``success_conv``, ``seconds``."""
    started = time.perf_counter()
    M, ell, D, K, k, t = (int(spec[key]) for key in POINT_KEYS)
    x = scaling_variable(M=M, ell=ell, D=D, K=K, k=k, t=t, eps=spec["eps"])
    seed = int(spec["seed"])
    W = ConvOperator.gaussian(K, M, ell, D, t, seed=seed, dtype=torch.float64)
    b = delta_bracket(
        W,
        k,
        samples=int(spec["samples"]),
        starts=int(spec["starts"]),
        sweeps=int(spec["sweeps"]),
        tpm_iters=int(spec["sweeps"]),
        seed=seed + 1,
    )
    trials = int(spec["trials"])
    gen = make_generator(seed + 2, None, "cpu")
    z = sample_model_sparse(trials, W.out_shape, k, generator=gen, dtype=torch.float64)
    x_sig = W.T(z)
    truth = (z != 0).flatten(1)

    def exact(res) -> float:
        found = (res.z != 0).flatten(1)
        return float((found == truth).all(dim=1).double().mean())

    one = iht(W, x_sig, k, max_iter=1)
    conv = iht(W, x_sig, k, max_iter=int(spec["iters"]), step="normalized", tol=1e-9)
    return {
        **{key: int(spec[key]) for key in POINT_KEYS},
        "n": W.output_size[0],
        "ratio": M * ell**2 / D,
        "x": x,
        "delta_lower": b.lower_search,
        "delta_upper": b.upper_babel,
        "delta_lower_sampled": b.lower_sampled,
        "delta_lower_random_codes": b.lower_random_codes,
        "success_1": exact(one),
        "success_conv": exact(conv),
        "iht_iterations": conv.n_iter,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The least-squares slope of log y against log x, exactly rounded sums
    (``math.fsum``): the same points give the same bits whatever their order and memory
    (LAPACK's least squares did not: its last bit followed the arrays' alignment)."""
    lx = [math.log(v) for v in xs]
    ly = [math.log(v) for v in ys]
    mx, my = math.fsum(lx) / len(lx), math.fsum(ly) / len(ly)
    sxx = math.fsum((a - mx) ** 2 for a in lx)
    if sxx == 0:
        return 0.0  # every point at the same x: no slope to fit
    return math.fsum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sxx


def fit_constant(
    points: Sequence[Mapping[str, Any]],
    *,
    key: str = "delta_lower",
    boot: int = 2000,
    level: float = 0.9,
    seed: int = 0,
) -> dict[str, Any]:
    r""":math:`C` of :math:`\delta_k^2 = C x` by least squares through 0 over ``points``
    (each with ``x`` and ``key``), with a ``level`` bootstrap interval over the points;
    ``per_point_min``/``max`` of :math:`\delta^2/x`, ``C_needed`` (the smallest :math:`C`
    under which no point's :math:`\delta` exceeds the theorem's), and the log–log slope
    of :math:`\delta^2` against :math:`x` (1 if the theorem's scaling holds)."""
    check_positive_int(boot, "boot")
    level = check_number(level, "level")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    rows = [(float(p["x"]), float(p[key])) for p in points if p.get(key) is not None]
    rows = [(x, d) for x, d in rows if x > 0 and d > 0 and math.isfinite(d)]
    if len(rows) < 2:
        raise ValueError(f"fit_constant needs at least two points with x > 0 and {key} > 0")
    x = torch.tensor([r[0] for r in rows], dtype=torch.float64)
    y = torch.tensor([r[1] for r in rows], dtype=torch.float64) ** 2

    def slope(idx: torch.Tensor) -> torch.Tensor:
        xs, ys = x[idx], y[idx]
        return (xs * ys).sum(-1) / (xs * xs).sum(-1)

    gen = make_generator(seed, None, "cpu")
    idx = torch.randint(0, len(rows), (boot, len(rows)), generator=gen)
    boots = slope(idx)
    q = torch.quantile(boots, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=x.dtype))
    ratios = y / x
    return {
        "C": float(slope(torch.arange(len(rows)))),
        "C_low": float(q[0]),
        "C_high": float(q[1]),
        "ci": f"{round(100 * level)}%",
        "per_point_min": float(ratios.min()),
        "per_point_max": float(ratios.max()),
        "C_needed": float(ratios.max()),
        "loglog_slope": _loglog_slope([r[0] for r in rows], [r[1] ** 2 for r in rows]),
        "points_used": len(rows),
        "key": key,
    }
