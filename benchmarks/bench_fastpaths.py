r"""The fast paths of the library, before and after, in the same run.

Each fast path is timed against the code it replaced, written out here as it was (NCW/NCHW
tensors, ``F.conv1d``/``F.conv2d`` and their transposes, max pooling on the default
layout, sorted top-k, unpooling into a contiguous code), interleaved round by round:

* **channels-last convolutions** (``ConvOperator.matvec``/``rmatvec`` on the CPU): a 1-d
  layer runs as a 2-d convolution of height 1, all in channels-last memory format, and the
  result stays in that layout;
* **channels-last max pooling** (``max_pool_switches`` on the CPU), the core of the
  projection;
* **unsorted top-k** in the projection (only the set of the k blocks matters);
* all of them together: one bare IHT iteration (conv, projection, conv-transpose), the
  "before" iteration on contiguous tensors against the library's on the channels-last
  state that ``iht()`` and ``fista()`` keep (``W.native_layout``); both must agree.

The projection is compared without input checks on either side (``model_sparse(...,
check=False)``, what ``iht()`` runs; the default ``check=True`` adds a NaN/inf scan of
``h``).

Sizes: the Figure 2 layer (1-d, batch 256), a small 2-d layer (K=64, M=16, 16x16, batch 64)
and VGG conv5 (512 channels, 14x14, padding 1, batch 8). CPU only (nothing changed on CUDA).

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_fastpaths.py [--quick]
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from _timing import (
    bench_main,
    calibrate,
    machine_info,
    machine_line,
    measure_interleaved,
    paired_ratio,
)

from cnninv.operators import ConvOperator
from cnninv.sparsity import max_pool_switches, model_sparse, num_blocks
from cnninv.theory import sample_model_sparse

__all__ = ["Config", "render", "run"]


@dataclass(frozen=True)
class Case:
    name: str
    ndim: int
    K: int
    M: int
    ell: int
    D: int
    padding: int
    pool: int | None
    k_fraction: float
    batch: int


@dataclass
class Config:
    device: str = "cpu"
    quick: bool = False
    seed: int = 0
    cases: tuple[Case, ...] = (
        Case("Figure 2 layer (1-d)", 1, 96, 32, 5, 32, 0, None, 10 / 96, 256),
        Case("2-d, K=64, M=16, 16x16", 2, 64, 16, 3, 16, 0, 2, 0.1, 64),
        Case("VGG conv5, 512 ch, 14x14", 2, 512, 512, 3, 14, 1, 2, 0.25, 8),
    )
    repeat: int = 5
    target_s: float = 0.1

    @classmethod
    def make(cls, device: str = "cpu", quick: bool = False) -> Config:
        if quick:
            return cls(device=device, quick=True, cases=cls.cases[:2], repeat=3, target_s=0.05)
        return cls(device=device)


# ----------------------------------------------------------------------------- "before"

_CONV = {1: F.conv1d, 2: F.conv2d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d}
_POOL = {1: F.max_pool1d, 2: F.max_pool2d}


def old_pool(h: torch.Tensor, pool):
    spatial = tuple(h.shape[2:])
    kernel = spatial if pool is None else (pool,) * len(spatial)
    return _POOL[len(spatial)](h.abs(), kernel, stride=kernel, return_indices=True, ceil_mode=True)


def old_projection(h: torch.Tensor, k: int, pool) -> torch.Tensor:
    """The projection as it was: default-layout pooling, sorted top-k, contiguous code."""
    _, switches = old_pool(h, pool)
    values = h.flatten(2).gather(2, switches.flatten(2)).view_as(switches)
    flat = values.flatten(1)
    keep = flat.abs().topk(k, dim=1).indices
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, keep, True)
    values = (flat * mask).view_as(values)
    out = values.new_zeros((*values.shape[:2], math.prod(h.shape[2:])))
    out.scatter_(2, switches.flatten(2), values.flatten(2))
    return out.view(h.shape)


def old_iteration(W: ConvOperator, w, x, z, d, k, pool):
    """``w``: the filters in the default layout, as the old code held them."""
    g = _CONV[W.ndim](d, w, stride=W.stride, padding=W.padding)
    z_new = old_projection(z + g, k, pool)
    xh = _CONV_T[W.ndim](
        z_new, w, stride=W.stride, padding=W.padding, output_padding=W.output_padding
    )
    return z_new, x - xh


def new_iteration(W: ConvOperator, x, z, d, k, pool):
    g = W.matvec(d)
    z_new = model_sparse(z + g, k, pool, check=False).code
    return z_new, x - W.rmatvec(z_new)


# ----------------------------------------------------------------------------- one case


def bench_case(cfg: Config, c: Case) -> dict[str, Any]:
    size = c.D if c.ndim == 1 else (c.D, c.D)
    W = ConvOperator.gaussian(c.K, c.M, c.ell, size, padding=c.padding, seed=cfg.seed)
    w = W.weight.contiguous()  # the old code's filters: default layout (W stores its own)
    blocks = num_blocks(W.out_shape, c.pool)
    k = max(1, round(c.k_fraction * blocks))
    B = c.batch
    z_true = sample_model_sparse(B, W.out_shape, k, c.pool, seed=cfg.seed + 1)
    x = W.rmatvec(z_true).contiguous()  # a user's contiguous signal
    # a mid-run state, contiguous ("before") and in the library's layout ("after")
    z, d = z_true * 0.5, (x - W.rmatvec(z_true * 0.5)).contiguous()
    z = z.contiguous()
    h = (z + W.matvec(d)).contiguous()
    x_cl, z_cl, d_cl, h_cl = (W.native_layout(t) for t in (x, z, d, h))

    za, da = old_iteration(W, w, x, z, d, k, c.pool)
    zb, db = new_iteration(W, x_cl, z_cl, d_cl, k, c.pool)
    diff = {
        "code": float((za - zb).abs().max()),
        "residual": float((da - db).abs().max() / da.abs().max()),
        "same_support": bool(((za != 0) == (zb != 0)).all()),
    }
    if not diff["same_support"]:
        raise RuntimeError(f"{c.name}: the fast iteration changed the support")

    vals = old_pool(h, c.pool)[0].flatten(1)
    pairs = {
        "conv W d": (
            lambda: _CONV[W.ndim](d, w, stride=W.stride, padding=W.padding),
            lambda: W.matvec(d_cl),
        ),
        "conv W d, contiguous input": (
            lambda: _CONV[W.ndim](d, w, stride=W.stride, padding=W.padding),
            lambda: W.matvec(d),
        ),
        "conv-transpose W^T z": (
            lambda: _CONV_T[W.ndim](
                z, w, stride=W.stride, padding=W.padding, output_padding=W.output_padding
            ),
            lambda: W.rmatvec(z_cl),
        ),
        "max pooling with switches": (
            lambda: old_pool(h, c.pool),
            lambda: max_pool_switches(h_cl, c.pool),
        ),
        "top-k of the block maxima": (
            lambda: vals.topk(k, dim=1),
            lambda: vals.topk(k, dim=1, sorted=False),
        ),
        "projection model_sparse": (
            lambda: old_projection(h, k, c.pool),
            lambda: model_sparse(h_cl, k, c.pool, check=False),
        ),
        "bare IHT iteration": (
            lambda: old_iteration(W, w, x, z, d, k, c.pool),
            lambda: new_iteration(W, x_cl, z_cl, d_cl, k, c.pool),
        ),
    }
    fns = {}
    for name, (before, after) in pairs.items():
        fns[f"{name}|before"] = before
        fns[f"{name}|after"] = after
    numbers = {n: calibrate(fn, target_s=cfg.target_s) for n, fn in fns.items()}
    times = measure_interleaved(fns, warmup=0, repeat=cfg.repeat, number=numbers)
    rows = {}
    for name in pairs:
        tb, ta = times[f"{name}|before"], times[f"{name}|after"]
        rows[name] = {
            "before_s": tb.median,
            "after_s": ta.median,
            "speedup": paired_ratio(tb, ta),
            "timings": {"before": tb.as_dict(), "after": ta.as_dict()},
        }
    return {"case": asdict(c), "k": k, "blocks": blocks, "check": diff, "rows": rows}


def run(device: str = "cpu", quick: bool = False, config: Config | None = None) -> dict:
    cfg = config if config is not None else Config.make(device, quick)
    out: dict[str, Any] = {"benchmark": "fastpaths", "config": asdict(cfg)}
    if torch.device(cfg.device).type != "cpu":
        out["skipped"] = "the fast paths are CPU-only; nothing to compare on " + cfg.device
        return out
    load_start = machine_info("cpu").get("load_average_1m")
    with torch.inference_mode():
        out["cases"] = [bench_case(cfg, c) for c in cfg.cases]
    out["machine"] = {**machine_info("cpu"), "load_average_1m_at_start": load_start}
    return out


def _fmt_s(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.3f} s"


def render(result: dict) -> str:
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    lines = [machine_line(result["machine"]), ""]
    for r in result["cases"]:
        c = r["case"]
        ch = r["check"]
        lines += [
            f"{c['name']}, batch {c['batch']}, k = {r['k']} of {r['blocks']} blocks "
            f"(check: same support, max |code diff| {ch['code']:.1e}, residual rel. diff "
            f"{ch['residual']:.1e})",
            f"    {'':<28} {'before':>11} {'after':>11} {'speed-up*':>10}",
        ]
        for name, row in r["rows"].items():
            lines.append(
                f"    {name:<28} {_fmt_s(row['before_s']):>11} {_fmt_s(row['after_s']):>11} "
                f"{row['speedup']:>9.2f}x"
            )
        lines.append("")
    lines.append(
        "* median over interleaved rounds of before/after; 'after' works on the channels-last "
        "state iht() keeps, except 'contiguous input' (the conversion included)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return bench_main(
        "bench_fastpaths",
        __doc__,
        run,
        render,
        argv,
        quick_help="the two small cases only",
        device_option=False,
    )


if __name__ == "__main__":
    sys.exit(main())
