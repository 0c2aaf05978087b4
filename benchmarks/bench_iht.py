r"""Benchmark 3: one IHT iteration (Algorithm 1) with the conv operators against the same
iteration with :math:`\mathbf W` materialised as a dense matrix, measured in the same run.

An IHT iteration is :math:`g = \mathbf W d`, :math:`z = \mathbb M(z + g, k)`,
:math:`d = x - \mathbf W^T z`: a convolution, a model-sparse projection (max pooling with
switches, top-k blocks, unpooling) and a transposed convolution.

Settings:

(a) **Figure 2 size** (1-d, :math:`\ell=5, M=32, K=96, D=32`, 'valid' so :math:`n=28`,
    :math:`k=10`, one block per filter; dense :math:`\mathbf W` is 2688 x 1024);
(b) **a 2-d size** (:math:`K=64, M=16`, 3x3 filters, 16x16 maps, 'valid' so 14x14 codes,
    2x2 pooling blocks, :math:`k` = 10% of the 3136 blocks; dense :math:`\mathbf W` is
    12544 x 4096, 205 MB in float32).

Implementations, all float32, all from :math:`z=0` on the same planted signals:

* ``cnninv_iht``: the library's ``iht(W, x, k, pool=..., max_iter=N)`` (time / iterations,
  its per-iteration history and stop test included);
* ``cnninv_ops_loop``: the bare loop of ``W.matvec``, the projection, ``W.rmatvec``, as
  ``iht()`` runs it (state in the operator's layout, projection without input checks);
* ``cnninv_code_loop`` (where the code domain applies): the bare code-domain loop, the
  Gram product, the projection to entries and the placement, nothing else: the ceiling of
  ``iht()`` in the code domain with these kernels;
* ``torch_dense``: the same loop with ``W.dense()`` and ``torch.matmul`` on the benchmark's
  device, the projection by the library's ``model_sparse`` (so only the operator differs);
* ``numpy_dense``: the same loop in plain NumPy with the dense matrix and a NumPy
  projection (per-block argmax of :math:`|b|`, ``argpartition`` for the top k blocks).

Before timing, all four must give the same code after a few iterations. Figures:
sample-iterations per second (batch x iterations / s) and the ratio to each dense baseline
(median of round-by-round ratios). On CUDA the cnninv loop is also timed on the CPU in the
same run, for the GPU's speed-up.

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_iht.py [--quick]
"""

from __future__ import annotations

import copy
import itertools
import math
import sys
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
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
from cnninv.operators.sparse import SparseCode, add_entries, dense_code
from cnninv.recovery import iht
from cnninv.recovery.iht import code_domain_cost
from cnninv.sparsity import model_sparse, model_sparse_entries, num_blocks
from cnninv.theory import sample_model_sparse

__all__ = ["Config", "main", "render", "run"]


@dataclass(frozen=True)
class Setting:
    """One problem size: filters ``(K, M, ell)``, map size ``D`` (1-d or 2-d), pooling
    block (None: one block per filter), ``k`` and the batches to time."""

    name: str
    ndim: int
    K: int
    M: int
    ell: int
    D: int
    pool: int | None
    k: int
    batches: tuple[int, ...]
    sweep: tuple[int, ...] = ()  # k values for the code/signal domain cross-over
    sweep_batch: int = 0


@dataclass
class Config:
    """What to measure. ``quick`` shrinks repeats and batches (a smoke run)."""

    device: str = "cpu"
    quick: bool = False
    seed: int = 0
    settings: tuple[Setting, ...] = (
        Setting(
            "fig2",
            1,
            K=96,
            M=32,
            ell=5,
            D=32,
            pool=None,
            k=10,
            batches=(256, 1),
            sweep=(1, 2, 5, 10, 20, 30, 40, 48),
            sweep_batch=256,
        ),
        Setting(
            "2d",
            2,
            K=64,
            M=16,
            ell=3,
            D=16,
            pool=2,
            k=314,
            batches=(64, 1),
            sweep=(5, 10, 20, 40, 80, 160, 314),
            sweep_batch=64,
        ),
    )
    iters: int = 10  # iterations per timed call
    check_iters: int = 3  # iterations before comparing the implementations
    repeat: int = 5
    target_s: float = 0.1  # calls per run are chosen so a run lasts about this long

    @classmethod
    def make(cls, device: str = "cpu", quick: bool = False) -> Config:
        if quick:
            return cls(
                device=device,
                quick=True,
                settings=(
                    Setting(
                        "fig2",
                        1,
                        K=96,
                        M=32,
                        ell=5,
                        D=32,
                        pool=None,
                        k=10,
                        batches=(256,),
                        sweep=(10, 48),
                        sweep_batch=256,
                    ),
                    Setting("2d", 2, K=64, M=16, ell=3, D=16, pool=2, k=314, batches=(16,)),
                ),
                iters=5,
                repeat=3,
                target_s=0.05,
            )
        return cls(device=device)


# ----------------------------------------------------------------------------- baselines


def numpy_model_sparse(b: np.ndarray, shape: tuple[int, ...], pool: int | None, k: int):
    """:math:`\\mathbb M(b, k)` in NumPy for ``b`` of shape ``(B, K*prod(spatial))``
    (channel-major, as ``W.dense()`` flattens codes); ``pool`` must divide the map."""
    B, K, spatial = b.shape[0], shape[0], shape[1:]
    if pool is None:
        blocks = b.reshape(B, K, 1, -1)
    else:
        if any(s % pool for s in spatial):
            raise ValueError(f"pool {pool} must divide the map {spatial}")
        if len(spatial) == 1:
            blocks = b.reshape(B, K, spatial[0] // pool, pool)
        else:
            h, w = spatial
            blocks = (
                b.reshape(B, K, h // pool, pool, w // pool, pool)
                .transpose(0, 1, 2, 4, 3, 5)
                .reshape(B, K, (h // pool) * (w // pool), pool * pool)
            )
    switches = np.abs(blocks).argmax(axis=3)[..., None]  # (B, K, regions, 1)
    values = np.take_along_axis(blocks, switches, axis=3)[..., 0]  # (B, K, regions)
    flat = values.reshape(B, -1)
    if k < flat.shape[1]:
        keep = np.argpartition(-np.abs(flat), k - 1, axis=1)[:, :k]
        mask = np.zeros(flat.shape, dtype=bool)
        np.put_along_axis(mask, keep, True, axis=1)
        values = np.where(mask, flat, 0).astype(b.dtype, copy=False).reshape(values.shape)
    out = np.zeros_like(blocks)
    np.put_along_axis(out, switches, values[..., None], axis=3)
    if pool is not None and len(spatial) == 2:
        h, w = spatial
        out = out.reshape(B, K, h // pool, w // pool, pool, pool).transpose(0, 1, 2, 4, 3, 5)
    return out.reshape(B, -1)


def numpy_iht(W_dense: np.ndarray, x: np.ndarray, shape, pool, k: int, iters: int):
    """IHT with the dense ``(Kn, MD)`` matrix, from :math:`z=0`; ``x`` is ``(B, MD)``."""
    z = np.zeros((x.shape[0], W_dense.shape[0]), dtype=x.dtype)
    d = x.copy()  # x - W^T 0
    for _ in range(iters):
        g = d @ W_dense.T  # W d, batched
        z = numpy_model_sparse(z + g, shape, pool, k)
        d = x - z @ W_dense  # x - W^T z, batched
    return z


def torch_dense_iht(W_dense: torch.Tensor, x: torch.Tensor, shape, pool, k: int, iters: int):
    """The same loop with a dense torch matrix; projection by the library's ``model_sparse``."""
    B = x.shape[0]
    xf = x.reshape(B, -1)
    z = torch.zeros((B, *shape), dtype=x.dtype, device=x.device)
    d = xf.clone()
    for _ in range(iters):
        g = (d @ W_dense.T).view(B, *shape)
        z = model_sparse(z + g, k, pool).code
        d = xf - z.reshape(B, -1) @ W_dense
    return z


def cnninv_loop(W: ConvOperator, x: torch.Tensor, k: int | None, pool, iters: int):
    """The loop :func:`cnninv.recovery.iht` runs, from :math:`z=0`, without its
    per-iteration bookkeeping (norms, history, stop test): the state in the operator's
    layout, the projection without input checks."""
    x = W.native_layout(x)
    z = W.native_layout(torch.zeros((x.shape[0], *W.out_shape), dtype=x.dtype, device=x.device))
    d = x
    for _ in range(iters):
        g = W.matvec(d)
        z = model_sparse(z + g, k, pool, check=False).code
        d = x - W.rmatvec(z)
    return z


def cnninv_code_loop(W: ConvOperator, x: torch.Tensor, k: int, pool, iters: int):
    r"""The code-domain loop ``iht(domain="code")`` runs (step 1, from :math:`z=0`) without
    its bookkeeping (norms, history, stop test): per iteration the Gram product (one bag),
    the projection to entries and the placement :math:`x - \mathbf W^T z` (one bag). The
    floor of the code domain with these kernels: the most ``iht()`` could reach there."""
    x = W.native_layout(x)
    kern = W.sparse_kernels()
    Wx = W.matvec(x)
    gram_Wx, place_x = kern.affine("gram", Wx), kern.affine("place", x)
    ones = torch.ones((x.shape[0],), dtype=x.dtype, device=x.device)
    p = model_sparse_entries(Wx, k, pool, switches=False)  # the first iteration: b = W x
    z = SparseCode(p.index, p.values)
    d = kern.rmatvec(SparseCode(z.index, -z.values), place_x, ones)
    for _ in range(iters - 1):
        b = add_entries(kern.gram(SparseCode(z.index, -z.values), gram_Wx, ones), z)
        p = model_sparse_entries(b, k, pool, switches=False)
        z = SparseCode(p.index, p.values)
        d = kern.rmatvec(SparseCode(z.index, -z.values), place_x, ones)
    del d
    return dense_code(z, W.out_shape, like=Wx)


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


def _iteration_stages(W, x, k, pool, device, rounds: int) -> dict[str, float]:
    """Median seconds of each stage of the bare iteration (stages of one run add up)."""
    x = W.native_layout(x)
    z = cnninv_loop(W, x, k, pool, 2)
    d = x - W.rmatvec(z)
    laps = Laps(device)
    for i in range(rounds + 1):
        if i == 1:  # the first round warms up
            laps = Laps(device)
        laps.start()
        g = W.matvec(d)
        laps.lap("conv W d")
        b = z + g
        laps.lap("z + g")
        z_new = model_sparse(b, k, pool, check=False).code
        laps.lap("projection")
        xh = W.rmatvec(z_new)
        laps.lap("conv-transpose")
        d_new = x - xh
        laps.lap("x - W^T z")
    del d_new
    return laps.medians()


# ----------------------------------------------------------------------------- one setting


def bench_setting(cfg: Config, s: Setting, device: torch.device) -> dict[str, Any]:
    dtype = torch.float32
    size = s.D if s.ndim == 1 else (s.D, s.D)
    W = ConvOperator.gaussian(s.K, s.M, s.ell, size, seed=cfg.seed, dtype=dtype, device=device)
    W_dense_t = W.dense(max_entries=10**9)  # (Kn, MD), on the device
    W_dense = W_dense_t.cpu().numpy()
    shape = W.out_shape
    blocks = num_blocks(shape, s.pool)
    taps = s.ell**s.ndim
    n_out = math.prod(W.output_size)
    flops_conv = 2 * 2 * s.K * s.M * taps * n_out  # W d and W^T z, per sample
    flops_dense = 2 * 2 * W_dense.shape[0] * W_dense.shape[1]
    out: dict[str, Any] = {
        "setting": {
            **asdict(s),
            "input_size": list(W.input_size),
            "output_size": list(W.output_size),
            "blocks": blocks,
            "dense_shape": list(W_dense.shape),
            "dense_mbytes": W_dense.nbytes / 1e6,
            "dtype": "float32",
            "iters_per_call": cfg.iters,
        },
        "flops_per_sample_iter": {"conv": flops_conv, "dense": flops_dense},
        "batches": [],
    }
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    W_cpu = copy.deepcopy(W).to("cpu") if device.type != "cpu" else None  # .to() is in place
    for B in s.batches:
        z_true = sample_model_sparse(
            B, shape, s.k, s.pool, generator=gen, dtype=dtype, device=device
        )
        x = W.rmatvec(z_true).contiguous()
        x_np = x.reshape(B, -1).cpu().numpy()
        # the same z after a few iterations, else the comparison is not honest
        ci = cfg.check_iters
        z_np = numpy_iht(W_dense, x_np, shape, s.pool, s.k, ci)

        def flat(t: torch.Tensor) -> np.ndarray:
            return t.reshape(t.shape[0], -1).cpu().numpy()

        check = {
            "iters": ci,
            "cnninv_ops_loop": _check_same(
                "ops loop", z_np, flat(cnninv_loop(W, x, s.k, s.pool, ci))
            ),
            "cnninv_iht": _check_same(
                "iht()", z_np, flat(iht(W, x, s.k, pool=s.pool, max_iter=ci).z)
            ),
            "torch_dense": _check_same(
                "torch dense", z_np, flat(torch_dense_iht(W_dense_t, x, shape, s.pool, s.k, ci))
            ),
        }
        N = cfg.iters
        auto = iht(W, x, s.k, pool=s.pool, max_iter=N)
        n_iter = auto.n_iter  # may stop early
        check["cnninv_iht_domain"] = auto.domain
        check["cnninv_iht_signal"] = _check_same(
            "iht() signal domain",
            z_np,
            flat(iht(W, x, s.k, pool=s.pool, max_iter=ci, domain="signal").z),
        )
        fns = {
            "cnninv_iht": lambda x=x, N=N: iht(W, x, s.k, pool=s.pool, max_iter=N),
            "cnninv_iht_signal": lambda x=x, N=N: iht(
                W, x, s.k, pool=s.pool, max_iter=N, domain="signal"
            ),
            "cnninv_ops_loop": lambda x=x, N=N: cnninv_loop(W, x, s.k, s.pool, N),
            "torch_dense": lambda x=x, N=N: torch_dense_iht(W_dense_t, x, shape, s.pool, s.k, N),
            "numpy_dense": lambda x_np=x_np, N=N: numpy_iht(W_dense, x_np, shape, s.pool, s.k, N),
        }
        if code_domain_cost(W, B, s.k)["eligible"]:
            check["cnninv_code_loop"] = _check_same(
                "code-domain loop", z_np, flat(cnninv_code_loop(W, x, s.k, s.pool, ci))
            )
            fns["cnninv_code_loop"] = lambda x=x, N=N: cnninv_code_loop(W, x, s.k, s.pool, N)
        n_sig = iht(W, x, s.k, pool=s.pool, max_iter=N, domain="signal").n_iter
        iters = {
            "cnninv_iht": n_iter,
            "cnninv_iht_signal": n_sig,
            "cnninv_ops_loop": N,
            "cnninv_code_loop": N,
            "torch_dense": N,
            "numpy_dense": N,
        }
        if W_cpu is not None:  # the GPU's speed-up over the CPU, in the same run
            x_cpu = x.cpu()
            fns["cnninv_ops_loop_cpu"] = lambda x=x_cpu, N=N: cnninv_loop(W_cpu, x, s.k, s.pool, N)
            iters["cnninv_ops_loop_cpu"] = N
        numbers = {
            name: calibrate(fn, device=device, target_s=cfg.target_s) for name, fn in fns.items()
        }
        times = measure_interleaved(fns, device=device, warmup=0, repeat=cfg.repeat, number=numbers)
        rows = {}
        for name, t in times.items():
            per_iter = t.median / iters[name]
            flops = flops_conv if name.startswith("cnninv") else flops_dense
            rows[name] = {
                "iters_per_call": iters[name],
                "s_per_iter": per_iter,
                "sample_iters_per_s": B / per_iter,
                "gflops": B * flops / per_iter / 1e9,
                "timing": t.as_dict(),
            }
        for name, row in rows.items():
            # (baseline s/iter) / (this s/iter), round by round: sample-iterations/s ratio
            for base in ("numpy_dense", "torch_dense"):
                row[f"ratio_vs_{base}"] = paired_ratio(times[base], times[name], iters[name] / N)
        if "cnninv_ops_loop_cpu" in rows:
            rows["cnninv_ops_loop"]["speedup_vs_cpu"] = paired_ratio(
                times["cnninv_ops_loop_cpu"], times["cnninv_ops_loop"]
            )
        stages = _iteration_stages(W, x, s.k, s.pool, device, rounds=cfg.repeat * 3)
        total = sum(stages.values())
        rows["cnninv_iht"]["domain"] = auto.domain
        out["batches"].append(
            {
                "batch": B,
                "check": check,
                "results": rows,
                "stages": {n: {"s": v, "share": v / total} for n, v in stages.items()},
            }
        )
    if s.sweep:
        out["crossover"] = _sweep(cfg, s, W, device, gen)
    return out


def _sweep(cfg: Config, s: Setting, W: ConvOperator, device, gen) -> dict[str, Any]:
    """iht() in the code and the signal domain over k, same run: the speed-up of the code
    domain, the cost model's estimate of it, and the cross-over k (where it reaches 1)."""
    B, N = s.sweep_batch, cfg.iters
    rows = []
    for k in s.sweep:
        z = sample_model_sparse(B, W.out_shape, k, s.pool, generator=gen, device=device)
        x = W.rmatvec(z).contiguous()
        a = iht(W, x, k, pool=s.pool, max_iter=N, domain="code")
        b = iht(W, x, k, pool=s.pool, max_iter=N, domain="signal")
        same = bool(torch.equal(a.z != 0, b.z != 0))
        fns = {
            "code": lambda x=x, k=k: iht(W, x, k, pool=s.pool, max_iter=N, domain="code"),
            "signal": lambda x=x, k=k: iht(W, x, k, pool=s.pool, max_iter=N, domain="signal"),
        }
        numbers = {n: calibrate(f, device=device, target_s=cfg.target_s) for n, f in fns.items()}
        t = measure_interleaved(fns, device=device, warmup=0, repeat=cfg.repeat, number=numbers)
        model = code_domain_cost(W, B, k)
        rows.append(
            {
                "k": k,
                "same_support": same,
                "code_s_per_iter": t["code"].median / a.n_iter,
                "signal_s_per_iter": t["signal"].median / b.n_iter,
                "speedup": paired_ratio(t["signal"], t["code"], a.n_iter / b.n_iter),
                "model_speedup": model["signal"] / model["code"],
                "auto": "code" if model["code"] < model["signal"] else "signal",
            }
        )
    measured = _crossing(rows, "speedup")
    predicted = _crossing(rows, "model_speedup")
    return {"batch": B, "iters": N, "rows": rows, "crossover_k": measured, "model_k": predicted}


def _crossing(rows: list[dict], key: str) -> float | None:
    """The k where ``key`` falls through 1 (log-linear between the sweep's points)."""
    for a, b in itertools.pairwise(rows):
        if a[key] >= 1 > b[key]:
            fa, fb = math.log(a[key]), math.log(b[key])
            return a["k"] + (b["k"] - a["k"]) * fa / (fa - fb)
    return None


# ----------------------------------------------------------------------------- run / render


def run(device: str = "cpu", quick: bool = False, config: Config | None = None) -> dict:
    """Measure every setting; returns the figures with the configuration and machine."""
    cfg = config if config is not None else Config.make(device, quick)
    dev = resolve_device(cfg.device)
    load_start = machine_info(dev).get("load_average_1m")
    with strict_float32():
        settings = {s.name: bench_setting(cfg, s, dev) for s in cfg.settings}
    return {
        "benchmark": "iht",
        "config": asdict(cfg),
        "machine": {**machine_info(dev), "load_average_1m_at_start": load_start},
        "settings": settings,
    }


TARGET = 10.0


def targets(result: dict) -> list[dict]:
    """Target: >= 10x the dense matrix's throughput at the Figure 2 size with batching (the
    library's iht() against NumPy and torch); the 2-d size is reported without a target."""
    rows = []
    for name, res in result["settings"].items():
        for entry in res["batches"]:
            r = entry["results"]["cnninv_iht"]
            v = min(r["ratio_vs_numpy_dense"], r["ratio_vs_torch_dense"])
            has_target = name == "fig2" and entry["batch"] > 1
            floor = entry["results"].get("cnninv_code_loop")
            if floor is None:
                ceiling = ""
            elif r.get("domain") == "code":
                ceiling = (
                    f"; ceiling {floor['ratio_vs_numpy_dense']:.1f}x NumPy: the code domain's "
                    "products and projection alone"
                )
            else:  # the bare code-domain loop is no ceiling where iht() did not take it
                ceiling = (
                    f"; iht() ran in the signal domain (the code domain's bare loop: "
                    f"{floor['ratio_vs_numpy_dense']:.1f}x NumPy)"
                )
            rows.append(
                {
                    "name": f"IHT iteration vs dense W, {name} size, batch {entry['batch']}",
                    "target": f">= {TARGET:.0f}x" if has_target else "(none)",
                    "measured": f"{r['ratio_vs_numpy_dense']:.1f}x NumPy, "
                    f"{r['ratio_vs_torch_dense']:.1f}x torch{ceiling}",
                    "met": v >= TARGET if has_target else None,
                }
            )
    return rows


def _fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _fmt_s(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.3f} s"


def render(result: dict) -> str:
    """The figures as a plain-text table (for stdout and for pasting into BENCHMARKS.md)."""
    lines = [machine_line(result["machine"]), ""]
    for name, res in result["settings"].items():
        s = res["setting"]
        fl = res["flops_per_sample_iter"]
        pool = "one block per filter" if s["pool"] is None else f"{s['pool']}-pooling blocks"
        maps = "x".join(map(str, s["input_size"]))
        lines += [
            f"{name}: {s['ndim']}-d, K={s['K']}, M={s['M']}, ell={s['ell']}, maps {maps} "
            f"'valid', k={s['k']} of {s['blocks']} blocks ({pool}); dense W "
            f"{s['dense_shape'][0]}x{s['dense_shape'][1]} float32 ({s['dense_mbytes']:.0f} MB)",
            f"    FLOPs per sample-iteration: conv {fl['conv']:,}, dense {fl['dense']:,} "
            f"({fl['dense'] / fl['conv']:.1f}x)",
            f"    {'batch':>5}  {'implementation':<20} {'time/iter':>11} {'sample-it/s':>12} "
            f"{'GFLOP/s':>8} {'vs NumPy*':>9} {'vs torch*':>9}",
        ]
        for entry in res["batches"]:
            for impl, row in entry["results"].items():
                it = row["iters_per_call"]
                note = "" if it == s["iters_per_call"] else f"  (stopped after {it} iterations)"
                if "speedup_vs_cpu" in row:
                    note += f"  GPU speed-up over CPU {row['speedup_vs_cpu']:.1f}x"
                lines.append(
                    f"    {entry['batch']:>5}  {impl:<20} {_fmt_s(row['s_per_iter']):>11} "
                    f"{_fmt_rate(row['sample_iters_per_s']):>12} {row['gflops']:>8.2f} "
                    f"{row['ratio_vs_numpy_dense']:>8.2f}x {row['ratio_vs_torch_dense']:>8.2f}x"
                    f"{note}"
                )
            c = entry["check"]
            diffs = ", ".join(
                f"{k} {v['max_abs_diff']:.1e}" for k, v in c.items() if isinstance(v, dict)
            )
            lines.append(
                f"    {'':>5}  cnninv_iht ran in the {c.get('cnninv_iht_domain', '?')} domain "
                "(domain='auto', the cost model)"
            )
            lines.append(
                f"    {'':>5}  check: same z as NumPy after {c['iters']} iterations "
                f"(max |diff|: {diffs})"
            )
            lines.append(
                f"    {'':>5}  bare iteration, stage by stage: "
                + ", ".join(f"{n} {p['share']:.0%}" for n, p in entry["stages"].items())
            )
        cx = res.get("crossover")
        if cx:
            lines.append(
                f"    code vs signal domain, iht() at batch {cx['batch']}, {cx['iters']} "
                "iterations (speed-up of the code domain; model: the cost model's estimate)"
            )
            lines.append(
                "      k: "
                + "  ".join(
                    f"{r['k']}: {r['speedup']:.2f}x (model {r['model_speedup']:.2f}x"
                    f"{', ' + r['auto'] if r['auto'] == 'signal' else ''})"
                    for r in cx["rows"]
                )
            )
            kx, km = cx["crossover_k"], cx["model_k"]
            lines.append(
                "      cross-over k (the code domain stops paying): measured "
                + ("beyond the sweep" if kx is None else f"{kx:.0f}")
                + ", cost model "
                + ("beyond the sweep" if km is None else f"{km:.0f}")
                + ("" if all(r["same_support"] for r in cx["rows"]) else " (SUPPORTS DIFFER)")
            )
        lines.append("")
    lines += [
        "time/iter: median over the runs; GFLOP/s counts the conv FLOPs for cnninv, the "
        "dense FLOPs for the baselines",
        "* median over the interleaved rounds of the round's ratio of sample-iterations/s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return bench_main(
        "bench_iht", __doc__, run, render, argv, quick_help="fewer repeats and batches"
    )


if __name__ == "__main__":
    sys.exit(main())
