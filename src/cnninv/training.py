"""Training machinery shared by the decoders (:mod:`cnninv.inversion.training`) and the
Table 1 classifiers (:mod:`cnninv.classify.train`): the cosine learning-rate schedule,
checkpoints written atomically and read without unpickling code, seeds derived from plain
data, and a scoped torch thread count.

>>> cosine_lr(0, 100, 1e-3), cosine_lr(50, 100, 1e-3), cosine_lr(100, 100, 1e-3)
(0.001, 0.0005, 0.0)
>>> derive_seed("split", 0) == derive_seed("split", 0) != derive_seed("split", 1)
True
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from cnninv.io import atomic_write

__all__ = [
    "MAX_DEFAULT_THREADS",
    "cosine_lr",
    "default_threads",
    "derive_seed",
    "load_checkpoint",
    "save_checkpoint",
    "step_generator",
    "torch_threads",
]


def cosine_lr(step: int, total: int, lr: float) -> float:
    """Cosine decay from ``lr`` at step 0 to 0 at step ``total`` (computed from the step
    index alone, so a resumed run follows the same schedule)."""
    return 0.5 * lr * (1.0 + math.cos(math.pi * step / max(total, 1)))


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any JSON-able parts (stable across runs and machines)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of training step ``step`` of a run seeded by ``seed``: what a step
    draws depends on ``(seed, step)`` alone, so a resumed run draws what an uninterrupted
    one would."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step) * 7_919 + 17) % 2**63)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """``torch.save`` of plain data (tensors, numbers, strings, lists, dicts), atomically."""
    return atomic_write(path, lambda p: torch.save(state, p))


def load_checkpoint(path: str | Path, *, restart_hint: str = "") -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint`, read on the CPU with
    ``weights_only=True`` (no code is unpickled).

    Raises
    ------
    ValueError
        If the file cannot be read or does not hold a dict; the message names the file and
        ends with ``restart_hint`` (e.g. how to start over).
    """
    hint = f"; {restart_hint}" if restart_hint else ""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a truncated or foreign file
        raise ValueError(
            f"cannot read checkpoint {path}: truncated, or not a checkpoint written by cnninv "
            f"({type(exc).__name__}){hint}"
        ) from exc
    if not isinstance(state, dict):
        raise ValueError(
            f"checkpoint {path} holds a {type(state).__name__}, not a cnninv checkpoint{hint}"
        )
    return state


#: The most threads :func:`default_threads` picks: beyond it the experiments' small
#: products gain nothing, and the machine is usually shared.
MAX_DEFAULT_THREADS = 8


def default_threads() -> int:
    """The command line's thread count when ``--threads`` is not given: ``$CNNINV_THREADS``
    or ``$OMP_NUM_THREADS`` when set, else half the CPUs this process may run on (at least
    1, at most :data:`MAX_DEFAULT_THREADS`).

    Half, because the machine is shared (a laptop's browser, other jobs): with as many
    threads as cores, every torch operation is a parallel region that waits for all of its
    threads, and one other busy process makes each wait a time slice; on a 2-core machine
    with one busy process, ``cnninv reproduce fig2`` took 2.4 times as long with 2 threads
    as with 1 (18.2 s against 7.6 s; BENCHMARKS.md, ``experiments`` block). It depends on
    the machine only, so that the same seed gives the same numbers whatever the load (the
    thread count changes how sums are split, so it can change float rounding; the JSONs
    record it).
    """
    for name in ("CNNINV_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_THREADS, cpus // 2))


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Torch's intra-op thread count set to ``threads`` for the block and restored after
    (None: unchanged)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        if threads:
            torch.set_num_threads(before)
