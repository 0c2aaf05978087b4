"""Parameter checks shared by the public functions (each raises ``ValueError`` naming the
parameter) and explicit randomness."""

from __future__ import annotations

import torch

__all__ = ["check_finite", "check_positive_int", "make_generator", "resolve_device"]


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``t`` holds NaN or inf."""
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf")


def check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def make_generator(
    seed: int | None,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> torch.Generator:
    """The generator to draw from: ``generator`` if given, else a new one seeded by ``seed``
    (a fresh non-deterministic seed when ``seed`` is None). Never the global RNG."""
    if generator is not None:
        return generator
    gen = torch.Generator(device=torch.device(device))
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``'auto'``/None picks CUDA when present; an unavailable device is a ``ValueError``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a valid torch device") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} requested but MPS is not available")
    return dev
