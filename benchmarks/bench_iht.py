r"""Benchmark: one IHT iteration (Algorithm 1), cnninv against baselines measured in the
same run (issue 2).

An IHT iteration is :math:`g = \mathbf W d`, :math:`z = \mathbb M(z + g, k)`,
:math:`d = x - \mathbf W^T z`: a convolution, a model-sparse projection (max pooling with
switches, top-k blocks, unpooling) and a transposed convolution.

(a) **Figure 2 size** (1-d, :math:`\ell=5, M=32, K=96, D=32`, 'valid' so :math:`n=28`,
    :math:`k=10`, one block per filter): cnninv's batched conv operators against a plain
    NumPy IHT with :math:`\mathbf W` materialised as the dense :math:`2688\times1024`
    float32 matrix. Both start from :math:`z=0` on the same planted signals and must agree
    after a few iterations before anything is timed. Figures: sample-iterations per second
    (batch x iterations / second) and their ratio, batched and unbatched.
(b) **VGG conv5 size** (2-d, :math:`K=M=512`, 3x3, 14x14 maps, padding 1, 2x2 pooling,
    :math:`k` = 25% of the blocks): achieved GFLOP/s of a batched iteration, as a fraction
    of a large float32 ``torch.matmul`` measured in the same run on the same device, with
    the time of an iteration split into conv, conv-transpose, projection and the rest.

Runs are interleaved (see ``_timing.py``): times are medians over the runs, ratios are
medians of round-by-round ratios. Ratios, not seconds, are the figures to compare across
machines.

Usage::

    python benchmarks/bench_iht.py [--device cpu|cuda] [--json OUT.json] [--quick]

On a CPU shared with other jobs, pin both libraries to one thread for stable figures
(OpenMP and OpenBLAS read these at start-up)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_iht.py
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from _timing import Laps, calibrate, machine_info, measure_interleaved, paired_ratio

from cnninv._checks import check_finite, resolve_device
from cnninv.operators import ConvOperator
from cnninv.recovery import iht
from cnninv.sparsity import max_pool_switches, model_sparse, num_blocks
from cnninv.theory import sample_model_sparse

__all__ = ["Config", "main", "render", "run"]


@dataclass
class Config:
    """What to measure. ``quick`` shrinks repeats and batches (a smoke run, ~30 s)."""

    device: str = "cpu"
    quick: bool = False
    seed: int = 0
    # (a) Figure 2 size
    fig2_K: int = 96
    fig2_M: int = 32
    fig2_ell: int = 5
    fig2_D: int = 32
    fig2_k: int = 10
    fig2_batches: tuple[int, ...] = (256, 1)
    fig2_iters: int = 10  # iterations per timed call
    check_iters: int = 3  # iterations before comparing cnninv and NumPy
    # (b) VGG conv5 size
    vgg_K: int = 512
    vgg_M: int = 512
    vgg_ell: int = 3
    vgg_size: int = 14
    vgg_padding: int = 1
    vgg_pool: int = 2
    vgg_k_fraction: float = 0.25
    vgg_batches: tuple[int, ...] = (8, 32)
    vgg_iht_iters: int = 3  # iterations per timed iht() call
    matmul_n: int = 2048
    # timing
    warmup: int = 1  # untimed calls before timing (calibrate() makes one itself)
    repeat: int = 5
    target_s: float = 0.1  # calls per run are chosen so a run lasts about this long

    @classmethod
    def make(cls, device: str = "cpu", quick: bool = False) -> Config:
        if quick:
            return cls(
                device=device,
                quick=True,
                vgg_batches=(8,),
                repeat=3,
                target_s=0.05,
            )
        return cls(device=device)


# ----------------------------------------------------------------------------- (a) Figure 2


def numpy_model_sparse(b: np.ndarray, K: int, k: int) -> np.ndarray:
    """:math:`\\mathbb M(b, k)` with one block per filter, for ``b`` of shape ``(B, K*n)``
    (channel-major, as ``W.dense()`` flattens codes): per-block argmax of ``|b|`` (the
    switches), then the ``k`` blocks with the largest kept magnitude (argpartition)."""
    B = b.shape[0]
    blocks = b.reshape(B, K, -1)
    switches = np.abs(blocks).argmax(axis=2)[..., None]  # (B, K, 1)
    values = np.take_along_axis(blocks, switches, axis=2)  # (B, K, 1)
    if k < K:
        keep = np.argpartition(-np.abs(values[..., 0]), k - 1, axis=1)[:, :k]
        mask = np.zeros((B, K, 1), dtype=bool)
        np.put_along_axis(mask, keep[..., None], True, axis=1)
        values = np.where(mask, values, 0).astype(b.dtype, copy=False)
    out = np.zeros_like(blocks)
    np.put_along_axis(out, switches, values, axis=2)
    return out.reshape(B, -1)


def numpy_iht(W_dense: np.ndarray, x: np.ndarray, K: int, k: int, iters: int) -> np.ndarray:
    """IHT with the dense ``(Kn, MD)`` matrix, from :math:`z=0`; ``x`` is ``(B, MD)``."""
    z = np.zeros((x.shape[0], W_dense.shape[0]), dtype=x.dtype)
    d = x.copy()  # x - W^T 0
    for _ in range(iters):
        g = d @ W_dense.T  # W d, batched
        z = numpy_model_sparse(z + g, K, k)
        d = x - z @ W_dense  # x - W^T z, batched
    return z


def cnninv_loop(W: ConvOperator, x: torch.Tensor, k: int | None, pool, iters: int):
    """The IHT iteration written with the library's operators, from :math:`z=0`, without
    :func:`cnninv.recovery.iht`'s per-iteration bookkeeping (norms, history, stop test)."""
    z = torch.zeros((x.shape[0], *W.out_shape), dtype=x.dtype, device=x.device)
    d = x.clone()
    for _ in range(iters):
        g = W.matvec(d)
        z = model_sparse(z + g, k, pool).code
        d = x - W.rmatvec(z)
    return z


def _check_same(name: str, expected: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """Raise when the two codes differ; return the discrepancy."""
    scale = float(np.abs(expected).max()) or 1.0
    max_abs = float(np.abs(expected - got).max())
    same_support = bool(((expected != 0) == (got != 0)).all())
    if not same_support or max_abs > 1e-4 * scale:
        raise RuntimeError(
            f"{name}: the codes differ after the check iterations "
            f"(max |diff| = {max_abs:.3g}, scale {scale:.3g}, same support: {same_support}); "
            "the comparison would not be honest"
        )
    return {"max_abs_diff": max_abs, "scale": scale}


def bench_fig2(cfg: Config, device: torch.device) -> dict[str, Any]:
    dtype = torch.float32
    W = ConvOperator.gaussian(
        cfg.fig2_K, cfg.fig2_M, cfg.fig2_ell, cfg.fig2_D, seed=cfg.seed, dtype=dtype, device=device
    )
    W_dense = W.dense().cpu().numpy()  # (Kn, MD) = (2688, 1024)
    K, k, n = cfg.fig2_K, cfg.fig2_k, W.output_size[0]
    flops_conv = 2 * 2 * K * cfg.fig2_M * cfg.fig2_ell * n  # W d and W^T z, per sample
    flops_dense = 2 * 2 * W_dense.shape[0] * W_dense.shape[1]
    out: dict[str, Any] = {
        "setting": {
            "K": K,
            "M": cfg.fig2_M,
            "ell": cfg.fig2_ell,
            "D": cfg.fig2_D,
            "n": n,
            "k": k,
            "pool": None,
            "dense_shape": list(W_dense.shape),
            "dtype": "float32",
            "iters_per_call": cfg.fig2_iters,
        },
        "flops_per_sample_iter": {"conv": flops_conv, "dense": flops_dense},
        "batches": [],
    }
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    for B in cfg.fig2_batches:
        z_true = sample_model_sparse(B, W.out_shape, k, generator=gen, dtype=dtype, device=device)
        x = W.rmatvec(z_true)
        x_np = x.reshape(B, -1).cpu().numpy()
        # the same z after a few iterations, else the comparison is not honest
        z_np = numpy_iht(W_dense, x_np, K, k, cfg.check_iters)
        z_loop = cnninv_loop(W, x, k, None, cfg.check_iters).reshape(B, -1).cpu().numpy()
        z_lib = iht(W, x, k, max_iter=cfg.check_iters).z.reshape(B, -1).cpu().numpy()
        check = {
            "iters": cfg.check_iters,
            "ops_loop": _check_same("cnninv ops loop vs NumPy", z_np, z_loop),
            "iht": _check_same("cnninv iht() vs NumPy", z_np, z_lib),
        }
        N = cfg.fig2_iters
        n_iter = iht(W, x, k, max_iter=N).n_iter  # iht() stops early if z stops changing
        fns = {
            "cnninv_iht": lambda x=x, N=N: iht(W, x, k, max_iter=N),
            "cnninv_ops_loop": lambda x=x, N=N: cnninv_loop(W, x, k, None, N),
            "numpy_dense": lambda x_np=x_np, N=N: numpy_iht(W_dense, x_np, K, k, N),
        }
        numbers = {
            name: calibrate(fn, device=device, target_s=cfg.target_s) for name, fn in fns.items()
        }
        times = measure_interleaved(
            fns, device=device, warmup=max(0, cfg.warmup - 1), repeat=cfg.repeat, number=numbers
        )
        iters = {"cnninv_iht": n_iter, "cnninv_ops_loop": N, "numpy_dense": N}
        rows = {}
        for name, t in times.items():
            per_iter = t.median / iters[name]
            flops = flops_dense if name == "numpy_dense" else flops_conv
            rows[name] = {
                "iters_per_call": iters[name],
                "s_per_iter": per_iter,
                "sample_iters_per_s": B / per_iter,
                "gflops": B * flops / per_iter / 1e9,
                "timing": t.as_dict(),
            }
        base = times["numpy_dense"]
        for name, row in rows.items():
            # (NumPy s/iter) / (this s/iter), round by round: sample-iterations/s ratio
            row["ratio_vs_numpy"] = paired_ratio(base, times[name], iters[name] / N)
        out["batches"].append({"batch": B, "check": check, "results": rows})
    return out


# ----------------------------------------------------------------------------- (b) VGG conv5


def timed_iteration(
    W: ConvOperator, x: torch.Tensor, z: torch.Tensor, d: torch.Tensor, k: int, pool, laps: Laps
) -> torch.Tensor:
    """One IHT iteration from the state ``(z, d)``, with a lap after every stage."""
    laps.start()
    g = W.matvec(d)
    laps.lap("conv W d")
    b = z + g
    laps.lap("z + g")
    z_new = model_sparse(b, k, pool).code
    laps.lap("projection")
    x_hat = W.rmatvec(z_new)
    laps.lap("conv-transpose W^T z")
    d_new = x - x_hat
    laps.lap("x - W^T z")
    return d_new


def timed_model_sparse(h: torch.Tensor, k: int, pool, laps: Laps) -> torch.Tensor:
    """``model_sparse(h, k, pool).code`` (``variant="abs"``) split into its stages.

    A copy of the bodies of :func:`cnninv.sparsity.model_sparse` and
    :func:`cnninv.sparsity.unpool` with laps in between; the benchmark also times the real
    ``model_sparse``, so a drift between the two shows as a different total.
    """
    spatial = tuple(h.shape[2:])
    laps.start()
    check_finite(h, "h")
    laps.lap("check_finite")
    values, switches = max_pool_switches(h, pool)
    laps.lap("max_pool_switches")
    flat = values.flatten(1)
    keep = flat.abs().topk(k, dim=1).indices
    laps.lap("topk")
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, keep, True)
    values = (flat * mask).view_as(values)
    laps.lap("keep mask")
    plane = math.prod(spatial)
    if int(switches.min()) < 0 or int(switches.max()) >= plane:
        raise RuntimeError("switch out of range")
    laps.lap("unpool range check")
    out = values.new_zeros((*values.shape[:2], plane))
    out.scatter_(2, switches.flatten(2), values.flatten(2))
    laps.lap("unpool scatter")
    return out.view(*values.shape[:2], *spatial)


def bench_vgg(cfg: Config, device: torch.device) -> dict[str, Any]:
    dtype = torch.float32
    size = (cfg.vgg_size, cfg.vgg_size)
    W = ConvOperator.gaussian(
        cfg.vgg_K,
        cfg.vgg_M,
        cfg.vgg_ell,
        size,
        padding=cfg.vgg_padding,
        seed=cfg.seed,
        dtype=dtype,
        device=device,
    )
    pool = cfg.vgg_pool
    blocks = num_blocks(W.out_shape, pool)
    k = max(1, round(cfg.vgg_k_fraction * blocks))
    Ho, Wo = W.output_size
    flops_conv = 2 * cfg.vgg_K * cfg.vgg_M * cfg.vgg_ell**2 * Ho * Wo  # per sample, W d
    n = cfg.matmul_n
    gen_a = torch.Generator(device=device).manual_seed(cfg.seed)
    a = torch.randn((n, n), generator=gen_a, dtype=dtype, device=device)
    out: dict[str, Any] = {
        "setting": {
            "K": cfg.vgg_K,
            "M": cfg.vgg_M,
            "ell": cfg.vgg_ell,
            "input_size": list(size),
            "padding": cfg.vgg_padding,
            "output_size": [Ho, Wo],
            "pool": pool,
            "blocks": blocks,
            "k": k,
            "dtype": "float32",
            "iht_iters_per_call": cfg.vgg_iht_iters,
        },
        "flops_per_sample": {
            "conv": flops_conv,
            "conv_transpose": flops_conv,
            "iteration": 2 * flops_conv,
            "projection_note": "max pooling, top-k and unpooling touch each of the "
            f"K*H*W = {cfg.vgg_K * Ho * Wo} code entries a few times: < 1e-3 of the conv "
            "FLOPs, not counted",
        },
        "matmul": {"n": n, "flops": 2 * n**3},
        "batches": [],
    }
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    for B in cfg.vgg_batches:
        z_true = sample_model_sparse(
            B, W.out_shape, k, pool, generator=gen, dtype=dtype, device=device
        )
        x = W.rmatvec(z_true)
        # a mid-run state: two iterations in, so z is model-sparse and d non-trivial
        z = cnninv_loop(W, x, k, pool, 2)
        d = x - W.rmatvec(z)
        b = z + W.matvec(d)
        z1 = model_sparse(b, k, pool).code

        def iteration(z=z, d=d, x=x):
            g = W.matvec(d)
            z_new = model_sparse(z + g, k, pool).code
            return x - W.rmatvec(z_new)

        N = cfg.vgg_iht_iters
        n_iter = iht(W, x, k, pool=pool, max_iter=N).n_iter
        fns = {
            "iteration": iteration,
            "iht": lambda x=x, N=N: iht(W, x, k, pool=pool, max_iter=N),
            "conv": lambda d=d: W.matvec(d),
            "conv_transpose": lambda z1=z1: W.rmatvec(z1),
            "projection": lambda b=b: model_sparse(b, k, pool),
            "matmul": lambda: torch.matmul(a, a),
        }
        numbers = {
            name: calibrate(fn, device=device, target_s=cfg.target_s) for name, fn in fns.items()
        }
        times = measure_interleaved(
            fns, device=device, warmup=max(0, cfg.warmup - 1), repeat=cfg.repeat, number=numbers
        )
        # where the time of one iteration goes (stages of the same runs, so they add up);
        # the first cfg.warmup runs go to throw-away Laps
        runs = cfg.warmup + cfg.repeat * numbers["iteration"]
        for i in range(runs):
            if i in (0, cfg.warmup):
                it_laps, proj_laps = Laps(device), Laps(device)
            timed_iteration(W, x, z, d, k, pool, it_laps)
            timed_model_sparse(b, k, pool, proj_laps)
        stage = it_laps.medians()
        proj_stage = proj_laps.medians()

        t = {name: tm.median for name, tm in times.items()}
        t["iht_per_iter"] = t["iht"] / n_iter
        matmul_gflops = 2 * n**3 / t["matmul"] / 1e9
        iter_flops = B * 2 * flops_conv

        def gflops(flops: float, seconds: float) -> float:
            return flops / seconds / 1e9

        achieved = {
            "iteration": gflops(iter_flops, t["iteration"]),
            "iht": gflops(iter_flops, t["iht_per_iter"]),
            "conv": gflops(B * flops_conv, t["conv"]),
            "conv_transpose": gflops(B * flops_conv, t["conv_transpose"]),
        }
        stage_total = sum(stage.values())
        proj_total = sum(proj_stage.values())
        mm = times["matmul"]
        ratio_vs_matmul = {
            # (achieved GFLOP/s) / (matmul GFLOP/s), round by round
            "iteration": paired_ratio(mm, times["iteration"], iter_flops / (2 * n**3)),
            "iht": paired_ratio(mm, times["iht"], n_iter * iter_flops / (2 * n**3)),
            "conv": paired_ratio(mm, times["conv"], B * flops_conv / (2 * n**3)),
            "conv_transpose": paired_ratio(
                mm, times["conv_transpose"], B * flops_conv / (2 * n**3)
            ),
        }
        out["batches"].append(
            {
                "batch": B,
                "iht_n_iter": n_iter,
                "s_per_iteration": t["iteration"],
                "s_per_iht_iteration": t["iht_per_iter"],
                "s_conv": t["conv"],
                "s_conv_transpose": t["conv_transpose"],
                "s_projection": t["projection"],
                "gflops": achieved,
                "matmul_gflops": matmul_gflops,
                "ratio_vs_matmul": ratio_vs_matmul,
                "breakdown": {
                    name: {"s": v, "share": v / stage_total} for name, v in stage.items()
                },
                "projection_stages": {
                    name: {"s": v, "share": v / proj_total} for name, v in proj_stage.items()
                },
                "memory_bytes": {
                    "code_tensor": B * math.prod(W.out_shape) * 4,
                    "signal_tensor": B * math.prod(W.in_shape) * 4,
                    "weight": W.weight.numel() * 4,
                },
                "timings": {name: tm.as_dict() for name, tm in times.items()},
            }
        )
    return out


# ----------------------------------------------------------------------------- run / render


def run(device: str = "cpu", quick: bool = False, config: Config | None = None) -> dict:
    """Measure both settings; returns the figures with the configuration and machine."""
    cfg = config if config is not None else Config.make(device, quick)
    dev = resolve_device(cfg.device)
    load_start = machine_info(dev).get("load_average_1m")
    # float32 means float32: cuDNN convolutions default to TF32 on Ampere and later while
    # matmul does not, which would make the GFLOP/s ratio and the NumPy check unfair
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.inference_mode():
            fig2 = bench_fig2(cfg, dev)
            vgg = bench_vgg(cfg, dev)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    return {
        "benchmark": "iht",
        "config": asdict(cfg),
        "machine": {**machine_info(dev), "load_average_1m_at_start": load_start},
        "fig2": fig2,
        "vgg_conv5": vgg,
    }


def _fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _fmt_load(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _fmt_s(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.3f} s"


def render(result: dict) -> str:
    """The figures as a plain-text table (for stdout and for pasting into BENCHMARKS.md)."""
    m = result["machine"]
    lines = [
        f"machine: {m['cpu_model']}, {m['cpu_count']} cores, torch {m['torch_version']} "
        f"({m['torch_threads']} threads), numpy {m['numpy_version']} ({m['numpy_blas']}, "
        f"OPENBLAS_NUM_THREADS={m.get('thread_env', {}).get('OPENBLAS_NUM_THREADS')}), "
        f"device {m['device']}" + (f" ({m['gpu']})" if "gpu" in m else ""),
        f"load average (1 min): {_fmt_load(m.get('load_average_1m_at_start'))} at start, "
        f"{_fmt_load(m.get('load_average_1m'))} at end, on {m['cpu_count']} cores",
        "",
    ]
    f2 = result["fig2"]
    s = f2["setting"]
    fl = f2["flops_per_sample_iter"]
    lines += [
        f"(a) Figure 2 size: 1-d, K={s['K']}, M={s['M']}, ell={s['ell']}, D={s['D']} "
        f"(n={s['n']}), k={s['k']}, one block per filter; dense W {s['dense_shape'][0]}x"
        f"{s['dense_shape'][1]} float32",
        f"    FLOPs per sample-iteration: conv {fl['conv']:,}, dense {fl['dense']:,} "
        f"({fl['dense'] / fl['conv']:.1f}x)",
        f"    {'batch':>5}  {'implementation':<16} {'time/iter':>11} {'(min)':>11} "
        f"{'sample-it/s':>12} {'GFLOP/s':>8} {'vs NumPy*':>9}",
    ]
    for entry in f2["batches"]:
        for name, row in entry["results"].items():
            it = row["iters_per_call"]
            note = "" if it == s["iters_per_call"] else f"  (stopped after {it} iterations)"
            lines.append(
                f"    {entry['batch']:>5}  {name:<16} {_fmt_s(row['s_per_iter']):>11} "
                f"{_fmt_s(row['timing']['min_s'] / it):>11} "
                f"{_fmt_rate(row['sample_iters_per_s']):>12} {row['gflops']:>8.2f} "
                f"{row['ratio_vs_numpy']:>8.2f}x{note}"
            )
        c = entry["check"]
        lines.append(
            f"    {'':>5}  check: same z as NumPy after {c['iters']} iterations "
            f"(max |diff| {c['iht']['max_abs_diff']:.1e} for iht(), "
            f"{c['ops_loop']['max_abs_diff']:.1e} for the ops loop)"
        )
    v = result["vgg_conv5"]
    s = v["setting"]
    lines += [
        "",
        f"(b) VGG conv5 size: 2-d, K=M={s['K']}, {s['ell']}x{s['ell']}, "
        f"{s['input_size'][0]}x{s['input_size'][1]} maps, padding {s['padding']}, "
        f"{s['pool']}x{s['pool']} pooling ({s['blocks']} blocks), k={s['k']}",
        f"    FLOPs per sample-iteration: {v['flops_per_sample']['iteration'] / 1e9:.3f} GFLOP "
        "(conv + conv-transpose; projection not counted: < 1e-3 of it)",
    ]
    for entry in v["batches"]:
        B = entry["batch"]
        ga, r, tm = entry["gflops"], entry["ratio_vs_matmul"], entry["timings"]
        mins = {name: _fmt_s(t["min_s"]) for name, t in tm.items()}
        mins["iht"] = _fmt_s(tm["iht"]["min_s"] / entry["iht_n_iter"])
        lines += [
            f"    batch {B} (torch.matmul: {v['matmul']['n']}x{v['matmul']['n']} float32, "
            "same run, interleaved)",
            f"      {'':<24} {'time':>11} {'(min)':>11} {'GFLOP/s':>8} {'vs matmul*':>10}",
            f"      {'IHT iteration (ops)':<24} {_fmt_s(entry['s_per_iteration']):>11} "
            f"{mins['iteration']:>11} {ga['iteration']:>8.1f} {r['iteration']:>10.2f}",
            f"      {'iht() per iteration':<24} {_fmt_s(entry['s_per_iht_iteration']):>11} "
            f"{mins['iht']:>11} {ga['iht']:>8.1f} {r['iht']:>10.2f}",
            f"      {'conv W d':<24} {_fmt_s(entry['s_conv']):>11} "
            f"{mins['conv']:>11} {ga['conv']:>8.1f} {r['conv']:>10.2f}",
            f"      {'conv-transpose W^T z':<24} {_fmt_s(entry['s_conv_transpose']):>11} "
            f"{mins['conv_transpose']:>11} {ga['conv_transpose']:>8.1f} "
            f"{r['conv_transpose']:>10.2f}",
            f"      {'projection model_sparse':<24} {_fmt_s(entry['s_projection']):>11} "
            f"{mins['projection']:>11}",
            f"      {'torch.matmul':<24} {_fmt_s(tm['matmul']['median_s']):>11} "
            f"{mins['matmul']:>11} {entry['matmul_gflops']:>8.1f}",
            "      one iteration, stage by stage: "
            + ", ".join(f"{name} {part['share']:.0%}" for name, part in entry["breakdown"].items()),
            "      model_sparse, stage by stage: "
            + ", ".join(
                f"{name} {part['share']:.0%}" for name, part in entry["projection_stages"].items()
            ),
        ]
    lines += [
        "",
        "times are medians over the runs (min beside them); GFLOP/s from the medians",
        "* median over the interleaved rounds of the round's ratio (cnninv and baseline ran "
        "back to back), so it can differ from the ratio of the medians",
        f"  iht() per iteration = one iht(max_iter={v['setting']['iht_iters_per_call']}) call "
        "/ its iterations, set-up included",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--json", metavar="OUT.json", help="also write the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, batch 8 only")
    args = parser.parse_args(argv)
    try:
        result = run(args.device, args.quick)
    except (ValueError, RuntimeError) as exc:
        print(f"bench_iht: error: {exc}", file=sys.stderr)
        return 1
    print(render(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
