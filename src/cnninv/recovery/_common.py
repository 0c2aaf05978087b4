"""What the solvers share: the checks of an operator and its signals, codes and masks, a
few per-sample kernels, and the history of a run."""

from __future__ import annotations

from typing import ClassVar

import torch

from cnninv._checks import as_batch, check_number
from cnninv.operators import LinearOperator

__all__ = [
    "CRITERIA",
    "HistoryMixin",
    "bcast",
    "check_code",
    "check_criterion",
    "check_lipschitz",
    "check_mask",
    "check_norm",
    "check_operator",
    "check_signal",
    "dims",
    "safe_div",
]


CRITERIA = ("gap", "rel_change")


def check_operator(W: object) -> LinearOperator:
    if not isinstance(W, LinearOperator):
        raise ValueError(f"W must be a LinearOperator, got {type(W).__name__}")
    return W


def check_signal(W: object, x: object) -> tuple[torch.Tensor, bool]:
    """``x`` ``(..., *W.in_shape)`` as a finite batch of ``W``'s dtype, on its device; and
    whether it was one sample."""
    W = check_operator(W)
    xb, _ = as_batch(x, W.in_shape, "x", dtype=W.dtype, device=W.device, finite=True)
    return xb, x.dim() == len(W.in_shape)


def check_code(
    W: LinearOperator, t: object, name: str, batch: int, required: bool = False
) -> torch.Tensor | None:
    """A code ``(..., *W.out_shape)`` (or None, unless ``required``) as a finite batch of
    ``batch`` samples."""
    if t is None and not required:
        return None
    tb, _ = as_batch(t, W.out_shape, name, dtype=W.dtype, device=W.device, finite=True)
    if tb.shape[0] != batch:
        raise ValueError(f"{name} has batch {tb.shape[0]} but x has {batch}")
    return tb


def check_mask(W: LinearOperator, mask: object, batch: int) -> torch.Tensor | None:
    """A boolean support mask, one per sample or one for all, as ``(batch, *out_shape)``."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        kind = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a boolean tensor, got {kind}")
    if tuple(mask.shape) == W.out_shape:  # one mask for every sample
        mask = mask.expand(batch, *W.out_shape)
    if tuple(mask.shape) != (batch, *W.out_shape):
        raise ValueError(
            f"mask: expected shape {W.out_shape} or {(batch, *W.out_shape)}, "
            f"got {tuple(mask.shape)}"
        )
    if mask.device != W.device:
        raise ValueError(f"mask is on {mask.device} but W is on {W.device}")
    return mask


def check_criterion(criterion: str, tol: float, lam: float) -> None:
    if not isinstance(criterion, str) or criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    check_number(tol, "tol", minimum=0.0)
    if criterion == "gap" and lam == 0:
        raise ValueError(
            "criterion='gap' needs lam > 0 (for lam = 0 the dual point is 0 and the relative "
            "gap stays 1); use criterion='rel_change' for least squares"
        )


def check_lipschitz(W: LinearOperator, lipschitz: object) -> tuple[float, str]:
    r"""FISTA's :math:`L` and where it came from: the given one, checked (``"given"``), or
    :math:`2\|\mathbf W\|^2` from :meth:`~cnninv.operators.LinearOperator.norm_sq_estimate`
    (``"dft"``: the filters' DFTs, a proven bound; ``"lanczos"``: 1.02 times the Lanczos
    estimate), computed once per operator."""
    if lipschitz is None:
        est = W.norm_sq_estimate()
        L = 2.0 * est.value
        return (L if L > 0 else 1.0), est.method  # W = 0: any step, z -> 0
    L = check_number(lipschitz, "lipschitz", positive=True)
    if L > torch.finfo(W.dtype).max:
        raise ValueError(f"lipschitz={lipschitz!r} does not fit in W's dtype {W.dtype}")
    return L, "given"


def dims(t: torch.Tensor) -> tuple[int, ...]:
    """Every axis but the batch axis (reducing over them needs no copy, whatever the
    layout; ``flatten(1)`` copies a channels-last tensor)."""
    return tuple(range(1, t.dim()))


def bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-sample ``(B,)`` tensor shaped to broadcast against ``like``."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def safe_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a / b``, and 0 where ``b`` is 0."""
    return torch.where(b > 0, a / b.clamp_min(torch.finfo(b.dtype).tiny), torch.zeros_like(a))


def check_norm(norm: torch.Tensor, name: str) -> None:
    """The per-sample norms of an input must be finite: else the relative quantities of the
    history would be NaN."""
    if not bool(torch.isfinite(norm).all()):
        raise ValueError(f"{name} is too large: its norm overflows {norm.dtype}")


class HistoryMixin:
    """``history_array`` for a solver's result, whose ``history`` is a list of ``_stat``
    named tuples (the iteration first, then per-sample tensors ``(B,)``)."""

    _stat: ClassVar[type]
    _solver: ClassVar[str]
    history: list

    def history_array(self, name: str) -> torch.Tensor:
        """Stack one field of the history into an ``(n_iter, B)`` tensor."""
        fields = self._stat._fields[1:]
        if not isinstance(name, str) or name not in fields:
            raise ValueError(f"unknown history field {name!r}; one of {fields}")
        rows = [getattr(s, name) for s in self.history]
        if not rows:
            raise ValueError("the history is empty")
        if any(r is None for r in rows):
            raise ValueError(f"{name!r} was not recorded (give z_true to {self._solver})")
        return torch.stack(rows)
