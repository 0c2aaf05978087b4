r"""Theorems 3.1 and 3.3 of Gilbert et al. (2017), evaluated.

* :func:`theorem31_condition` — Theorem 3.1: Gaussian filters give :math:`\mathbf W^T`
  the model-RIP with constant :math:`\delta_k` with probability :math:`1-\epsilon` if
  :math:`M\ell^2/D \ge C\,\delta_k^{-2}\,(k(\log K + \log n) - \log\epsilon)`.
* :func:`theorem33_bound` — Theorem 3.3:
  :math:`\|\hat x - x\|/\|x\| \le \frac{5\delta_{2k}}{1-\delta_k}
  \sqrt{\frac{1+\delta_{2k}}{1-\delta_{2k}}}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cnninv._checks import check_number, check_positive_int

__all__ = ["Theorem31", "theorem31_condition", "theorem33_bound"]


@dataclass(frozen=True)
class Theorem31:
    """Theorem 3.1 evaluated: ``ratio`` = :math:`M\\ell^2/D`, ``required`` = its right-hand
    side (the smallest :math:`M\\ell^2/D` that satisfies the condition), ``satisfied``, and
    ``min_channels``, the smallest :math:`M` that satisfies it for the given ``ell`` and ``D``."""

    ratio: float
    required: float
    satisfied: bool
    min_channels: int


def _open_unit(value: object, name: str) -> float:
    v = check_number(value, name)
    if not 0 < v < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return v


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
    delta = _open_unit(delta, "delta")
    eps = _open_unit(eps, "eps")
    C = check_number(C, "C", positive=True)
    if ell > D or (D - ell) % stride:
        raise ValueError(f"stride={stride} with ell={ell}, D={D} gives no integer n")
    if k > K:
        raise ValueError(f"k={k} exceeds the number of blocks K={K}")
    n = (D - ell) // stride + 1
    try:
        required = C / delta**2 * (k * (math.log(K) + math.log(n)) - math.log(eps))
        ratio = M * ell**2 / D
        min_channels = max(1, math.ceil(required * D / ell**2))
    except (OverflowError, ZeroDivisionError) as exc:
        raise ValueError(
            f"Theorem 3.1's condition overflows a float for these values ({exc}): a "
            "delta too small, or C or the sizes too large"
        ) from exc
    return Theorem31(ratio, required, ratio >= required, min_channels)


def theorem33_bound(delta_k: float, delta_2k: float) -> float:
    r"""Theorem 3.3's bound on :math:`\|\hat x - x\|_2/\|x\|_2`:
    :math:`\frac{5\delta_{2k}}{1-\delta_k}\sqrt{\frac{1+\delta_{2k}}{1-\delta_{2k}}}`.

    >>> round(theorem33_bound(0.05, 0.1), 4)
    0.5819
    """
    dk = check_number(delta_k, "delta_k")
    d2k = check_number(delta_2k, "delta_2k")
    if not 0 <= dk <= d2k < 1:
        raise ValueError(
            f"Theorem 3.3 needs 0 <= delta_k <= delta_2k < 1, got delta_k={delta_k}, "
            f"delta_2k={delta_2k}"
        )
    return 5 * d2k / (1 - dk) * math.sqrt((1 + d2k) / (1 - d2k))
