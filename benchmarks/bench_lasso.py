r"""Benchmark 2: Algorithm 2's l1 step, cnninv's FISTA on the conv operators against
scikit-learn's ``Lasso`` (coordinate descent) on the materialised matrix, timed to the same
objective value.

scikit-learn minimises :math:`\frac1{2n}\|x - Az\|^2 + \alpha\|z\|_1` with
:math:`A` = ``W.dense().T`` (:math:`MD \times Kn`) and :math:`n = MD` samples; multiplied by
:math:`2n` it is cnninv's :math:`\|x - \mathbf W^Tz\|^2 + \lambda\|z\|_1` with
:math:`\lambda = 2n\alpha`, so ``alpha = lam / (2 * M * D)``. ``Lasso(fit_intercept=False)``,
float32 like cnninv, ``A`` Fortran-ordered as coordinate descent wants (``W.dense().T`` is);
materialising ``A`` is not timed. Sizes where :math:`A` fits in memory:

* the Figure 2 layer (1-d, K=96, M=32, ell=5, code length 28, signal 32): A is 1024 x 2688;
  one signal, and a batch of 16 (scikit-learn fits the columns of a 2-d ``y`` one after the
  other; cnninv solves the batch at once);
* a 2-d layer (K=64, M=16, 3x3, 14x14 codes, 16x16 signals): A is 4096 x 12544 (205 MB).

The protocol is the SPORCO benchmark's (``_lasso_problem.py``): certified reference,
target :math:`(1+10^{-3})F^\star`, iterations to reach it for every sample (for
scikit-learn: epochs, found by doubling then bisection over ``max_iter`` with ``tol=0``),
then each solver timed for that many, in interleaved rounds. Where the Gram matrix is small
enough (1-d) scikit-learn is also timed with ``precompute=True`` (Gram computed inside the
call, so timed).

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_lasso.py [--quick]
"""

from __future__ import annotations

import copy
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from _lasso_problem import (
    REL_TARGET,
    Problem,
    cnninv_iters_to,
    make_problem,
    objective64,
    pylops_fista_to_target,
)
from _timing import (
    bench_main,
    calibrate,
    machine_info,
    machine_line,
    measure_interleaved,
    paired_ratio,
    resolve_device,
)

from cnninv.recovery import fista

__all__ = ["Config", "render", "run"]


@dataclass(frozen=True)
class Size:
    name: str
    K: int
    M: int
    ell: int
    maps: tuple[int, ...]  # code maps; the signal is maps + ell - 1
    batch: int
    gram: bool  # also time scikit-learn with precompute=True
    pylops_cap: int = 0  # PyLops's FISTA up to this many iterations (0: not run)


@dataclass
class Config:
    device: str = "cpu"
    quick: bool = False
    seed: int = 0
    sizes: tuple[Size, ...] = (
        Size("Figure 2 layer (1-d), one signal", 96, 32, 5, (28,), 1, True, 1000),
        Size("Figure 2 layer (1-d), batch of 16", 96, 32, 5, (28,), 16, True),
        Size("2-d layer K=64, M=16, 3x3, 14x14 codes", 64, 16, 3, (14, 14), 1, False, 300),
    )
    ref_tol: float = 1e-5
    ref_max_iter: int = 5000
    sklearn_max_epochs: int = 20000
    repeat: int = 3
    target_s: float = 0.2

    @classmethod
    def make(cls, device: str = "cpu", quick: bool = False) -> Config:
        if quick:
            return cls(
                device=device,
                quick=True,
                sizes=(Size("Figure 2 layer (1-d), one signal", 96, 32, 5, (28,), 1, True, 200),),
                repeat=2,
                target_s=0.05,
            )
        return cls(device=device)


def _sklearn_fit(A: np.ndarray, Y: np.ndarray, alpha: float, epochs: int, gram: bool):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    model = Lasso(
        alpha=alpha,
        fit_intercept=False,
        max_iter=epochs,
        tol=0.0,
        precompute=gram,
        selection="cyclic",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(A, Y)
    return model.coef_  # (Kn,) or (B, Kn)


def _sklearn_epochs_to(p: Problem, A, Y, alpha, target, gram: bool, cap: int) -> int:
    """Smallest ``max_iter`` whose fit is at or below ``target`` for every sample."""

    def ok(epochs: int) -> bool:
        coef = _sklearn_fit(A, Y, alpha, epochs, gram).reshape(p.x.shape[0], -1)
        return bool((objective64(p, coef) <= target).all())

    lo, hi = 0, 1  # ok(lo) is False (0 epochs = z = 0), find ok(hi)
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > cap:
            raise RuntimeError(f"scikit-learn did not reach the target in {cap} epochs")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def bench_size(cfg: Config, size: Size, device: torch.device) -> dict[str, Any]:
    p_cpu = make_problem(size.K, size.M, size.ell, size.maps, batch=size.batch, seed=cfg.seed)
    p = p_cpu
    if device.type != "cpu":
        W_dev = copy.deepcopy(p_cpu.W).to(device)  # Module.to() moves in place
        p = Problem(W_dev, p_cpu.x.to(device), p_cpu.lam, p_cpu.W64, p_cpu.x64)
    B = size.batch
    A = p_cpu.W.dense(max_entries=10**9).numpy().T  # (MD, Kn), Fortran-ordered, float32
    n_samples = A.shape[0]
    alpha = p.lam / (2 * n_samples)
    Y = p_cpu.x.reshape(B, -1).numpy().T  # (MD, B)
    Y = np.ascontiguousarray(Y[:, 0]) if B == 1 else np.asfortranarray(Y)
    est = p.W.norm_sq_estimate()
    L = 2.0 * est.value  # what fista computes by default (cached on the operator)
    out: dict[str, Any] = {
        "size": asdict(size),
        "A_shape": list(A.shape),
        "A_mbytes": A.nbytes / 1e6,
        "lam_cnninv": p.lam,
        "alpha_sklearn": alpha,
        "lipschitz_cnninv": L,
        "lipschitz_method": est.method,
    }

    t0 = time.perf_counter()
    ref = fista(p.W, p.x, p.lam, tol=cfg.ref_tol, max_iter=cfg.ref_max_iter)
    t_ref = time.perf_counter() - t0
    F_ref = objective64(p, ref.z)
    gap = ref.history[-1].gap.cpu().double().numpy()
    out["cnninv_converged"] = {
        "objective": F_ref.tolist(),
        "iterations": ref.n_iter,
        "max_rel_gap": float(ref.history[-1].rel_gap.max()),
        "certified_lower_bound": (F_ref - gap).tolist(),
        "s": t_ref,
    }
    # scikit-learn to its own convergence (default tol), for the objective it reaches
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    t0 = time.perf_counter()
    model = Lasso(alpha=alpha, fit_intercept=False, max_iter=cfg.sklearn_max_epochs, tol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(A, Y)
    F_sk = objective64(p, model.coef_.reshape(B, -1))
    out["sklearn_converged"] = {
        "objective": F_sk.tolist(),
        "epochs": int(np.max(model.n_iter_)),
        "s": time.perf_counter() - t0,
        "tol": 1e-6,
    }
    F_star = np.minimum(F_ref, F_sk)
    target = (1 + REL_TARGET) * F_star
    out["F_star"] = F_star.tolist()
    out["target"] = target.tolist()

    n_c = cnninv_iters_to(p, target, cfg.ref_max_iter)
    n_s = _sklearn_epochs_to(p, A, Y, alpha, target, False, cfg.sklearn_max_epochs)
    out["iters_to_target"] = {"cnninv": n_c, "sklearn": n_s}

    def first_call():
        p.W.__dict__.get("_derived_cache", {}).clear()  # a first call: the step not cached
        return fista(p.W, p.x, p.lam, max_iter=n_c, tol=0.0)

    # the floor of any FISTA on these operators: its n_c iterations' two products (one
    # W^T, one W each) and nothing else; sklearn's time over it is the most a FISTA that
    # computes with these convolutions could reach (the "ceiling")
    Wx = p.W.matvec(p.W.native_layout(p.x))
    scale = 1.0 / L  # keeps the repeated products at the scale of the data

    def products_only():
        a = Wx
        for _ in range(n_c):
            a = p.W.matvec(p.W.rmatvec(a)).mul_(scale)
        return a

    fns = {
        "cnninv_fista": first_call,
        "cnninv_fista_given_L": lambda: fista(p.W, p.x, p.lam, max_iter=n_c, tol=0.0, lipschitz=L),
        "cnninv_products_only": products_only,
        "sklearn_lasso": lambda: _sklearn_fit(A, Y, alpha, n_s, False),
    }
    if size.gram:
        n_g = _sklearn_epochs_to(p, A, Y, alpha, target, True, cfg.sklearn_max_epochs)
        out["iters_to_target"]["sklearn_gram"] = n_g
        fns["sklearn_lasso_gram"] = lambda: _sklearn_fit(A, Y, alpha, n_g, True)
    numbers = {
        name: calibrate(fn, device=device, target_s=cfg.target_s) for name, fn in fns.items()
    }
    times = measure_interleaved(fns, device=device, repeat=cfg.repeat, number=numbers)
    out["timings"] = {name: t.as_dict() for name, t in times.items()}
    out["objective_at_timed_iterations"] = {
        "cnninv_fista": objective64(p, fns["cnninv_fista"]().z).tolist(),
        **{
            name: objective64(p, fn().reshape(B, -1)).tolist()
            for name, fn in fns.items()
            if name.startswith("sklearn")
        },
    }
    out["ratios"] = {
        f"{sk}_vs_{c}": paired_ratio(times[sk], times[c])
        for sk in fns
        if sk.startswith("sklearn")
        for c in ("cnninv_fista", "cnninv_fista_given_L", "cnninv_products_only")
    }
    if size.pylops_cap:
        try:
            py = pylops_fista_to_target(p_cpu, target, size.pylops_cap)
        except ImportError as exc:
            py = {"skipped": f"PyLops is not installed ({exc})"}
        if "s" in py:
            py["ratio_vs_cnninv"] = py["s"] / times["cnninv_fista"].median
        out["pylops"] = py
    return out


def run(device: str = "cpu", quick: bool = False, config: Config | None = None) -> dict:
    cfg = config if config is not None else Config.make(device, quick)
    dev = resolve_device(cfg.device)
    try:
        import sklearn
    except ImportError as exc:
        return {"benchmark": "lasso", "skipped": f"scikit-learn is not installed ({exc}); "
                "pip install -e '.[bench]'"}  # fmt: skip
    load_start = machine_info(dev).get("load_average_1m")
    with torch.inference_mode():
        sizes = [bench_size(cfg, s, dev) for s in cfg.sizes]
    return {
        "benchmark": "lasso",
        "config": asdict(cfg),
        "machine": {
            **machine_info(dev),
            "load_average_1m_at_start": load_start,
            "sklearn_version": sklearn.__version__,
        },
        "sizes": sizes,
    }


TARGET = 10.0


def targets(result: dict) -> list[dict]:
    """Target: cnninv >= 10x faster than scikit-learn's Lasso to the same objective (the
    default call, its step computed as on a first call; with L given beside)."""
    rows = []
    for r in result["sizes"]:
        ra = r["ratios"]
        v, vl = ra["sklearn_lasso_vs_cnninv_fista"], ra["sklearn_lasso_vs_cnninv_fista_given_L"]
        rows.append(
            {
                "name": f"l1 step vs scikit-learn Lasso, {r['size']['name']}",
                "target": f">= {TARGET:.0f}x",
                "measured": f"{v:.1f}x ({vl:.1f}x with L given; ceiling "
                f"{ra['sklearn_lasso_vs_cnninv_products_only']:.1f}x: the products alone)",
                "met": v >= TARGET,
            }
        )
    return rows


def _fmt_s(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def _fmt_obj(v: list[float]) -> str:
    return f"{v[0]:.8g}" if len(v) == 1 else f"sum {math.fsum(v):.8g} over {len(v)}"


def render(result: dict) -> str:
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    m = result["machine"]
    lines = [
        machine_line(m),
        f"scikit-learn {m['sklearn_version']}; float32 on both sides; objectives in cnninv's "
        "form, evaluated in float64 by the same code",
        "",
    ]
    for r in result["sizes"]:
        sz = r["size"]
        cc, sk = r["cnninv_converged"], r["sklearn_converged"]
        it = r["iters_to_target"]
        lines += [
            f"{sz['name']}: A = W.dense().T is {r['A_shape'][0]}x{r['A_shape'][1]} "
            f"({r['A_mbytes']:.0f} MB); lam = {r['lam_cnninv']:.4g}, sklearn alpha = "
            f"{r['alpha_sklearn']:.4g}",
            f"    converged: cnninv {_fmt_obj(cc['objective'])} ({cc['iterations']} it, max rel."
            f" gap {cc['max_rel_gap']:.1e}, {_fmt_s(cc['s'])}); scikit-learn "
            f"{_fmt_obj(sk['objective'])} ({sk['epochs']} epochs, tol {sk['tol']:g}, "
            f"{_fmt_s(sk['s'])})",
            f"    cnninv's step: 2 x {r['lipschitz_cnninv'] / 2:.5g} by {r['lipschitz_method']}"
            " (norm_sq_estimate; 'cnninv fista (default)' computes it, as a first call does)",
            f"    target (1 + 1e-3) F* per sample; iterations to it: cnninv {it['cnninv']}, "
            f"scikit-learn {it['sklearn']} epochs"
            + (f" ({it['sklearn_gram']} with the Gram matrix)" if "sklearn_gram" in it else ""),
            f"    {'time to target':<36} {'median':>10} {'(min)':>10}  objective reached",
        ]
        labels = {
            "cnninv_fista": "cnninv fista (default, step computed)",
            "cnninv_fista_given_L": "cnninv fista, lipschitz given",
            "cnninv_products_only": "its products alone (W^T, W per it.)",
            "sklearn_lasso": "scikit-learn Lasso",
            "sklearn_lasso_gram": "scikit-learn Lasso, precompute=True",
        }
        obj = r["objective_at_timed_iterations"]
        for key, label in labels.items():
            if key in r["timings"]:
                t = r["timings"][key]
                o = (
                    "-"
                    if key == "cnninv_products_only"
                    else _fmt_obj(obj.get(key, obj["cnninv_fista"]))
                )
                lines.append(
                    f"    {label:<36} {_fmt_s(t['median_s']):>10} {_fmt_s(t['min_s']):>10}  {o}"
                )
        ra = r["ratios"]
        parts = [
            f"vs {name.removesuffix('_vs_cnninv_fista')} {v:.1f}x"
            for name, v in ra.items()
            if name.endswith("_vs_cnninv_fista")
        ]
        parts_l = [
            f"{v:.1f}x" for name, v in ra.items() if name.endswith("_vs_cnninv_fista_given_L")
        ]
        parts_p = [
            f"{v:.1f}x" for name, v in ra.items() if name.endswith("_vs_cnninv_products_only")
        ]
        lines.append(
            "    speed-up of cnninv (default)*: "
            + ", ".join(parts)
            + "; with L given: "
            + ", ".join(parts_l)
            + "; ceiling (the products alone): "
            + ", ".join(parts_p)
        )
        py = r.get("pylops")
        if py and "skipped" in py:
            lines.append(f"    PyLops: skipped ({py['skipped']})")
        elif py:
            its = py["iterations"]
            reach = "reached" if py["reached"] else f"NOT reached in {py['cap']} iterations"
            bound = "" if py["reached"] else ">= "
            lines.append(
                f"    PyLops fista on its ConvolveND operator (step by Op.eigs): "
                f"{its[0] if len(its) == 1 else its} it, {_fmt_s(py['s'])} (one run), target "
                f"{reach}, {_fmt_obj(py['objective'])}; cnninv (default) {bound}"
                f"{py['ratio_vs_cnninv']:.0f}x faster"
            )
        lines.append("")
    lines.append(
        "* median over interleaved rounds of (scikit-learn time / cnninv time); cnninv "
        "default includes computing its step (the DFT bound or Lanczos, as a first call)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return bench_main(
        "bench_lasso", __doc__, run, render, argv, quick_help="the smallest size only"
    )


if __name__ == "__main__":
    sys.exit(main())
