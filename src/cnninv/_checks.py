"""Parameter checks shared by the public functions (each raises ``ValueError`` naming the
parameter) and explicit randomness.

These are the library's own helpers: every public function validates its arguments with
them and then calls unchecked kernels, so that a bad value is one ``ValueError`` with the
parameter's name, never a ``TypeError``, ``RuntimeError`` or ``IndexError`` from deep in
torch.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
from collections.abc import Iterator, Sequence

import torch

__all__ = [
    "allocating",
    "as_batch",
    "available_memory",
    "check_bool",
    "check_finite",
    "check_float_dtype",
    "check_int",
    "check_memory",
    "check_number",
    "check_positive_int",
    "check_seed",
    "int_tuple",
    "is_int",
    "is_number",
    "make_generator",
    "resolve_device",
]

_DEVICE_TYPES = ("cpu", "cuda", "mps")
_MAX_SIZE = 2**31 - 1  # a size along one axis (of a map, a filter, a stride): torch's int32


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``t`` holds NaN or inf.

    One reduction, :math:`\\max|t|`, which is NaN when any entry is NaN and inf when any is
    infinite: on a channels-last tensor it is about 8x cheaper than
    ``torch.isfinite(t).all()`` (which materialises a boolean tensor in the default layout).
    Integer and boolean tensors are always finite; an empty tensor is too.
    """
    if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t.abs().amax())):
        raise ValueError(f"{name} contains NaN or inf")


def is_int(value: object) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A real number (int, float, NumPy scalar), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(value: object, name: str, minimum: int | None = None) -> int:
    """``value`` as an ``int``, checked to be an integer (not a bool) ``>= minimum``."""
    if not is_int(value) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        raise ValueError(f"{name} must be an integer{bound}, got {value!r}")
    return int(value)


def check_positive_int(value: object, name: str) -> int:
    if not is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_number(
    value: object,
    name: str,
    *,
    minimum: float | None = None,
    positive: bool = False,
    finite: bool = True,
) -> float:
    """``value`` as a ``float``: a real number (not a bool, not NaN), finite unless
    ``finite=False``, ``> 0`` when ``positive``, ``>= minimum`` when given."""
    ok = is_number(value) and not math.isnan(float(value))
    if ok and finite:
        ok = math.isfinite(float(value))
    if ok and positive:
        ok = float(value) > 0
    if ok and minimum is not None:
        ok = float(value) >= minimum
    if not ok:
        what = "a finite number" if finite else "a number"
        if positive:
            what += " > 0"
        elif minimum is not None:
            what += f" >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return float(value)


def check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return value


def check_float_dtype(dtype: object, name: str = "dtype") -> torch.dtype:
    """A real floating-point ``torch.dtype`` (integer, boolean and complex ones are refused)."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"{name} must be a floating-point torch.dtype, got {dtype!r}")
    return dtype


def check_seed(seed: object, name: str = "seed") -> int | None:
    """None or an integer torch accepts as a seed."""
    if seed is not None and (not is_int(seed) or not -(2**63) <= seed < 2**64):
        raise ValueError(f"{name} must be None or an integer in [-2**63, 2**64), got {seed!r}")
    return seed


def int_tuple(value: object, ndim: int, name: str, minimum: int = 1) -> tuple[int, ...]:
    """An integer or a sequence of ``ndim`` integers, each ``>= minimum`` (and below
    2**31: a size along one axis), as a tuple."""
    if is_int(value):
        out = (int(value),) * ndim
    elif isinstance(value, Sequence) and not isinstance(value, str) and all(map(is_int, value)):
        out = tuple(int(v) for v in value)
    else:
        raise ValueError(
            f"{name} must be an integer or a sequence of {ndim} integers, got {value!r}"
        )
    if len(out) != ndim:
        raise ValueError(f"{name} must have {ndim} entries for a {ndim}-d layer, got {value!r}")
    if any(v < minimum for v in out):
        word = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {word}, got {value!r}")
    if any(v > _MAX_SIZE for v in out):
        raise ValueError(f"{name} must be at most 2**31 - 1 per axis, got {value!r}")
    return out


def as_batch(
    t: object,
    core: tuple[int, ...],
    name: str,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
    finite: bool = False,
) -> tuple[torch.Tensor, tuple[int, ...] | None]:
    """``t`` of shape ``(..., *core)`` as a batch ``(B, *core)``, and its leading dims.

    The checks read metadata only (type, shape, dtype, device), unless ``finite``, which
    adds :func:`check_finite`. ``t`` is cast to ``dtype`` (no copy when it already has it);
    a boolean or complex ``t`` is refused, and so is one on another device than ``device``.
    The leading dims are None when ``t`` already is ``(B, *core)`` (then no reshape is
    needed, and none is made: a channels-last batch stays channels-last).
    """
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{name} must be a real tensor, got dtype {t.dtype}")
    n = len(core)
    shape = t.shape
    if len(shape) < n or tuple(shape[len(shape) - n :]) != core:
        expected = ", ".join(["...", *map(str, core)])
        raise ValueError(f"{name}: expected shape ({expected}), got {tuple(shape)}")
    if device is not None and t.device != device:
        raise ValueError(f"{name} is on {t.device} but the operator is on {device}")
    if finite:
        check_finite(t, name)
    if dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    if len(shape) == n + 1:
        return t, None
    lead = tuple(shape[: len(shape) - n])
    return t.reshape(-1, *core), lead


def available_memory() -> int:
    """Bytes of memory available to a new allocation on this machine (Linux
    ``MemAvailable``; elsewhere the free physical pages), or 0 when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def check_memory(nbytes: float, what: str) -> None:
    """Refuse, before allocating, a run whose estimated memory ``nbytes`` exceeds what the
    machine has free: ``ValueError`` naming ``what`` and both figures ("needs ~N GB, M GB
    free"). Unknown free memory lets the run go."""
    free = available_memory()
    if free and nbytes > free:
        raise ValueError(
            f"{what} needs ~{nbytes / 2**30:.1f} GB of memory, {free / 2**30:.1f} GB free: "
            "ask for less"
        )


@contextlib.contextmanager
def allocating(what: str) -> Iterator[None]:
    """Turn torch's refusal to allocate a tensor (too large for memory, or a size that
    overflows) into a ``ValueError`` naming ``what`` (the parameters that set the size)."""
    try:
        yield
    except (MemoryError, OverflowError) as exc:
        raise ValueError(f"{what} too large: {exc}") from exc
    except TypeError as exc:  # a size beyond int64, when torch unpacks it
        if "Overflow" not in str(exc):
            raise
        raise ValueError(f"{what} too large: {str(exc).splitlines()[0]}") from exc
    except RuntimeError as exc:
        msg = str(exc)
        if any(s in msg for s in ("alloc", "memory", "overflow", "Overflow", "numel")):
            raise ValueError(f"{what} too large: {msg.splitlines()[0]}") from exc
        raise


def make_generator(
    seed: int | None,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> torch.Generator:
    """The generator to draw from: ``generator`` if given, else a new one seeded by ``seed``
    (a fresh non-deterministic seed when ``seed`` is None). Never the global RNG."""
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator, got {generator!r}")
        if generator.device.type != torch.device(device).type:
            raise ValueError(
                f"generator is on {generator.device} but the tensors are drawn on {device}"
            )
        return generator
    seed = check_seed(seed)
    gen = torch.Generator(device=torch.device(device))
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``'auto'``/None picks CUDA when present; a device that is not on this machine (an
    unknown name, a CUDA index beyond the GPUs present, CUDA or MPS where there is none) is a
    ``ValueError``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str | torch.device) or isinstance(device, bool):
        raise ValueError(f"device must be a string or torch.device, got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"device {device!r} is not a valid torch device") from exc
    if dev.type not in _DEVICE_TYPES:
        raise ValueError(f"device {device!r}: only {', '.join(_DEVICE_TYPES)} are supported")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} requested but CUDA is not available on this machine"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r} requested but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} requested but MPS is not available")
    return dev
