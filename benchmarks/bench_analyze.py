"""`cnninv analyze` cost: wall time and peak memory (max RSS) of the any-CNN analysis, each
in a child process of its own, beside the cost of importing cnninv in the same run.

Cases (issue "Any CNN"): VGG16 `--quick` on 4 photos; a small 1-d net (a Conv1d stack
with ReLU and max pooling) on 16 real speech signals cut from the ALSA recordings; and,
in a full run, the full VGG16 analysis (20 photos, default settings), whose peak memory
has a target of 4 GB.

Usage::

    python benchmarks/bench_analyze.py [--quick] [--json OUT]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _timing import bench_main, machine_info, machine_line
from bench_scale import _child

MEMORY_TARGET_BYTES = 4 * 1024**3

#: The small 1-d net of the second case, a SPEC the command line imports.
ONE_D_NET = """
import torch.nn as nn


def make():
    return nn.Sequential(
        nn.Conv1d(1, 16, 9, stride=2), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(16, 32, 5), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(32, 32, 5), nn.ReLU(),
    )
"""


def _signals(folder: Path, n: int = 16, length: int = 4096) -> Path:
    """``n`` frames of ``length`` samples of the ALSA speech recordings, as a .npy array
    (N, 1, L) — the input the 1-d net takes."""
    from cnninv.data import frame_signals, load_signals

    s = load_signals("/usr/share/sounds/alsa", sample_rate=16000)
    frames = frame_signals(s, length, hop=length, max_frames=n)
    x = frames.x.numpy().astype(np.float32)[:n]
    path = folder / "frames.npy"
    np.save(path, x[:, None, :])
    return path


def run(device: str = "cpu", quick: bool = False) -> dict[str, Any]:
    py = sys.executable
    cases: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="cnninv-bench-analyze-") as tmp:
        folder = Path(tmp)
        net = folder / "one_d_net.py"
        net.write_text(ONE_D_NET)
        frames = _signals(folder)
        common = ["--no-progress", "--device", str(device)]
        cases["vgg16 --quick, 4 photos"] = [
            *("analyze", "--model", "vgg16", "--quick", "--max-inputs", "4")
        ]
        cases["1-d net --quick, 16 speech frames"] = [
            *("analyze", "--model", f"{net}:make", "--inputs", str(frames), "--quick")
        ]
        if not quick:
            cases["vgg16, 20 photos, default settings"] = ["analyze", "--model", "vgg16"]
        base = _child([py, "-c", "import torch, cnninv.analysis, cnninv.models"])
        runs = {}
        for i, (name, args) in enumerate(cases.items()):
            cmd = [py, "-m", "cnninv.cli", *args, *common, "--out", str(folder / f"out{i}")]
            r = _child(cmd)
            if r["returncode"] != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed: {r['stderr_tail']}")
            r["under_target"] = r["max_rss_bytes"] < MEMORY_TARGET_BYTES
            runs[name] = r
    return {
        "machine": machine_info(device),
        "baseline_import": base,
        "runs": runs,
        "target_bytes": MEMORY_TARGET_BYTES,
        "quick": quick,
    }


def targets(result: dict) -> list[dict]:
    full = [(n, r) for n, r in result["runs"].items() if n.startswith("vgg16, 20")]
    return [
        {
            "name": f"cnninv analyze {name}: peak memory",
            "target": f"< {result['target_bytes'] / 1024**3:.0f} GiB",
            "measured": f"{r['max_rss_bytes'] / 1024**3:.2f} GiB",
            "met": r["under_target"],
        }
        for name, r in full
    ]


def render(result: dict) -> str:
    base = result["baseline_import"]
    lines = [
        machine_line(result["machine"]),
        "",
        "cnninv analyze: wall time and peak memory (max RSS of the child process)",
        f"    {'import torch, cnninv (baseline)':<44} {base['max_rss_bytes'] / 1e6:>8.0f} MB  "
        f"{base['wall_s']:>7.1f} s",
    ]
    for name, r in result["runs"].items():
        lines.append(f"    {name:<44} {r['max_rss_bytes'] / 1e6:>8.0f} MB  {r['wall_s']:>7.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return bench_main(
        "bench_analyze", __doc__, run, render, argv, quick_help="the two quick cases only"
    )


if __name__ == "__main__":
    sys.exit(main())
