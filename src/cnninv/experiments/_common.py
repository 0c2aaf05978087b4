"""Pieces every experiment shares: validation of configs, summaries, progress, provenance."""

from __future__ import annotations

import dataclasses
import platform
import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from cnninv._checks import resolve_device

__all__ = ["batch_sizes", "check_config", "environment", "progress_bar", "summary", "torch_dtype"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {name!r}")
    return DTYPES[name]


def check_config(config: Any, positive: Iterable[str] = ()) -> None:
    """Validate the common fields and the named positive integers of a config dataclass."""
    for name in positive:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(config.seed, int) or isinstance(config.seed, bool):
        raise ValueError(f"seed must be an integer, got {config.seed!r}")
    resolve_device(config.device)


def summary(values: torch.Tensor) -> dict[str, float]:
    """mean, std, min, 1st, 50th, 99th percentile, max of a 1-d sample."""
    v = values.detach().double().flatten().cpu()
    q = torch.quantile(v, torch.tensor([0.01, 0.5, 0.99], dtype=torch.float64))
    return {
        "mean": float(v.mean()),
        "std": float(v.std()) if v.numel() > 1 else 0.0,
        "min": float(v.min()),
        "p01": float(q[0]),
        "p50": float(q[1]),
        "p99": float(q[2]),
        "max": float(v.max()),
        "n": int(v.numel()),
    }


def progress_bar(
    iterable: Iterable, *, enabled: bool, desc: str, total: int | None = None
) -> Iterator:
    if not enabled:
        return iter(iterable)
    from tqdm.auto import tqdm

    return iter(tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True))


def environment(config: Any, started: float) -> dict[str, Any]:
    """Provenance stored with every result: the config, versions, device, wall time."""
    from cnninv._version import __version__

    return {
        "config": dataclasses.asdict(config),
        "cnninv_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "elapsed_s": round(time.perf_counter() - started, 3),
    }


def batch_sizes(total: int, batch: int) -> list[int]:
    """Split ``total`` samples into batches of ``batch`` (the last one smaller)."""
    sizes = [batch] * (total // batch)
    if total % batch:
        sizes.append(total % batch)
    return sizes
