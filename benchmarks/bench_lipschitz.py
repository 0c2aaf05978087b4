r"""Benchmark 6: step sizes without power iterations.

For FISTA's step :math:`1/L`, :math:`L = 2\|\mathbf W\|^2`. Three ways to get
:math:`\|\mathbf W\|^2`, timed on one operator each (a first call: nothing cached), with
their values against a reference (2000 power iterations, to 1e-9):

* ``dft``: :meth:`ConvOperator.norm_sq_bound`, the largest singular value of the filters'
  DFTs over the frequencies of the padded input: a proven upper bound (a safe step);
* ``lanczos``: :meth:`LinearOperator.norm_sq_lanczos` (30 steps), from below;
* ``power``: :meth:`LinearOperator.norm_sq` (100 iterations, the former default), from below.

and which one :meth:`LinearOperator.norm_sq_estimate` (fista's default) picks, by the cost
model of :func:`cnninv.operators.conv.dft_cost` (its estimates are printed beside the times:
they were fitted to an earlier run of this benchmark). Sizes: the layers of the l1 and IHT
benchmarks and of the experiments (Gaussian filters, unit-norm rows).

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_lipschitz.py [--quick]
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from _timing import bench_main, machine_info, machine_line

from cnninv.operators import ConvOperator
from cnninv.operators.conv import dft_cost

__all__ = ["Config", "render", "run"]


@dataclass(frozen=True)
class Layer:
    name: str
    K: int
    M: int
    ell: int
    size: tuple[int, ...]
    padding: int = 0
    stride: int = 1


@dataclass
class Config:
    device: str = "cpu"
    quick: bool = False
    layers: tuple[Layer, ...] = (
        Layer("Figure 2 (1-d)", 96, 32, 5, (32,)),
        Layer("l1 2-d: K=64, M=16, 16x16", 64, 16, 3, (16, 16)),
        Layer("SPORCO size: M=K=64, 34x34", 64, 64, 3, (34, 34)),
        Layer("VGG conv4-like: 256->256, 28x28, padded", 256, 256, 3, (28, 28), 1),
        Layer("VGG conv5: 512->512, 14x14, padded", 512, 512, 3, (14, 14), 1),
        Layer("strided: 64->32, 4x4, stride 2, 32x32", 64, 32, 4, (32, 32), 1, 2),
    )
    reference_iters: int = 2000
    repeat: int = 3

    @classmethod
    def make(cls, device: str = "cpu", quick: bool = False) -> Config:
        if quick:
            return cls(
                device=device,
                quick=True,
                layers=(
                    Layer("Figure 2 (1-d)", 96, 32, 5, (32,)),
                    Layer("strided: 16->8, 4x4, stride 2, 20x20", 16, 8, 4, (20, 20), 1, 2),
                ),
                reference_iters=300,
                repeat=3,
            )
        return cls(device=device)


def _timed(fn, repeat: int) -> tuple[float, float]:
    """(value, median seconds) over ``repeat`` calls of ``fn``, after one untimed call (the
    libraries' one-time set-up: FFT plans, LAPACK workspaces)."""
    fn()
    times, value = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return value, sorted(times)[len(times) // 2]


def bench_layer(cfg: Config, layer: Layer, device: torch.device) -> dict[str, Any]:
    W = ConvOperator.gaussian(
        layer.K, layer.M, layer.ell, layer.size if len(layer.size) > 1 else layer.size[0],
        layer.stride, layer.padding, unit_norm_rows=True, seed=0, device=device,
    )  # fmt: skip
    reference = W.norm_sq(n_iter=cfg.reference_iters, tol=1e-9)

    def dft() -> float:
        W.__dict__.pop("_derived_cache", None)  # a first call: nothing cached
        return W.norm_sq_bound()

    methods = {
        "dft": dft,
        "lanczos": lambda: W.norm_sq_lanczos(30),
        "power": lambda: W.norm_sq(n_iter=100),
    }
    rows = {}
    for name, fn in methods.items():
        value, seconds = _timed(fn, cfg.repeat)
        rows[name] = {"value": value, "s": seconds, "vs_reference": value / reference}
    W.__dict__.pop("_derived_cache", None)
    est = W.norm_sq_estimate()
    cost = dft_cost(W)
    return {
        "layer": asdict(layer),
        "reference": reference,
        "methods": rows,
        "picked": est.method,
        "model_ns": {"dft": cost["dft"], "lanczos": cost["lanczos"]},
        "tight": cost["tight"],
    }


def run(device: str = "cpu", quick: bool = False, config: Config | None = None) -> dict:
    cfg = config if config is not None else Config.make(device, quick)
    dev = torch.device(cfg.device)
    load_start = machine_info(dev).get("load_average_1m")
    with torch.no_grad():
        layers = [bench_layer(cfg, layer, dev) for layer in cfg.layers]
    return {
        "benchmark": "lipschitz",
        "config": asdict(cfg),
        "machine": {**machine_info(dev), "load_average_1m_at_start": load_start},
        "layers": layers,
    }


def targets(result: dict) -> list[dict]:
    """Where the default uses the DFT bound, it is within a few percent of the norm (and
    never below it), and it costs less than the power method it replaces."""
    rows = []
    for r in result["layers"]:
        if r["picked"] != "dft":
            continue
        m = r["methods"]
        over = m["dft"]["vs_reference"]
        faster = m["power"]["s"] / m["dft"]["s"]
        rows.append(
            {
                "name": f"step by the DFT bound, {r['layer']['name']}",
                "target": "bound >= norm, within 3%; faster than the power method",
                "measured": f"{(over - 1) * 100:+.2f}% of the norm, {faster:.0f}x faster",
                "met": 1 - 1e-9 <= over <= 1.03 and faster > 1,
            }
        )
    return rows


def _fmt_s(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def render(result: dict) -> str:
    lines = [
        machine_line(result["machine"]),
        "||W||^2 by each method (one call, nothing cached), against 2000 power iterations; "
        "the cost model's estimates (fitted earlier) beside",
        "",
        f"    {'layer':<42} {'method':<8} {'value/ref':>10} {'time':>10} {'model':>10}",
    ]
    for r in result["layers"]:
        for name, m in r["methods"].items():
            model = r["model_ns"].get(name)
            pick = "  <- default" if name == r["picked"] else ""
            lines.append(
                f"    {r['layer']['name']:<42} {name:<8} {m['vs_reference']:>10.5f} "
                f"{_fmt_s(m['s']):>10} {'' if model is None else _fmt_s(model / 1e9):>10}{pick}"
            )
        if not r["tight"]:
            lines.append(
                f"    {'':<42} (strided: the DFT bound holds but is loose, never the default)"
            )
    lines += [
        "",
        "value/ref > 1 only for dft (a bound); lanczos and power approach from below, fista "
        "puts a 2% margin on them (and checks every step)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return bench_main("bench_lipschitz", __doc__, run, render, argv, quick_help="two layers")


if __name__ == "__main__":
    sys.exit(main())
