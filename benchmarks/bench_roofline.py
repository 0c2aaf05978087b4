r"""Benchmark 4: roofline of a batched 2-d IHT iteration at VGG16 layer sizes, against a
large ``torch.matmul`` measured in the same run on the same device.

Sizes (K = M channels, 3x3 filters, padding 1, 2x2 pooling blocks, k = 25% of the blocks,
float32): conv3 (256 channels, 56x56 maps), conv4 (512, 28x28), conv5 (512, 14x14). An
iteration costs 2 x (2 K M 9 H W) FLOPs per sample (conv and conv-transpose); the
projection (pooling, top-k, unpooling: a few passes over K H W entries) is < 1e-3 of it and
not counted. Figures: achieved GFLOP/s of the library's ``iht()`` per iteration and of the
bare iteration it runs (``W.matvec``, the projection, ``W.rmatvec``), as a fraction of the
matmul's GFLOP/s (median of round-by-round ratios), and where the rest of the time goes:
the convolutions' shortfall from matmul speed, the projection, the element-wise updates and
``iht()``'s bookkeeping (history norms, stop test).

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_roofline.py [--quick]
"""

from __future__ import annotations

import copy
import sys
from dataclasses import asdict, dataclass

import torch
from _timing import (
    Laps,
    bench_main,
    calibrate,
    machine_info,
    machine_line,
    measure_interleaved,
    paired_ratio,
    resolve_device,
    strict_float32,
)

from cnninv.operators import ConvOperator
from cnninv.recovery import iht
from cnninv.sparsity import model_sparse, num_blocks
from cnninv.theory import sample_model_sparse

__all__ = ["Config", "render", "run"]


@dataclass(frozen=True)
class Layer:
    name: str
    channels: int
    size: int
    batches: tuple[int, ...]


@dataclass
class Config:
    device: str = "cpu"
    quick: bool = False
    seed: int = 0
    layers: tuple[Layer, ...] = (
        Layer("conv3", 256, 56, (8,)),
        Layer("conv4", 512, 28, (8,)),
        Layer("conv5", 512, 14, (8, 32)),
    )
    k_fraction: float = 0.25
    iht_iters: int = 3  # iterations per timed iht() call
    matmul_n: int = 2048
    repeat: int = 3
    target_s: float = 0.1

    @classmethod
    def make(cls, device: str = "cpu", quick: bool = False) -> Config:
        if quick:
            return cls(device=device, quick=True, layers=(Layer("conv5", 512, 14, (8,)),), repeat=2)
        return cls(device=device)


def _bare_iteration(W, x, z, d, k, pool):
    """The iteration ``iht()`` runs, without its bookkeeping (projection unchecked)."""
    g = W.matvec(d)
    z_new = model_sparse(z + g, k, pool, check=False).code
    return z_new, x - W.rmatvec(z_new)


def bench_layer(cfg: Config, layer: Layer, device: torch.device, a: torch.Tensor) -> list[dict]:
    C, S = layer.channels, layer.size
    W = ConvOperator.gaussian(C, C, 3, (S, S), padding=1, seed=cfg.seed, device=device)
    pool = 2
    k = max(1, round(cfg.k_fraction * num_blocks(W.out_shape, pool)))
    flops_conv = 2 * C * C * 9 * S * S  # per sample, one of W d or W^T z
    n = cfg.matmul_n
    W_cpu = copy.deepcopy(W).to("cpu") if device.type != "cpu" else None
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    rows = []
    for B in layer.batches:
        z_true = sample_model_sparse(B, W.out_shape, k, pool, generator=gen, device=device)
        x = W.rmatvec(z_true).contiguous()
        z = iht(W, x, k, pool=pool, max_iter=2).z  # a mid-run state (in iht's layout)
        x = W.native_layout(x)
        d = x - W.rmatvec(z)
        b = z + W.matvec(d)
        N = cfg.iht_iters
        n_iter = iht(W, x, k, pool=pool, max_iter=N).n_iter
        fns = {
            "iht": lambda x=x, N=N: iht(W, x, k, pool=pool, max_iter=N),
            "iteration": lambda x=x, z=z, d=d: _bare_iteration(W, x, z, d, k, pool),
            "conv": lambda d=d: W.matvec(d),
            "conv_transpose": lambda z=z: W.rmatvec(z),
            "projection": lambda b=b: model_sparse(b, k, pool, check=False),
            "matmul": lambda: torch.matmul(a, a),
        }
        if W_cpu is not None:
            xc, zc, dc = x.cpu(), z.cpu(), d.cpu()
            fns["iteration_cpu"] = lambda xc=xc, zc=zc, dc=dc: _bare_iteration(
                W_cpu, xc, zc, dc, k, pool
            )
        numbers = {
            nm: calibrate(fn, device=device, target_s=cfg.target_s) for nm, fn in fns.items()
        }
        times = measure_interleaved(fns, device=device, warmup=0, repeat=cfg.repeat, number=numbers)
        laps = Laps(device)
        for i in range(cfg.repeat + 1):
            if i == 1:
                laps = Laps(device)  # the first round warms up
            laps.start()
            g = W.matvec(d)
            laps.lap("conv W d")
            h = z + g
            laps.lap("z + g")
            z_new = model_sparse(h, k, pool, check=False).code
            laps.lap("projection")
            xh = W.rmatvec(z_new)
            laps.lap("conv-transpose")
            _ = x - xh
            laps.lap("x - W^T z")
        stages = laps.medians()

        t = {nm: tm.median for nm, tm in times.items()}
        t_iht = t["iht"] / n_iter
        mm_rate = 2 * n**3 / t["matmul"]
        it_flops = B * 2 * flops_conv
        mm = times["matmul"]
        ideal = it_flops / mm_rate
        elementwise = t["iteration"] - t["conv"] - t["conv_transpose"] - t["projection"]
        budget = {
            "flops_at_matmul_speed": ideal,
            "conv_shortfall": t["conv"] + t["conv_transpose"] - ideal,
            "projection": t["projection"],
            "elementwise": elementwise,
            "iht_bookkeeping": t_iht - t["iteration"],
        }
        row = {
            "layer": layer.name,
            "channels": C,
            "size": S,
            "batch": B,
            "k": k,
            "iht_n_iter": n_iter,
            "gflop_per_iteration": it_flops / 1e9,
            "s": {"iht_per_iteration": t_iht, **t},
            "gflops": {
                "iht": it_flops / t_iht / 1e9,
                "iteration": it_flops / t["iteration"] / 1e9,
                "conv": B * flops_conv / t["conv"] / 1e9,
                "conv_transpose": B * flops_conv / t["conv_transpose"] / 1e9,
                "matmul": mm_rate / 1e9,
            },
            "vs_matmul": {
                "iht": paired_ratio(mm, times["iht"], n_iter * it_flops / (2 * n**3)),
                "iteration": paired_ratio(mm, times["iteration"], it_flops / (2 * n**3)),
                "conv": paired_ratio(mm, times["conv"], B * flops_conv / (2 * n**3)),
                "conv_transpose": paired_ratio(
                    mm, times["conv_transpose"], B * flops_conv / (2 * n**3)
                ),
            },
            "iht_time_budget": {nm: {"s": v, "share": v / t_iht} for nm, v in budget.items()},
            "stages": stages,
            "timings": {nm: tm.as_dict() for nm, tm in times.items()},
        }
        if "iteration_cpu" in times:
            row["gpu_speedup_vs_cpu"] = paired_ratio(times["iteration_cpu"], times["iteration"])
        rows.append(row)
    return rows


def run(device: str = "cpu", quick: bool = False, config: Config | None = None) -> dict:
    cfg = config if config is not None else Config.make(device, quick)
    dev = resolve_device(cfg.device)
    load_start = machine_info(dev).get("load_average_1m")
    with strict_float32():
        gen = torch.Generator(device=dev).manual_seed(cfg.seed)
        a = torch.randn((cfg.matmul_n, cfg.matmul_n), generator=gen, device=dev)
        rows = [r for layer in cfg.layers for r in bench_layer(cfg, layer, dev, a)]
    return {
        "benchmark": "roofline",
        "config": asdict(cfg),
        "machine": {**machine_info(dev), "load_average_1m_at_start": load_start},
        "rows": rows,
    }


TARGET = 0.5


def targets(result: dict) -> list[dict]:
    """Target: a batched 2-d IHT iteration (iht()) at >= 50% of the matmul's GFLOP/s at the
    conv5 size with a batch of 32 (other sizes reported without a target)."""
    rows = []
    for r in result["rows"]:
        has_target = r["layer"] == "conv5" and r["batch"] == 32
        v = r["vs_matmul"]["iht"]
        rows.append(
            {
                "name": f"roofline, iht() at {r['layer']} size, batch {r['batch']}",
                "target": f">= {TARGET:.0%} of matmul" if has_target else "(none)",
                "measured": f"{v:.0%} of matmul ({r['gflops']['iht']:.0f} of "
                f"{r['gflops']['matmul']:.0f} GFLOP/s)",
                "met": v >= TARGET if has_target else None,
            }
        )
    return rows


def _fmt_s(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def render(result: dict) -> str:
    cfg = result["config"]
    lines = [
        machine_line(result["machine"]),
        f"3x3 filters, padding 1, 2x2 pooling, k = {cfg['k_fraction']:.0%} of the blocks, "
        f"float32; matmul {cfg['matmul_n']}x{cfg['matmul_n']} in the same rounds",
        "",
        f"{'layer':<6} {'maps':>7} {'batch':>5} {'GFLOP/it':>9} {'iht()/it':>10} "
        f"{'GFLOP/s':>8} {'vs mm*':>7} {'bare it':>10} {'vs mm*':>7} {'conv':>6} "
        f"{'conv-T':>6} {'matmul':>8}",
    ]
    for r in result["rows"]:
        g, v, s = r["gflops"], r["vs_matmul"], r["s"]
        lines.append(
            f"{r['layer']:<6} {r['channels']:>3}x{r['size']:<3} {r['batch']:>5} "
            f"{r['gflop_per_iteration']:>9.1f} {_fmt_s(s['iht_per_iteration']):>10} "
            f"{g['iht']:>8.1f} {v['iht']:>7.2f} {_fmt_s(s['iteration']):>10} "
            f"{v['iteration']:>7.2f} {v['conv']:>6.2f} {v['conv_transpose']:>6.2f} "
            f"{g['matmul']:>8.1f}"
            + (f"  GPU {r['gpu_speedup_vs_cpu']:.1f}x CPU" if "gpu_speedup_vs_cpu" in r else "")
        )
    lines += ["", "where one iht() iteration's time goes:"]
    for r in result["rows"]:
        b = r["iht_time_budget"]
        lines.append(
            f"  {r['layer']} batch {r['batch']}: "
            + ", ".join(f"{nm.replace('_', ' ')} {p['share']:.0%}" for nm, p in b.items())
        )
    lines += [
        "",
        "vs mm: achieved GFLOP/s / matmul GFLOP/s, median over interleaved rounds (conv and "
        "conv-T: each product alone); GFLOP/s from medians",
        "'flops at matmul speed' is the share the iteration would take if it ran at the "
        "matmul's rate; the other shares are measured times (the stages timed alone, so they "
        "need not add up exactly)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return bench_main(
        "bench_roofline", __doc__, run, render, argv, quick_help="conv5, batch 8 only"
    )


if __name__ == "__main__":
    sys.exit(main())
