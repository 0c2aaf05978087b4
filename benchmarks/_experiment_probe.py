"""Run one experiment with probes on the functions where its time goes (the child process
of ``bench_experiments.py``).

Usage: ``python _experiment_probe.py OUT.json NAME... [--quick] [--threads N] [--device D]``.
It runs ``cnninv.reproduce.reproduce(NAMES, tmpdir)`` (the JSONs, the figures, the report,
as the command line does) and writes to ``OUT.json``, per experiment: the wall time, its
stage-by-stage split, the floating-point work of the products and the peak memory (the
kernel's peak RSS, reset at each experiment's start); and the whole run's time. Whatever
``cnninv`` is first on ``sys.path`` runs, so the same probe times an older tree
(``PYTHONPATH=old/src``) beside the current one.

Stages (exclusive times: a probe's time less the probes called inside it):

* ``convolutions``: ``torch.nn.functional.conv*`` (the operators' products and the
  networks' forward passes) and ``embedding_bag`` (the sparse-code products);
* ``projection``: the model-sparse projection ``model_sparse`` / ``model_sparse_entries``;
* ``sampling``: ``sample_model_sparse`` and the random draws of the filters;
* ``step sizes``: the power method, Lanczos and the DFT bound;
* ``I/O``: weights, photos, JSON and figure files;
* ``plotting``: rendering the figures and the report (matplotlib);
* ``element-wise and Python``: the rest (tensor arithmetic between the products, norms,
  the solvers' bookkeeping, the interpreter).

FLOPs are counted at the convolutions: ``2 * outputs * (C_in / groups) * taps`` for a
convolution, the same for its transpose counted from its input. A sparse-code product
is counted twice: as the work it executes (``2 * slots * row width`` of its
``embedding_bag``) and as the dense product it stands for (``nominal``), so that an
experiment's arithmetic is the same whichever path computes it.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


class Probes:
    """Exclusive wall time per stage and FLOP counters, with a stack for nesting."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.flops = {"executed": 0, "nominal": 0}
        self._stack: list[list] = []  # [stage, start, child time]

    @contextmanager
    def stage(self, name: str):
        self._stack.append([name, time.perf_counter(), 0.0])
        try:
            yield
        finally:
            stage, start, child = self._stack.pop()
            elapsed = time.perf_counter() - start
            self.times[stage] = self.times.get(stage, 0.0) + elapsed - child
            self.calls[stage] = self.calls.get(stage, 0) + 1
            if self._stack:
                self._stack[-1][2] += elapsed

    def wrap(self, owner, attr: str, stage: str, count=None) -> bool:
        fn = getattr(owner, attr, None)
        if fn is None or getattr(fn, "_probed", False):
            return False

        @functools.wraps(fn)
        def probed(*args, **kwargs):
            with self.stage(stage):
                out = fn(*args, **kwargs)
            if count is not None:
                count(out, *args, **kwargs)
            return out

        probed._probed = True
        setattr(owner, attr, probed)
        return True


def _conv_flops(out, x, weight, *args, **kwargs) -> int:
    """Each output sums (C_in / groups) * taps products (``weight.shape[1]`` is C_in/groups)."""
    return 2 * out.numel() * weight.shape[1] * math.prod(weight.shape[2:])


def _conv_t_flops(out, z, weight, *args, **kwargs) -> int:
    """Each input entry is spread over (C_out / groups) * taps outputs."""
    return 2 * z.numel() * weight.shape[1] * math.prod(weight.shape[2:])


#: (module, class or None, function, stage): what is timed, where it is defined
TARGETS = [
    ("cnninv.sparsity", None, "model_sparse", "projection"),
    ("cnninv.sparsity", None, "model_sparse_entries", "projection"),
    ("cnninv.theory.rip", None, "sample_model_sparse", "sampling"),
    ("cnninv.operators.base", "LinearOperator", "norm_sq", "step sizes"),
    ("cnninv.operators.base", "LinearOperator", "norm_sq_lanczos", "step sizes"),
    ("cnninv.operators.conv", None, "_dft_norm_sq", "step sizes"),
    ("cnninv.io", None, "atomic_write_json", "I/O"),
    ("cnninv.io", None, "atomic_write", "I/O"),
    ("cnninv.models.weights", None, "load_network", "I/O"),
    ("cnninv.data.photos", None, "load_photos", "I/O"),
    ("cnninv.report", None, "render_experiment", "plotting"),
    ("cnninv.report", None, "build_report", "plotting"),
]


def _import_all() -> None:
    """Import every cnninv module (so that names imported elsewhere can be rebound)."""
    import pkgutil

    import cnninv

    for info in pkgutil.walk_packages(cnninv.__path__, "cnninv."):
        if info.name.rsplit(".", 1)[-1] == "__main__":  # importing it runs the command line
            continue
        try:
            importlib.import_module(info.name)
        except Exception:  # an optional dependency missing: that module is not used
            pass


def install(probes: Probes) -> list[str]:
    """Wrap what is there (an older tree lacks the newer functions); returns the names."""
    import torch.nn.functional as F

    _import_all()
    done = []

    def count(kind):
        def add(out, x, weight, *a, **k):
            f = (_conv_flops if kind == "conv" else _conv_t_flops)(out, x, weight)
            probes.flops["executed"] += f
            probes.flops["nominal"] += f

        return add

    for name in ("conv1d", "conv2d"):
        if probes.wrap(F, name, "convolutions", count("conv")):
            done.append(f"F.{name}")
    for name in ("conv_transpose1d", "conv_transpose2d"):
        if probes.wrap(F, name, "convolutions", count("conv_t")):
            done.append(f"F.{name}")

    def count_bag(out, rows, table, *a, **k):
        probes.flops["executed"] += 2 * rows.numel() * table.shape[1]

    if probes.wrap(F, "embedding_bag", "convolutions", count_bag):
        done.append("F.embedding_bag")
    sparse = sys.modules.get("cnninv.operators.sparse")
    if sparse is not None:  # the nominal work of a sparse product: the dense ones it replaces

        def per_sample(self) -> int:
            return 2 * self.K * (self.M // self.groups) * self.taps * math.prod(self.out_size)

        def nominal(out, self, kind, code, *a, **k):
            products = 1 if kind == "place" else 2
            probes.flops["nominal"] += products * per_sample(self) * code.index.shape[0]

        def nominal_pairs(out, self, rows, cols):
            probes.flops["nominal"] += per_sample(self) * rows.shape[0]
            probes.flops["executed"] += 2 * out.numel()

        probes.wrap(sparse.SparseKernels, "_apply", "convolutions", nominal)
        probes.wrap(sparse.SparseKernels, "gram_pairs", "convolutions", nominal_pairs)
        done.append("SparseKernels")
    for module_name, cls, attr, stage in TARGETS:
        module = sys.modules.get(module_name)
        owner = module if cls is None or module is None else getattr(module, cls, None)
        original = getattr(owner, attr, None) if owner is not None else None
        if original is None or not probes.wrap(owner, attr, stage):
            continue
        done.append(f"{module_name}.{attr}")
        if cls is not None:
            continue
        wrapped = getattr(owner, attr)
        # modules that imported the function by name hold the original: rebind them
        for mod in list(sys.modules.values()):
            name = getattr(mod, "__name__", "") or ""
            if name.startswith("cnninv") and vars(mod).get(attr) is original:
                setattr(mod, attr, wrapped)
    return done


def _peak_rss_reset() -> None:
    """Reset the kernel's peak RSS of this process (Linux >= 4.0), so that VmHWM is the peak
    since now; a no-op elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak_rss() -> int | None:
    try:
        with open("/proc/self/status", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("names", nargs="+", help="experiment names, or 'all'")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides"
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads)
    import cnninv
    import cnninv.reproduce as rep

    probes = Probes()
    probed = install(probes)
    import_s = time.perf_counter() - t0
    rows: dict[str, dict] = {}
    current: dict = {}

    def close(now: float) -> None:
        if not current:
            return
        stages = {k: v - current["times0"].get(k, 0.0) for k, v in probes.times.items()}
        stages = {k: v for k, v in stages.items() if v > 0}
        wall = now - current["start"]
        stages["element-wise and Python"] = max(0.0, wall - sum(stages.values()))
        rows[current["name"]] = {
            "wall_s": wall,
            "stages_s": stages,
            "flops": {k: v - current["flops0"][k] for k, v in probes.flops.items()},
            "peak_rss_bytes": _peak_rss(),
        }
        current.clear()

    def log(msg: str) -> None:
        # reproduce logs "[cnninv] NAME: title" at the start of each experiment and
        # "[cnninv] NAME: done in ..." at its end (figures included); then the report
        now = time.perf_counter()
        text = str(msg).removeprefix("[cnninv] ")
        name, _, rest = text.partition(": ")
        if rest.startswith("done in"):
            close(now)
        elif name != "report" and not current:
            _peak_rss_reset()
            current.update(
                name=name, start=now, times0=dict(probes.times), flops0=dict(probes.flops)
            )

    names = list(args.names)
    if "all" in names:
        from cnninv.experiments import REGISTRY

        names = list(REGISTRY)
    errors = {}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        # one experiment at a time in this process, as `reproduce all` runs them, so that
        # one failing does not lose the others' figures (the report is rebuilt after each)
        for name in names:
            try:
                rep.reproduce(
                    [name], tmp, quick=args.quick, device=args.device, log=log,
                    overrides=dict(kv.split("=", 1) for kv in args.set) or None,
                )  # fmt: skip
            except Exception as exc:  # recorded, and the next experiment runs
                current.clear()
                errors[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
        total = time.perf_counter() - start
        elapsed = {}
        for path in Path(tmp).glob("*.json"):
            try:
                data = json.loads(path.read_text())
                elapsed[data.get("experiment")] = data.get("elapsed_s")
            except (OSError, ValueError):
                pass
    for name, row in rows.items():
        row["elapsed_s_in_json"] = elapsed.get(name)
    out = {
        "cnninv": getattr(cnninv, "__file__", ""),
        "threads": torch.get_num_threads(),
        "import_s": import_s,
        "total_s": total,
        "experiments": rows,
        "errors": errors,
        "peak_rss_bytes": _peak_rss(),
        "probed": probed,
    }
    Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
