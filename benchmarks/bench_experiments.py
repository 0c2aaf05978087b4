r"""Benchmark 7: whole experiments against their arithmetic, stage by stage, and the thread
count.

(a) **Every experiment's default configuration, end to end**: one child process runs
    ``cnninv reproduce all`` (default settings, ``--threads 1``) with probes
    (``_experiment_probe.py``) that split each experiment's wall time into stages
    (convolutions, projection, sampling, step sizes, I/O, plotting, and the rest:
    element-wise tensor arithmetic and Python), count the floating-point work of its
    products, and read its peak memory (the kernel's peak RSS, reset at each experiment's
    start). Its *arithmetic* is that work at the machine's matmul rate, measured in the
    same run (a 2048 x 2048 float32 ``torch.matmul`` on the same thread count, before and
    after each child): ``wall / (FLOPs / matmul rate)`` says how far the experiment is from
    the limit. The work is counted *nominally*: a product computed on sparse codes counts
    as the dense convolution it stands for (its executed work is shown beside), so that
    the arithmetic of an experiment does not depend on the path that computes it. Decoders
    come from a copy of the cnninv cache (whatever is there; missing ones are trained, and
    counted).
(b) **Before and after**: Figure 2, Figure 3 and Table 4 (activations), each in a child
    process of the tree before this work (``baseline_rev``, extracted with ``git
    archive``) and of this tree, one after the other, same threads: the speed-up.
(c) **Threads**: ``cnninv reproduce fig2`` (default settings) with 1 and 2 threads, on
    the machine as it is and beside one busy process of our own (a Python loop), and the
    command line's default (:func:`cnninv.training.default_threads`).

Usage::

    python benchmarks/bench_experiments.py [--quick]       # quick: fig2 and prop1 only
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from _timing import bench_main, fmt_load, machine_info, machine_line

__all__ = ["Config", "merge", "render", "run", "targets"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROBE = HERE / "_experiment_probe.py"


@dataclass
class Config:
    device: str = "cpu"
    quick: bool = False
    threads: int = 1
    #: (a): the experiments of one `reproduce` run ("all": every registered one)
    experiments: tuple[str, ...] = ("all",)
    #: (b): timed in the tree before this work too
    compare: tuple[str, ...] = ("fig2", "fig3", "table4-activations")
    #: (b): overrides for this tree's run so that it does the before tree's work (Figure 3
    #: gained the λ sweep of issue 13 after the baseline)
    like_for_like: dict = field(default_factory=lambda: {"fig3": {"sweep_lambdas": ""}})
    baseline_rev: str = "76e115d"  # main before issue 14
    #: (c): fig2's default run with these thread counts, as is and beside a busy process
    thread_counts: tuple[int, ...] = (1, 2)
    timeout_s: int = 4 * 3600

    @classmethod
    def make(cls, device: str = "cpu", quick: bool = False) -> Config:
        if quick:
            return cls(
                device=device,
                quick=True,
                experiments=("fig2", "prop1"),
                compare=("fig2",),
                thread_counts=(),
            )
        return cls(device=device)


# ----------------------------------------------------------------------------- pieces


def matmul_gflops(threads: int, device: torch.device, n: int = 2048, repeat: int = 5) -> float:
    """GFLOP/s of an ``n x n`` float32 matmul (median of ``repeat`` calls after a warm-up)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(n, n, device=device)
        b = torch.randn(n, n, device=device)
        torch.matmul(a, b)
        times = []
        for _ in range(repeat):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            torch.matmul(a, b)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return 2 * n**3 / statistics.median(times) / 1e9
    finally:
        torch.set_num_threads(before)


def baseline_tree(rev: str) -> tuple[Path | None, str]:
    """The source tree at ``rev`` (``git archive``) in a temporary folder, or None and why."""
    if not (ROOT / ".git").exists():
        return None, "no git checkout here"
    tmp = Path(tempfile.mkdtemp(prefix="cnninv-baseline-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        return None, f"git archive {rev} failed: {exc}"
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(tmp, filter="data")
    return tmp / "src", f"git archive {rev}"


def run_probe(
    names: list[str],
    cfg: Config,
    src: Path,
    *,
    threads: int | None = None,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One child process running the probe on ``names`` with the tree at ``src``."""
    threads = cfg.threads if threads is None else threads
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "probe.json"
        cmd = [sys.executable, str(PROBE), str(out), *names, "--threads", str(threads)]
        cmd += [f"--set={k}={v}" for k, v in (overrides or {}).items()]
        cmd += ["--device", cfg.device] + (["--quick"] if cfg.quick else [])
        child_env = {
            **os.environ,
            "PYTHONPATH": str(src),
            "OMP_NUM_THREADS": str(threads),
            "OPENBLAS_NUM_THREADS": str(threads),
            "CNNINV_THREADS": str(threads),
            **(env or {}),
        }
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=HERE, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            output, _ = proc.communicate(timeout=cfg.timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RuntimeError(f"{names}: over {cfg.timeout_s} s") from None
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = output.decode(errors="replace")[-2000:]
            raise RuntimeError(f"{names} failed (exit {proc.returncode}):\n{tail}")
        result = json.loads(out.read_text())
    result["process_wall_s"] = wall
    return result


def _timed_with_rate(fn, cfg: Config, device: torch.device) -> tuple[Any, float]:
    """``fn()`` between two matmul measurements; returns its result and their median."""
    rates = [matmul_gflops(cfg.threads, device)]
    out = fn()
    rates.append(matmul_gflops(cfg.threads, device))
    return out, statistics.median(rates)


def _busy():
    """A busy process of our own (the 'other job' of a shared machine)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


# ----------------------------------------------------------------------------- run


def run(device: str = "cpu", quick: bool = False, config: Config | None = None) -> dict:
    cfg = config if config is not None else Config.make(device, quick)
    dev = torch.device(cfg.device)
    load_start = machine_info(dev).get("load_average_1m")
    src = ROOT / "src"
    out: dict[str, Any] = {"benchmark": "experiments", "config": asdict(cfg)}

    # (a) every experiment, end to end, in one child (decoders from a copy of the cache)
    cache = Path(os.environ.get("CNNINV_CACHE", Path.home() / ".cache" / "cnninv"))
    with tempfile.TemporaryDirectory(prefix="cnninv-cache-") as cache_copy:
        decoders = sorted(p.name for p in (cache / "decoders").glob("*.safetensors"))
        if (cache / "decoders").is_dir():
            shutil.copytree(cache / "decoders", Path(cache_copy) / "decoders")
        probe, rate = _timed_with_rate(
            lambda: run_probe(list(cfg.experiments), cfg, src, env={"CNNINV_CACHE": cache_copy}),
            cfg,
            dev,
        )
    rows = {}
    for name, r in probe["experiments"].items():
        nominal = r["flops"]["nominal"]
        arithmetic = nominal / (rate * 1e9)
        rows[name] = {
            **r,
            "matmul_gflops": rate,
            "arithmetic_s": arithmetic,
            "vs_arithmetic": r["wall_s"] / arithmetic if arithmetic > 0 else None,
        }
    out["all"] = {
        "names": list(cfg.experiments),
        "errors": probe.get("errors", {}),
        "total_s": probe["total_s"],
        "process_wall_s": probe["process_wall_s"],
        "import_s": probe["import_s"],
        "matmul_gflops": rate,
        "decoders_in_cache": decoders,
        "experiments": rows,
    }

    # (b) before and after, one after the other
    base_src, how = baseline_tree(cfg.baseline_rev)
    out["compare"] = {"baseline": how, "rows": {}}
    if base_src is not None:
        try:
            for name in cfg.compare:
                try:
                    before, r0 = _timed_with_rate(
                        lambda n=name: run_probe([n], cfg, base_src), cfg, dev
                    )
                    same = cfg.like_for_like.get(name)
                    after, r1 = _timed_with_rate(
                        lambda n=name, o=same: run_probe([n], cfg, src, overrides=o), cfg, dev
                    )
                    b, a = before["experiments"][name], after["experiments"][name]
                except (RuntimeError, KeyError) as exc:  # recorded; the others still run
                    out["compare"].setdefault("errors", {})[name] = str(exc)[-500:]
                    continue
                out["compare"]["rows"][name] = {
                    "before_s": b["wall_s"],
                    "after_s": a["wall_s"],
                    "speedup": b["wall_s"] / a["wall_s"],
                    "after_overrides": same or {},
                    "before_stages_s": b["stages_s"],
                    "after_stages_s": a["stages_s"],
                    "matmul_gflops": [r0, r1],
                }
        finally:
            shutil.rmtree(base_src.parent, ignore_errors=True)

    # (c) threads: fig2's default run, as is and beside a busy process
    from cnninv.training import default_threads

    out["threads"] = {"default_threads": default_threads(), "cpus": os.cpu_count(), "rows": []}
    for loaded in (False, True):
        for n in cfg.thread_counts:
            busy = _busy() if loaded else None
            try:
                time.sleep(0.5 if loaded else 0)
                r = run_probe(["fig2"], cfg, src, threads=n)
                wall = r["experiments"]["fig2"]["wall_s"]
            except (RuntimeError, KeyError) as exc:
                out["threads"].setdefault("errors", []).append(str(exc)[-300:])
                continue
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            out["threads"]["rows"].append({"threads": n, "busy_process": loaded, "wall_s": wall})
    out["machine"] = {**machine_info(dev), "load_average_1m_at_start": load_start}
    return out


# ----------------------------------------------------------------------------- merge


def _part(result: dict, replaces: list[str] | None = None) -> dict:
    a, m = result["all"], result["machine"]
    return {
        "names": list(a["names"]),
        "total_s": a["total_s"],
        "matmul_gflops": a["matmul_gflops"],
        "load_average_1m": [m.get("load_average_1m_at_start"), m.get("load_average_1m")],
        "replaces": list(replaces or []),
    }


def merge(earlier: dict | None, later: dict) -> dict:
    """Two results of this benchmark as one, for ``run_all.py --merge``: the experiments of
    an ``--only`` run join (a) of the other run (which left them out with ``--skip``), and
    the total is the sum of the parts, each part recorded (its experiments, time, matmul
    rate and load) in ``all["parts"]``; (b) and (c) are the full run's. An experiment
    the other run has already is re-measured: its row is replaced, the total changes by
    the difference, and the part says which rows it replaced. Without an ``--only`` run
    among the two, the later result stands."""
    if earlier is None or not (earlier.get("only") or later.get("only")):
        return later
    full, part = (later, earlier) if earlier.get("only") and not later.get("only") else (
        earlier, later
    )  # fmt: skip
    out = copy.deepcopy(full)
    a, b = out["all"], part["all"]
    replaced = [n for n in b["names"] if n in a["experiments"]]
    parts = a.setdefault("parts", [_part(full)])
    parts.append(_part(part, replaced))
    a["names"] = a["names"] + [n for n in b["names"] if n not in a["names"]]
    a["total_s"] += b["total_s"] - sum(a["experiments"][n]["wall_s"] for n in replaced)
    a["experiments"].update(b["experiments"])
    a["errors"] = {**a.get("errors", {}), **b.get("errors", {})}
    a["import_s"] += b["import_s"]
    a["decoders_in_cache"] = sorted(set(a["decoders_in_cache"]) | set(b["decoders_in_cache"]))
    if out.get("only"):  # two --only runs: still a part, now of both
        out["only"] = out["only"] + [n for n in b["names"] if n not in out["only"]]
    else:
        left = [n for n in out.get("left_out", []) if n not in b["names"]]
        if left:
            out["left_out"] = left
        else:
            out.pop("left_out", None)
    if out.get("elapsed_s") is not None and part.get("elapsed_s") is not None:
        out["elapsed_s"] += part["elapsed_s"]
    return out


# ----------------------------------------------------------------------------- targets


def _thread_rows(result: dict) -> dict[tuple[int, bool], float]:
    return {(r["threads"], r["busy_process"]): r["wall_s"] for r in result["threads"]["rows"]}


def _sets(overrides: dict) -> str:
    """Overrides as the command line gives them."""
    return ", ".join(f"--set {k}={v}" for k, v in overrides.items())


def targets(result: dict) -> list[dict]:
    rows = []
    quick = result["config"]["quick"]
    fig2 = result["all"]["experiments"].get("fig2")
    if fig2 is not None:
        v = fig2["vs_arithmetic"]
        rows.append(
            {
                "name": "Figure 2 default, wall time vs its arithmetic at the matmul rate",
                "target": "<= 3x" if not quick else "(quick: no target)",
                "measured": f"{v:.2f}x ({fig2['wall_s']:.1f} s vs {fig2['arithmetic_s']:.1f} s)",
                "met": None if quick else v <= 3,
            }
        )
    for name, label in (("fig3", "Figure 3"), ("table4-activations", "Table 4 (activations)")):
        r = result["compare"]["rows"].get(name)
        if r is None:
            continue
        rows.append(
            {
                "name": f"{label} default, speed-up over the tree before (same threads)",
                "target": ">= 2x",
                "measured": f"{r['speedup']:.2f}x ({r['before_s']:.0f} s -> {r['after_s']:.0f} s"
                + (
                    f"; after with {_sets(r['after_overrides'])}"
                    if r.get("after_overrides")
                    else ""
                )
                + ")",
                "met": r["speedup"] >= 2,
            }
        )
    if not quick:
        rows.append(
            {
                "name": "cnninv reproduce all (default settings), end to end",
                "target": "timed",
                "measured": f"{result['all']['total_s'] / 60:.1f} min at 1 thread"
                + _parts_summary(result["all"].get("parts", []))
                + (
                    f" without {', '.join(result['left_out'])} (left out: not end to end)"
                    if result.get("left_out")
                    else ""
                ),
                "met": None,
            }
        )
    t = _thread_rows(result)
    d = result["threads"]["default_threads"]
    if (d, True) in t and t:
        best = min(v for (n, busy), v in t.items() if busy)
        rows.append(
            {
                "name": "fig2 with the default threads beside a busy process, vs the best count",
                "target": "<= 1.2x (no collapse)",
                "measured": f"{t[(d, True)] / best:.2f}x (default {d} thread(s))",
                "met": t[(d, True)] / best <= 1.2,
            }
        )
    return rows


# ----------------------------------------------------------------------------- render


def _fmt_s(s: float) -> str:
    return f"{s * 1e3:.0f} ms" if s < 1 else (f"{s:.1f} s" if s < 600 else f"{s / 60:.1f} min")


STAGES = (
    "convolutions",
    "projection",
    "sampling",
    "step sizes",
    "I/O",
    "plotting",
    "element-wise and Python",
)


def _replaced(parts: list[dict]) -> list[str]:
    return [n for p in parts for n in p.get("replaces", [])]


def _parts_summary(parts: list[dict]) -> str:
    """How a merged total was made, for the target row."""
    if not parts:
        return ""
    again = _replaced(parts)
    return f", the sum of {len(parts)} runs" + (
        f" ({', '.join(again)} re-measured: its earlier time taken out)" if again else ""
    )


def _parts_lines(parts: list[dict]) -> list[str]:
    """What each run of a merged (a) did (``merge``): its experiments, time, matmul rate,
    load."""
    if not parts:
        return []
    again = _replaced(parts)
    lines = [
        f"    the sum of {len(parts)} runs"
        + (f", less the earlier time of {', '.join(again)} (re-measured)" if again else "")
        + " (each row's arithmetic at its own run's rate):"
    ]
    for i, p in enumerate(parts, 1):
        load = ", ".join(fmt_load(v) for v in p["load_average_1m"])
        lines.append(
            f"      run {i}: {len(p['names'])} experiment(s) ({', '.join(p['names'])}), "
            f"{_fmt_s(p['total_s'])}, matmul {p['matmul_gflops']:.0f} GFLOP/s, "
            f"load average at start, end: {load}"
            + (
                f"; re-measured: replaces the earlier row of {', '.join(p['replaces'])}"
                if p.get("replaces")
                else ""
            )
        )
    return lines


def render(result: dict) -> str:
    m = result["machine"]
    a = result["all"]
    lines = [
        machine_line(m),
        f"one child process per run, --threads {result['config']['threads']} "
        f"(OMP_NUM_THREADS likewise); matmul 2048x2048 float32 in the same run: "
        f"{a['matmul_gflops']:.0f} GFLOP/s (median before/after)",
        "",
        f"(a) cnninv reproduce {' '.join(a['names'])}: {_fmt_s(a['total_s'])} end to end "
        f"(plus {a['import_s']:.1f} s of imports); decoders in the cache copy: "
        f"{len(a['decoders_in_cache'])}"
        + (
            f"; left out (--skip): {', '.join(result['left_out'])}"
            if result.get("left_out")
            else ""
        ),
        *_parts_lines(a.get("parts", [])),
        f"    {'experiment':<20} {'wall':>8} {'peak':>8} {'GFLOP':>9} {'(exec.)':>9} "
        f"{'arith.':>8} {'x arith':>8}  stages",
    ]
    for name, err in a.get("errors", {}).items():
        lines.append(f"    {name:<20} FAILED: {err}")
    for name, r in a["experiments"].items():
        peak = r.get("peak_rss_bytes")
        share = ", ".join(
            f"{s} {r['stages_s'][s] / r['wall_s']:.0%}"
            for s in STAGES
            if r["stages_s"].get(s, 0) / max(r["wall_s"], 1e-9) >= 0.005
        )
        va = r["vs_arithmetic"]
        lines.append(
            f"    {name:<20} {_fmt_s(r['wall_s']):>8} "
            f"{'' if peak is None else f'{peak / 1e6:.0f} MB':>8} "
            f"{r['flops']['nominal'] / 1e9:>9.1f} {r['flops']['executed'] / 1e9:>9.1f} "
            f"{_fmt_s(r['arithmetic_s']):>8} {'' if va is None else f'{va:.1f}x':>8}  {share}"
        )
    c = result["compare"]
    if result["config"]["compare"]:  # an --only run has no (b)
        lines += ["", f"(b) before ({c['baseline']}) and after, same threads:"]
    for name, r in c["rows"].items():
        lines.append(
            f"    {name:<20} {_fmt_s(r['before_s']):>8} -> {_fmt_s(r['after_s']):>8}  "
            f"{r['speedup']:.2f}x"
            + (
                f"  (after: {_sets(r['after_overrides'])}, the before tree's work)"
                if r.get("after_overrides")
                else ""
            )
        )
        for label, key in (("before", "before_stages_s"), ("after", "after_stages_s")):
            st = r[key]
            total = sum(st.values())
            lines.append(
                f"    {'':<20} {label:>6}: "
                + ", ".join(f"{s} {_fmt_s(st[s])}" for s in STAGES if st.get(s, 0) / total >= 0.01)
            )
    t = result["threads"]
    if t["rows"]:
        lines += [
            "",
            f"(c) threads: cnninv reproduce fig2 (default settings) on {t['cpus']} CPUs; the "
            f"command line's default here: {t['default_threads']}",
        ]
        for r in t["rows"]:
            where = "beside a busy process" if r["busy_process"] else "machine as it is"
            lines.append(f"    {r['threads']} thread(s), {where:<22} {_fmt_s(r['wall_s']):>8}")
    lines += [
        "",
        "GFLOP: the products' work, a sparse-code product counted as the dense convolution it "
        "stands for ('exec.': what ran); arith.: GFLOP at the matmul rate; stages: shares of "
        "the wall time (exclusive; the rest is element-wise arithmetic and Python)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``[--skip NAME,...]`` leaves experiments out of (a) (e.g. the two image-space
    optimisations, to run them apart); ``[--only NAME,...]`` runs (a) for those alone, and
    neither (b) nor (c): the rest of a run that left them out, for ``run_all.py --merge``
    (:func:`merge`). The rest of the command line is every benchmark's."""
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--skip", default="")
    parser.add_argument("--only", default="")
    known, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    skip = [s for s in known.skip.split(",") if s]
    only = [s for s in known.only.split(",") if s]
    if skip and only:
        print("bench_experiments: error: --skip and --only together", file=sys.stderr)
        return 2
    if not skip and not only:
        runner = run
    else:
        from cnninv.experiments import REGISTRY

        option = "--skip" if skip else "--only"
        unknown = [s for s in skip + only if s not in REGISTRY]
        if unknown:
            print(f"bench_experiments: error: {option}: no experiment {unknown}", file=sys.stderr)
            return 2

        def runner(device: str = "cpu", quick: bool = False) -> dict:
            cfg = Config.make(device, quick)
            names = list(REGISTRY) if cfg.experiments == ("all",) else list(cfg.experiments)
            if only:
                cfg.experiments, cfg.compare, cfg.thread_counts = tuple(only), (), ()
            else:
                cfg.experiments = tuple(n for n in names if n not in skip)
            out = run(device, quick, cfg)
            if only:
                out["only"] = only  # (a) for these alone: a part of a run, for merge()
            else:
                out["left_out"] = skip  # not "skipped": that says the whole benchmark was
            return out

    return bench_main(
        "bench_experiments", __doc__, runner, render, rest, quick_help="fig2 and prop1, quick"
    )


if __name__ == "__main__":
    sys.exit(main())
