r"""Benchmark 5: memory and scale.

(a) **Peak memory** of the experiments, each run as ``cnninv reproduce NAME --quick`` in a
    child process whose maximum resident set size is read from ``getrusage`` (the kernel's
    per-process figure, as ``/usr/bin/time -v`` reports it), beside the same figure for a
    child that only imports torch and cnninv (the baseline, same run). Quick settings: the
    full ``fig3`` takes minutes (140 s, 630 MB in an earlier run) and ``table4-activations``
    about a minute per photo; memory is dominated by the network's weights and the
    activations of one batch, which the quick settings keep.
(b) **Scaling** of the IHT workload (``iht()`` with a 2-d conv layer, K = M = 64, 3x3,
    padding 1, 2x2 pooling, k = 25% of the blocks, float32) with the number of samples,
    the image size and the number of iterations, one varied at a time from a base point;
    the slope of log(time) against log(size) is fitted by least squares (1 = linear; the
    image size is counted in pixels), and the three series are plotted log-log to
    ``benchmarks/scaling.png``.

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_scale.py [--quick]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _timing import bench_main, calibrate, machine_info, machine_line, measure, resolve_device

from cnninv.operators import ConvOperator
from cnninv.recovery import iht
from cnninv.sparsity import num_blocks
from cnninv.theory import sample_model_sparse

__all__ = ["Config", "render", "run"]

PLOT = Path(__file__).resolve().parent / "scaling.png"
MEMORY_TARGET_BYTES = 4 * 1024**3


@dataclass
class Config:
    device: str = "cpu"
    quick: bool = False
    seed: int = 0
    experiments: tuple[str, ...] = ("fig3", "table4-activations")
    channels: int = 64
    base_batch: int = 8
    base_size: int = 32
    base_iters: int = 5
    batches: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    sizes: tuple[int, ...] = (16, 32, 64, 128)
    iters: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    repeat: int = 3
    target_s: float = 0.1
    plot: str = field(default=str(PLOT))

    @classmethod
    def make(cls, device: str = "cpu", quick: bool = False) -> Config:
        if quick:
            return cls(
                device=device,
                quick=True,
                experiments=("fig3",),
                batches=(2, 8, 32),
                sizes=(16, 32, 64),
                iters=(1, 4, 16),
                repeat=2,
                target_s=0.05,
            )
        return cls(device=device)


# ----------------------------------------------------------------------------- (a) memory


# A forked child's ru_maxrss starts from its parent's resident set (the pages it shares
# before exec), and this process holds gigabytes by now; so each command runs under a
# small helper interpreter, which reports its own child's peak (RUSAGE_CHILDREN).
_HELPER = """
import resource, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
sys.stderr.write(p.stderr.decode(errors="replace")[-500:])
print(p.returncode, wall, peak)
"""


def _child(cmd: list[str]) -> dict[str, Any]:
    """Run ``cmd``; its wall time, exit status and peak RSS (``ru_maxrss``, KiB on Linux)."""
    proc = subprocess.run(
        [sys.executable, "-c", _HELPER, *cmd], capture_output=True, text=True, check=False
    )
    try:
        code, wall, peak = proc.stdout.split()
    except ValueError:
        raise RuntimeError(f"memory helper failed: {proc.stderr[-500:]}") from None
    return {
        "cmd": cmd,
        "returncode": int(code),
        "wall_s": float(wall),
        "max_rss_bytes": int(peak) * 1024,
        "stderr_tail": proc.stderr[-500:],
    }


def bench_memory(cfg: Config, device: torch.device) -> dict[str, Any]:
    py = sys.executable
    base = _child([py, "-c", "import torch, cnninv.experiments, cnninv.models"])
    runs = {}
    with tempfile.TemporaryDirectory(prefix="cnninv-bench-") as tmp:
        for name in cfg.experiments:
            cli = "import sys; from cnninv.cli import main; sys.exit(main(sys.argv[1:]))"
            cmd = [py, "-c", cli, "reproduce", name, "--quick", "--no-progress"]
            cmd += ["--out", str(Path(tmp) / name), "--device", str(device)]
            r = _child(cmd)
            if r["returncode"] != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed: {r['stderr_tail']}")
            r["vs_baseline"] = r["max_rss_bytes"] / base["max_rss_bytes"]
            r["under_target"] = r["max_rss_bytes"] < MEMORY_TARGET_BYTES
            runs[name] = r
    return {"baseline_import": base, "experiments": runs, "target_bytes": MEMORY_TARGET_BYTES}


# ----------------------------------------------------------------------------- (b) scaling


def _time_iht(cfg: Config, device, batch: int, size: int, iters: int) -> dict[str, Any]:
    C = cfg.channels
    W = ConvOperator.gaussian(C, C, 3, (size, size), padding=1, seed=cfg.seed, device=device)
    k = max(1, round(0.25 * num_blocks(W.out_shape, 2)))
    z = sample_model_sparse(batch, W.out_shape, k, 2, seed=cfg.seed + 1, device=device)
    x = W.rmatvec(z).contiguous()

    def fn():
        return iht(W, x, k, pool=2, max_iter=iters)

    number = calibrate(fn, device=device, target_s=cfg.target_s)
    t = measure(fn, device=device, warmup=0, repeat=cfg.repeat, number=number)
    return {
        "batch": batch,
        "size": size,
        "iters": iters,
        "n_iter": fn().n_iter,
        "s": t.median,
        "timing": t.as_dict(),
    }


def _slope(x: list[float], y: list[float]) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def bench_scaling(cfg: Config, device: torch.device) -> dict[str, Any]:
    b, s, i = cfg.base_batch, cfg.base_size, cfg.base_iters
    series = {
        "samples": [_time_iht(cfg, device, B, s, i) for B in cfg.batches],
        "pixels": [_time_iht(cfg, device, b, D, i) for D in cfg.sizes],
        "iterations": [_time_iht(cfg, device, b, s, N) for N in cfg.iters],
    }
    xs = {
        "samples": [r["batch"] for r in series["samples"]],
        "pixels": [r["size"] ** 2 for r in series["pixels"]],
        "iterations": [r["n_iter"] for r in series["iterations"]],
    }
    out = {}
    for name, rows in series.items():
        t = [r["s"] for r in rows]
        out[name] = {
            "x": xs[name],
            "s": t,
            "slope": _slope(xs[name], t),
            "slope_upper_half": _slope(xs[name][len(t) // 2 :], t[len(t) // 2 :])
            if len(t) >= 4
            else None,
            "rows": rows,
        }
    return {
        "base": {"batch": b, "size": s, "iters": i, "channels": cfg.channels},
        "series": out,
    }


def _plot(scaling: dict[str, Any], path: str) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), constrained_layout=True)
    labels = {
        "samples": "samples (batch)",
        "pixels": "image size (pixels)",
        "iterations": "IHT iterations",
    }
    for ax, (name, s) in zip(axes, scaling["series"].items(), strict=True):
        x, t = np.array(s["x"], float), np.array(s["s"], float)
        ax.loglog(x, t, "o-", label=f"measured (slope {s['slope']:.2f})")
        ax.loglog(x, t[0] * x / x[0], "k--", lw=0.8, label="linear from the first point")
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(labels[name])
        ax.set_ylabel("seconds per iht() call")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    base = scaling["base"]
    fig.suptitle(
        f"iht() time, K = M = {base['channels']}, 3x3, 2x2 pooling; base point: batch "
        f"{base['batch']}, {base['size']}x{base['size']} maps, {base['iters']} iterations",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- run / render


def run(device: str = "cpu", quick: bool = False, config: Config | None = None) -> dict:
    cfg = config if config is not None else Config.make(device, quick)
    dev = resolve_device(cfg.device)
    load_start = machine_info(dev).get("load_average_1m")
    memory = bench_memory(cfg, dev)
    with torch.inference_mode():
        scaling = bench_scaling(cfg, dev)
    _plot(scaling, cfg.plot)
    return {
        "benchmark": "scale",
        "config": asdict(cfg),
        "machine": {**machine_info(dev), "load_average_1m_at_start": load_start},
        "memory": memory,
        "scaling": scaling,
        "plot": cfg.plot,
    }


SLOPE_RANGE = (0.8, 1.2)


def targets(result: dict) -> list[dict]:
    """Targets: peak memory < 4 GiB per experiment; time linear in samples, pixels and
    iterations (fitted log-log slope within 0.8-1.2)."""
    rows = []
    for name, r in result["memory"]["experiments"].items():
        rows.append(
            {
                "name": f"peak memory, cnninv reproduce {name} --quick",
                "target": "< 4 GiB",
                "measured": f"{r['max_rss_bytes'] / 1e6:.0f} MB",
                "met": r["under_target"],
            }
        )
    lo, hi = SLOPE_RANGE
    for name, s in result["scaling"]["series"].items():
        rows.append(
            {
                "name": f"iht() time vs {name}",
                "target": "linear (log-log slope 0.8-1.2)",
                "measured": f"slope {s['slope']:.2f}",
                "met": lo <= s["slope"] <= hi,
            }
        )
    return rows


def render(result: dict) -> str:
    mem = result["memory"]
    base = mem["baseline_import"]
    lines = [
        machine_line(result["machine"]),
        "",
        f"(a) peak memory (max RSS of the child process); target < "
        f"{mem['target_bytes'] / 1024**3:.0f} GiB",
        f"    {'python -c import torch, cnninv':<44} {base['max_rss_bytes'] / 1e6:>8.0f} MB  "
        f"{base['wall_s']:>6.1f} s  (baseline)",
    ]
    for name, r in mem["experiments"].items():
        lines.append(
            f"    {'cnninv reproduce ' + name + ' --quick':<44} "
            f"{r['max_rss_bytes'] / 1e6:>8.0f} MB  {r['wall_s']:>6.1f} s  "
            f"({r['vs_baseline']:.1f}x baseline; under target: {r['under_target']})"
        )
    sc = result["scaling"]
    b = sc["base"]
    lines += [
        "",
        f"(b) iht() time vs size, K = M = {b['channels']}, 3x3, padding 1, 2x2 pooling; base: "
        f"batch {b['batch']}, {b['size']}x{b['size']} maps, {b['iters']} iterations",
    ]
    for name, s in sc["series"].items():
        pts = ", ".join(f"{x:g}: {t * 1e3:.1f} ms" for x, t in zip(s["x"], s["s"], strict=True))
        upper = (
            f"; upper half {s['slope_upper_half']:.2f}" if s["slope_upper_half"] is not None else ""
        )
        lines.append(f"    {name:<10} log-log slope {s['slope']:.2f}{upper}  ({pts})")
    lines.append(f"    plot: {Path(result['plot']).name}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return bench_main(
        "bench_scale", __doc__, run, render, argv, quick_help="fig3 only, fewer points"
    )


if __name__ == "__main__":
    sys.exit(main())
