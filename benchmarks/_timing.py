"""Timing helpers shared by the benchmarks.

A benchmark compares a candidate against a baseline measured in the same run (STYLE.md,
habit 9), so the helpers time several functions *interleaved*: run 1 of every function,
then run 2 of every function, ... On a shared machine the load drifts over seconds;
interleaving spreads that drift over all candidates instead of penalising whichever ran
last, and :func:`paired_ratio` takes ratios round by round, so most of it cancels. Each
function is warmed up first (allocator, oneDNN/cuDNN plan caches, lazy imports); the
reported time is the median over the runs, with the min, max and every run kept so the
reader can see the spread.

On CUDA every run is bracketed by ``torch.cuda.synchronize`` so the clock measures the
kernels, not their launch.

>>> import torch
>>> t = measure(lambda: torch.ones(10).sum(), repeat=3, number=2)
>>> t.repeat, t.number, t.median > 0
(3, 2, True)
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "Laps",
    "Timing",
    "calibrate",
    "fmt_load",
    "machine_info",
    "machine_line",
    "measure",
    "measure_interleaved",
    "paired_ratio",
    "resolve_device",
    "synchronize",
]


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one function: ``runs[i]`` is the mean over ``number`` calls."""

    runs: tuple[float, ...]
    number: int

    @property
    def repeat(self) -> int:
        return len(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def min(self) -> float:
        return min(self.runs)

    @property
    def max(self) -> float:
        return max(self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_s": self.median,
            "min_s": self.min,
            "max_s": self.max,
            "repeat": self.repeat,
            "number": self.number,
            "runs_s": list(self.runs),
        }


def paired_ratio(num: Timing, den: Timing, scale: float = 1.0) -> float:
    """Median over the interleaved rounds of ``scale * num.runs[i] / den.runs[i]``.

    Both timings must come from one :func:`measure_interleaved` call: round ``i`` of each
    ran back to back, under the same load, so their ratio cancels most of the drift that
    a ratio of medians would keep. ``scale`` converts per-call times to the unit compared
    (e.g. iterations per call of each).
    """
    if num.repeat != den.repeat:
        raise ValueError(f"timings differ in repeat: {num.repeat} vs {den.repeat}")
    return statistics.median(scale * a / b for a, b in zip(num.runs, den.runs, strict=True))


def synchronize(device: str | torch.device | None) -> None:
    """Wait for queued kernels on ``device`` (a no-op on the CPU)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _run(fn: Callable[[], object], number: int, device: str | torch.device | None) -> float:
    synchronize(device)
    start = time.perf_counter()
    for _ in range(number):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / number


def measure_interleaved(
    fns: Mapping[str, Callable[[], object]],
    *,
    device: str | torch.device | None = None,
    warmup: int = 1,
    repeat: int = 5,
    number: int | Mapping[str, int] = 1,
) -> dict[str, Timing]:
    """Time every function of ``fns``, interleaving their runs; returns a ``Timing`` each.

    ``number`` (calls per run) may differ per function, so that every run lasts long
    enough for the clock; see :func:`calibrate`.
    """
    if repeat < 1 or warmup < 0:
        raise ValueError(f"need repeat >= 1 and warmup >= 0, got {repeat=}, {warmup=}")
    numbers = {name: number[name] if isinstance(number, Mapping) else number for name in fns}
    if any(n < 1 for n in numbers.values()):
        raise ValueError(f"number must be >= 1, got {numbers}")
    for fn in fns.values():
        for _ in range(warmup):
            _run(fn, 1, device)
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            runs[name].append(_run(fn, numbers[name], device))
    return {name: Timing(tuple(r), numbers[name]) for name, r in runs.items()}


def measure(
    fn: Callable[[], object],
    *,
    device: str | torch.device | None = None,
    warmup: int = 1,
    repeat: int = 5,
    number: int = 1,
) -> Timing:
    """Time one function: ``warmup`` untimed calls, then ``repeat`` runs of ``number``
    calls each."""
    return measure_interleaved(
        {"fn": fn}, device=device, warmup=warmup, repeat=repeat, number=number
    )["fn"]


def calibrate(
    fn: Callable[[], object],
    *,
    device: str | torch.device | None = None,
    target_s: float = 0.05,
    max_number: int = 10_000,
) -> int:
    """Calls per run so that one run lasts about ``target_s`` (at least 1). Runs ``fn``
    once to warm up, then times one call."""
    _run(fn, 1, device)
    once = _run(fn, 1, device)
    return max(1, min(max_number, round(target_s / max(once, 1e-9))))


class Laps:
    """Split a run into consecutive stages and time each one.

    Call :meth:`start`, then :meth:`lap` with a stage's name after each stage; every call
    synchronises ``device`` first. Over many runs, :meth:`medians` gives each stage's
    median; unlike timing the stages as separate functions, the stages of one run add up
    to that run, so their shares sum to 1.

    >>> laps = Laps()
    >>> for _ in range(3):
    ...     laps.start(); _ = sum(range(100)); laps.lap("sum")
    >>> list(laps.medians())
    ['sum']
    """

    def __init__(self, device: str | torch.device | None = None) -> None:
        self.device = device
        self.times: dict[str, list[float]] = {}
        self._t = 0.0

    def start(self) -> None:
        synchronize(self.device)
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        synchronize(self.device)
        now = time.perf_counter()
        self.times.setdefault(name, []).append(now - self._t)
        self._t = now

    def medians(self) -> dict[str, float]:
        return {name: statistics.median(t) for name, t in self.times.items()}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _numpy_blas() -> str | None:
    try:
        import numpy as np

        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}".strip()
    except Exception:  # only descriptive: older numpy has no mode="dicts"
        return None


def machine_info(device: str | torch.device) -> dict[str, Any]:
    """What the figures were measured on: CPU model, cores, versions, threads, device."""
    import numpy as np

    device = torch.device(device)
    info: dict[str, Any] = {
        "device": str(device),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy_version": np.__version__,
        "numpy_blas": _numpy_blas(),
        # thread counts set from outside (OpenBLAS and OpenMP read them at start-up)
        "thread_env": {
            name: os.environ.get(name)
            for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        },
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        info["load_average_1m"] = os.getloadavg()[0]
    except OSError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda_version"] = torch.version.cuda
    return info


def fmt_load(v: float | None) -> str:
    """A load average as the machine lines print it (n/a where it was not read)."""
    return "n/a" if v is None else f"{v:.2f}"


def machine_line(m: dict[str, Any]) -> str:
    """Two lines naming the machine of a :func:`machine_info` dict (with the load average
    at start under ``load_average_1m_at_start`` when recorded)."""
    env = m.get("thread_env", {})
    return (
        f"machine: {m['cpu_model']}, {m['cpu_count']} cores, torch {m['torch_version']} "
        f"({m['torch_threads']} threads), numpy {m['numpy_version']} ({m['numpy_blas']}, "
        f"OPENBLAS_NUM_THREADS={env.get('OPENBLAS_NUM_THREADS')}), device {m['device']}"
        + (f" ({m['gpu']})" if "gpu" in m else "")
        + f"\nload average (1 min): {fmt_load(m.get('load_average_1m_at_start'))} at start, "
        f"{fmt_load(m.get('load_average_1m'))} at end, on {m['cpu_count']} cores"
    )


def bench_main(
    name: str,
    doc: str,
    run: Callable[[str, bool], dict],
    render: Callable[[dict], str],
    argv: list[str] | None = None,
    *,
    quick_help: str = "a smaller, faster run",
    device_option: bool = True,
) -> int:
    """The command line every benchmark module shares: ``[--device D] [--json OUT]
    [--quick]``; prints the rendered figures, writes the JSON when asked."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog=name, description=doc.split("\n\n")[0])
    if device_option:
        parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--json", metavar="OUT.json", help="also write the figures as JSON")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        result = run(getattr(args, "device", "cpu"), args.quick)
        result.setdefault("elapsed_s", time.perf_counter() - t0)
    except (ValueError, RuntimeError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 1
    print(render(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
            fh.write("\n")
    return 0


def resolve_device(device: str) -> torch.device:
    """The device a benchmark runs on (``"auto"``: CUDA when present); a CUDA device on a
    machine without one is a ``ValueError`` (``bench_main`` prints it as one line)."""
    dev = (
        torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if device == "auto"
        else (torch.device(device))
    )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here")
    return dev


@contextlib.contextmanager
def strict_float32():
    """float32 means float32: no TF32 in CUDA matmuls or convolutions while inside,
    previous settings restored on exit. Benchmarks run under ``inference_mode`` too."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
