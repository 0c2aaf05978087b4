r"""Table 1 (§4.1, Appendix C.1 / Table 5): classification with random versus learned filters.

For 1, 2 and 3 layers of [conv → BN (learnable scale, bias) → ReLU → 2×2 max pool], then
average pooling to 4×4, dropout and a linear soft-max classifier
(:class:`cnninv.classify.models.ConvClassifier`), train every configuration of the grid
(variant × depth × width × kernel size) on a training split, choose per depth and variant
the width and kernel with the best accuracy on a held-out validation split (the paper's
"best … by cross-validation"), and measure the test accuracy of that choice only.

The paper's data set is CIFAR-10, which cannot be shipped offline; the default here is
Fashion-MNIST (the Debian package ``dataset-fashion-mnist``), padded to 32×32 so that the
architectures are the paper's. ``dataset="cifar10"`` with ``data_path`` pointing at a
local ``cifar-10-batches-py`` folder runs the paper's own setting.

Grids. The default — widths (16, 32, 64), kernels (3, 5, 7), depths 1–3, both variants
(54 configurations), 2 epochs on 10,000 training images, 5,000 held out — took 24
minutes on one thread of a busy 2-core CPU (4–85 s a configuration); ``n_workers`` runs
several configurations at once. ``full=True`` is the paper's grid (widths 64, 128, 256,
1024, 2048; all training images; 30 epochs), for a GPU or a cluster: ``scheduler`` takes
the address of a Dask scheduler. Same seed, same numbers on the CPU (whatever the number
of workers); on a GPU, cuDNN may differ in the last digits. Every configuration is
checkpointed after each epoch in
``checkpoint_dir``: a sweep that stops resumes where it stopped, and a finished
configuration is never retrained.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnninv.classify.data import DATASETS, default_path
from cnninv.classify.models import VARIANTS
from cnninv.classify.train import config_key, evaluate_test, forget, make_spec, train_config
from cnninv.experiments._common import check_config, environment

__all__ = [
    "DEFAULT_WIDTHS",
    "FULL_EPOCHS",
    "PAPER",
    "PAPER_WIDTHS",
    "QUICK",
    "Config",
    "check_data",
    "default_checkpoint_dir",
    "run",
]

#: The widths the paper tried (§4.1).
PAPER_WIDTHS = (64, 128, 256, 1024, 2048)
#: Our default widths: the whole default grid trains in about 25 minutes on one CPU thread.
DEFAULT_WIDTHS = (16, 32, 64)
DEFAULT_EPOCHS = 2
DEFAULT_TRAIN_SUBSET = 10_000
#: Epochs with ``full=True`` (the paper does not say how long it trained).
FULL_EPOCHS = 30

#: Overrides of ``--quick`` (about a minute on a 2-core CPU): one width, one kernel.
QUICK: dict[str, Any] = {
    "widths": (16,),
    "kernel_sizes": (3,),
    "epochs": 1,
    "train_subset": 2000,
    "val_size": 1000,
}

#: Table 1 and Table 5 of the paper (CIFAR-10). The 1-layer architectures read
#: ``(2048)3c-2pmax-4pave`` and ``(1024)3c-2pmax-4pave`` in one line of our transcription
#: of Table 5 and with a kernel of 5 in a garbled duplicate of that line.
PAPER: dict[str, Any] = {
    "dataset": "CIFAR-10",
    "accuracy": {
        "random": {"1": 0.665, "2": 0.746, "3": 0.748},
        "learned": {"1": 0.681, "2": 0.833, "3": 0.893},
    },
    "arch": {
        "random": {
            "1": "(2048)3c-2pmax-4pave",
            "2": "(2048)3c-2pmax-(2048)3c-2pmax-2pave",
            "3": "(2048)3c-2pmax-(2048)3c-2pmax-(1024)3c-2pmax",
        },
        "learned": {
            "1": "(1024)3c-2pmax-4pave",
            "2": "(1024)3c-2pmax-(1024)3c-2pmax-2pave",
            "3": "(1024)3c-2pmax-(1024)3c-2pmax-(1024)3c-2pmax",
        },
    },
    "widths": list(PAPER_WIDTHS),
    "kernel_sizes": [3, 5, 7],
    "note": "Table 1 / Table 5: best filter size and width by cross-validation, CIFAR-10",
}


def default_checkpoint_dir() -> Path:
    """``$XDG_CACHE_HOME/cnninv/table1`` (``~/.cache/cnninv/table1``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "cnninv" / "table1"


def _int_tuple(value: Any, name: str) -> tuple[int, ...]:
    """Ints from a tuple/list, a comma-separated string, or a tuple of single characters
    (what ``tuple("16,32")`` makes of a ``--set widths=16,32``)."""
    if isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        parts = "".join(value).split(",")
    elif isinstance(value, int) and not isinstance(value, bool):
        parts = [value]
    else:
        parts = list(value) if isinstance(value, list | tuple) else [value]
    out = []
    for p in parts:
        try:
            if isinstance(p, bool) or isinstance(p, float):
                raise ValueError
            v = int(p.strip()) if isinstance(p, str) else int(p)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be positive integers, got {value!r}") from None
        if v < 1:
            raise ValueError(f"{name} must be positive integers, got {value!r}")
        out.append(v)
    if not out or len(set(out)) != len(out):
        raise ValueError(f"{name} must be a non-empty list without repeats, got {value!r}")
    return tuple(out)


def _str_tuple(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, list | tuple) and all(isinstance(v, str) and len(v) == 1 for v in value):
        parts = "".join(value).split(",")
    else:
        parts = list(value)
    out = tuple(str(p).strip() for p in parts)
    if not out or len(set(out)) != len(out):
        raise ValueError(f"{name} must be a non-empty list without repeats, got {value!r}")
    return out


def _opt_int(value: Any, name: str, *, minimum: int = 1) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() in ("", "none"):
            return None
        try:
            value = int(value)
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _opt_str(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    return str(value)


@dataclass
class Config:
    """Table 1's sweep. Fields left None take the default grid's value, or the paper's
    with ``full=True``: ``widths`` (16, 32, 64) or (64, …, 2048); ``epochs`` 2 or 30;
    ``train_subset`` 10,000 or every training image (``"all"`` or 0 asks for every one
    without ``full``)."""

    dataset: str = "fashion-mnist"
    data_path: str | None = None
    full: bool = False
    widths: tuple[int, ...] | None = None
    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    depths: tuple[int, ...] = (1, 2, 3)
    variants: tuple[str, ...] = VARIANTS
    epochs: int | None = None
    batch_size: int = 64
    lr: float = 1e-2
    dropout: float = 0.3
    train_subset: int | str | None = None
    val_size: int = 5000
    scheduler: str | None = None
    n_workers: int = 1
    threads: int = 1
    checkpoint_dir: str | None = None
    restart: bool = False  # forget existing checkpoints (e.g. a damaged one) and retrain
    seed: int = 0
    device: str = "cpu"
    quick: bool = False

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        for flag in ("full", "restart"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be true or false, got {getattr(self, flag)!r}")
        self.data_path = _opt_str(self.data_path)
        self.scheduler = _opt_str(self.scheduler)
        self.checkpoint_dir = _opt_str(self.checkpoint_dir)
        if self.widths is None:
            self.widths = PAPER_WIDTHS if self.full else DEFAULT_WIDTHS
        self.widths = _int_tuple(self.widths, "widths")
        self.kernel_sizes = _int_tuple(self.kernel_sizes, "kernel_sizes")
        if any(k % 2 == 0 for k in self.kernel_sizes):
            raise ValueError(f"kernel_sizes must be odd, got {self.kernel_sizes}")
        self.depths = _int_tuple(self.depths, "depths")
        if any(d > 3 for d in self.depths):
            raise ValueError(f"depths must lie in 1..3 (32×32 inputs), got {self.depths}")
        self.variants = _str_tuple(self.variants, "variants")
        if any(v not in VARIANTS for v in self.variants):
            raise ValueError(f"variants must be among {VARIANTS}, got {self.variants}")
        epochs = _opt_int(self.epochs, "epochs")
        self.epochs = epochs if epochs is not None else FULL_EPOCHS if self.full else 2
        if isinstance(self.train_subset, str) and self.train_subset.strip().lower() == "all":
            self.train_subset = 0
        subset = _opt_int(self.train_subset, "train_subset", minimum=0)
        if subset is None:
            subset = 0 if self.full else DEFAULT_TRAIN_SUBSET
        self.train_subset = subset  # 0: every training image not held out
        check_config(self, ("batch_size", "val_size", "n_workers", "threads"))
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 (batch norm), got {self.batch_size}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.data_path is not None and self.scheduler is None:
            check_data(self.dataset, self.data_path)  # a named folder is checked up front


def check_data(dataset: str, data_path: str | os.PathLike | None) -> Path:
    """The data folder of ``dataset``, after checking that its files are there (without
    reading them); a ``ValueError`` naming the missing path otherwise."""
    folder = Path(data_path).expanduser() if data_path is not None else default_path(dataset)
    if dataset == "fashion-mnist":
        names = [
            f"{p}-{kind}-idx{n}-ubyte"
            for p in ("train", "t10k")
            for kind, n in (("images", 3), ("labels", 1))
        ]
        hint = "apt-get install dataset-fashion-mnist, or give the folder of the IDX files"
        for name in names:
            if not (folder / f"{name}.gz").is_file() and not (folder / name).is_file():
                raise ValueError(
                    f"Fashion-MNIST file {folder / (name + '.gz')} is missing ({hint})"
                )
    else:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            if not (folder / name).is_file():
                raise ValueError(
                    f"CIFAR-10 file {folder / name} is missing: CIFAR-10 is not shipped with "
                    "cnninv; give the path of your cifar-10-batches-py folder"
                )
    return folder


def _warn_oversubscribed(config: Config) -> None:
    """A local cluster's workers share this machine's CPUs with their tasks' threads: more
    threads than CPUs make every parallel region wait (no effect on the numbers)."""
    if config.scheduler is not None:
        return
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    if config.n_workers * config.threads > cpus:
        warnings.warn(
            f"table1: n_workers={config.n_workers} x threads={config.threads} runs "
            f"{config.n_workers * config.threads} threads on {cpus} CPUs (oversubscribed: "
            "slower, not faster); lower n_workers or threads",
            stacklevel=2,
        )


def _specs(config: Config, data_path: str, checkpoint_dir: Path, threads: int) -> list[dict]:
    return [
        make_spec(
            dataset=config.dataset,
            data_path=data_path,
            val_size=config.val_size,
            train_subset=config.train_subset or None,
            seed=config.seed,
            variant=variant,
            depth=depth,
            width=width,
            kernel_size=k,
            dropout=float(config.dropout),
            epochs=config.epochs,
            batch_size=config.batch_size,
            lr=float(config.lr),
            device=config.device,
            threads=threads,
            checkpoint_dir=str(checkpoint_dir),
        )
        for depth in config.depths
        for variant in config.variants
        for width in config.widths
        for k in config.kernel_sizes
    ]


def _best(rows: list[dict]) -> dict:
    """Highest validation accuracy; ties go to the smaller width, then the smaller kernel."""
    return min(rows, key=lambda r: (-r["val_acc"], r["width"], r["kernel_size"]))


def run(config: Config, progress: bool = False) -> dict:
    """Run the sweep on Dask, choose by validation accuracy, test the choices once.

    Returns the chosen architecture and its validation and test accuracy per depth and
    variant (``depths``), every configuration of the grid (``grid``), and the paper's
    CIFAR-10 numbers (``paper``) with a note on comparability.
    """
    from cnninv.classify.sweep import dask_client, describe_scheduler, map_specs

    started = time.perf_counter()
    folder = (
        Path(config.data_path).expanduser() if config.data_path else default_path(config.dataset)
    )
    if config.scheduler is None:  # a remote cluster's workers may see other files
        folder = check_data(config.dataset, folder).resolve()
    ckpt = Path(config.checkpoint_dir).expanduser() if config.checkpoint_dir else None
    ckpt = (ckpt or default_checkpoint_dir()).resolve()
    specs = _specs(config, str(folder), ckpt, config.threads)
    _warn_oversubscribed(config)
    if config.restart:
        for spec in specs:
            forget(spec)

    with dask_client(config.scheduler, config.n_workers) as client:
        results = map_specs(
            client,
            train_config,
            specs,
            keys=[f"table1-train-{config_key(s)}" for s in specs],
            progress=progress,
            desc="table1 grid",
        )
        chosen: dict[tuple[int, str], tuple[dict, dict]] = {}
        for depth in config.depths:
            for variant in config.variants:
                pairs = [
                    (s, r)
                    for s, r in zip(specs, results, strict=True)
                    if s["depth"] == depth and s["variant"] == variant
                ]
                best = _best([r for _, r in pairs])
                chosen[depth, variant] = next(p for p in pairs if p[1] is best)
        test_specs = [s for s, _ in chosen.values()]
        tests = map_specs(
            client,
            evaluate_test,
            test_specs,
            keys=[f"table1-test-{config_key(s)}" for s in test_specs],
            progress=progress,
            desc="table1 test",
        )
    test_by_key = {t["key"]: t for t in tests}

    depths: dict[str, dict[str, Any]] = {}
    for depth in config.depths:
        row: dict[str, Any] = {}
        for variant in VARIANTS:
            if (depth, variant) not in chosen:
                for suffix in ("", "_arch", "_val", "_width", "_kernel"):
                    row[variant + suffix] = None
                continue
            _, r = chosen[depth, variant]
            row[variant] = test_by_key[r["key"]]["test_acc"]
            row[f"{variant}_arch"] = r["arch"]
            row[f"{variant}_val"] = r["val_acc"]
            row[f"{variant}_width"] = r["width"]
            row[f"{variant}_kernel"] = r["kernel_size"]
        depths[str(depth)] = row

    grid = [
        {k: v for k, v in r.items() if k not in ("history", "n_train", "n_val")} for r in results
    ]
    trained = [r for r in results if not r["cached"]]
    n_test = tests[0]["n_test"] if tests else None
    paper_widths = set(PAPER_WIDTHS)
    width_note = (
        None
        if max(config.widths) >= 1024
        else f"Our widths {list(config.widths)} are smaller than the paper's 64–2048 (its "
        "best networks have 1024–2048 channels) and we train for "
        f"{config.epochs} epoch(s) on {results[0]['n_train']} images: a small-scale version "
        "(full=True, --full, runs the paper's grid, for a GPU or a cluster)."
    )
    return {
        "experiment": "table1",
        "dataset": config.dataset,
        "data_path": str(folder),
        "n_train": results[0]["n_train"],
        "n_val": results[0]["n_val"],
        "n_test": n_test,
        "depths": depths,
        "paper": PAPER,
        "paper_note": (
            f"The paper's data set is CIFAR-10; ours is {config.dataset}"
            + (
                " — not comparable number for number."
                if config.dataset != "cifar10"
                else (" too." if width_note is None else " too, but on a smaller grid.")
            )
        ),
        "width_note": width_note,
        "paper_grid": bool(set(config.widths) >= paper_widths),
        "selection": "per depth and variant, the width and kernel size with the highest "
        "validation accuracy (ties: smaller width, then smaller kernel); the test set is "
        "used once, for that configuration only",
        "grid": grid,
        "trained_now": len(trained),
        "reused_from_checkpoints": len(results) - len(trained),
        "train_seconds_total": sum(r["seconds"] for r in results),
        "checkpoint_dir": str(ckpt),
        "scheduler": describe_scheduler(config.scheduler, config.n_workers),
        "threads_per_task": config.threads,
        **environment(config, started),
    }
