r"""Training and evaluation of one Table 1 configuration, with checkpoints.

A configuration is a plain dict (a *spec*, JSON-ready, so that it travels to a Dask
worker): the data (``dataset``, ``data_path``, ``val_size``, ``train_subset``), the
network (``variant``, ``depth``, ``width``, ``kernel_size``, ``dropout``), the training
(``epochs``, ``batch_size``, ``lr``, ``seed``) and where it runs (``device``,
``threads``, ``checkpoint_dir``). :func:`train_config` trains it with Adam and a cosine
learning-rate decay (per step, computed from the step index so nothing but the model and
the optimiser has state), and returns its validation accuracy; :func:`evaluate_test`
measures the test accuracy of a trained configuration — called only for the one chosen
by validation.

Checkpoints, in ``checkpoint_dir`` under :func:`config_key`:

``KEY.pt``
    ``torch.save`` of plain data — the model's and optimiser's state dicts, the number of
    epochs done, the seconds spent, the per-epoch history — loaded with
    ``weights_only=True``; written (atomically) after every epoch.
``KEY.json``
    the same metadata in JSON, with ``"status": "running"`` or ``"done"`` and, when done,
    the validation accuracy. A configuration whose JSON says ``done`` is never retrained;
    one that stopped mid-way resumes at the last saved epoch, and ends exactly where an
    uninterrupted run would have (the shuffling and dropout generators of an epoch are
    seeded from the seed, the configuration and the epoch number).
``KEY.test.json``
    the test accuracy, once measured.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cnninv._checks import make_generator, resolve_device
from cnninv.classify.data import (
    ImageData,
    channel_stats,
    load_dataset,
    split_indices,
    standardise,
)
from cnninv.classify.models import ConvClassifier, trainable_parameters
from cnninv.io import atomic_write_json
from cnninv.training import (
    cosine_lr,
    derive_seed,
    load_checkpoint,
    save_checkpoint,
    torch_threads,
)

__all__ = [
    "CHECKPOINT_VERSION",
    "IDENTITY_KEYS",
    "accuracy",
    "config_key",
    "evaluate_test",
    "forget",
    "make_spec",
    "train_config",
]

#: Bumped when a change to the training would make old checkpoints wrong to reuse.
CHECKPOINT_VERSION = 1
#: The spec entries that determine a configuration's result (its checkpoint identity).
#: ``device``, ``threads``, ``eval_batch_size`` and ``checkpoint_dir`` do not count.
IDENTITY_KEYS = (
    "dataset",
    "data_path",
    "val_size",
    "train_subset",
    "seed",
    "variant",
    "depth",
    "width",
    "kernel_size",
    "dropout",
    "epochs",
    "batch_size",
    "lr",
)
_OTHER_KEYS = ("device", "threads", "eval_batch_size", "checkpoint_dir")
_RESTART = "delete it or rerun with --restart to train this configuration again"


def make_spec(**values: Any) -> dict[str, Any]:
    """A spec with every key present (``threads`` None, ``eval_batch_size`` 1000 unless
    given); unknown or missing keys are a ``ValueError``."""
    spec = {"threads": None, "eval_batch_size": 1000, **values}
    known = set(IDENTITY_KEYS) | set(_OTHER_KEYS)
    unknown = set(spec) - known
    missing = known - set(spec)
    if unknown or missing:
        raise ValueError(f"spec has unknown keys {sorted(unknown)} / lacks keys {sorted(missing)}")
    return spec


def _identity(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"version": CHECKPOINT_VERSION, **{k: spec[k] for k in IDENTITY_KEYS}}


def config_key(spec: Mapping[str, Any]) -> str:
    """A readable, unique file stem for a configuration, e.g.
    ``random-d2-w32-k5-3f9c0a1b2d``: the architecture plus a hash of every identity entry.

    >>> s = make_spec(dataset="fashion-mnist", data_path="/d", val_size=10, train_subset=20,
    ...     seed=0, variant="random", depth=2, width=32, kernel_size=5, dropout=0.3,
    ...     epochs=1, batch_size=8, lr=1e-3, device="cpu", checkpoint_dir="/tmp/c")
    >>> config_key(s).startswith("random-d2-w32-k5-")
    True
    """
    text = json.dumps(_identity(spec), sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{spec['variant']}-d{spec['depth']}-w{spec['width']}-k{spec['kernel_size']}-{digest}"


def _model(spec: Mapping[str, Any], data: ImageData) -> ConvClassifier:
    return ConvClassifier(
        spec["depth"],
        spec["width"],
        spec["kernel_size"],
        in_channels=data.channels,
        num_classes=len(data.classes),
        input_size=int(data.train_x.shape[-1]),
        variant=spec["variant"],
        dropout=spec["dropout"],
        seed=derive_seed("init", _identity(spec)),
    )


@torch.no_grad()
def accuracy(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    *,
    batch_size: int = 1000,
    device: torch.device | str = "cpu",
) -> float:
    """Fraction of ``x`` (uint8 images) that ``model`` classifies as ``y``, in eval mode."""
    was_training = model.training
    model.eval()
    mean, std = mean.to(device), std.to(device)
    correct = 0
    for start in range(0, len(x), batch_size):
        xb = standardise(x[start : start + batch_size].to(device), mean, std)
        pred = model(xb).argmax(dim=1)
        correct += int((pred == y[start : start + batch_size].to(device)).sum())
    model.train(was_training)
    return correct / max(len(x), 1)


def _paths(spec: Mapping[str, Any]) -> tuple[Path, Path, Path]:
    folder = Path(spec["checkpoint_dir"]).expanduser()
    key = config_key(spec)
    return folder / f"{key}.pt", folder / f"{key}.json", folder / f"{key}.test.json"


def forget(spec: Mapping[str, Any]) -> None:
    """Delete a configuration's checkpoint and records, so that it trains from scratch
    (``cnninv reproduce table1 --restart``: the way out of a damaged checkpoint)."""
    for path in _paths(make_spec(**spec)):
        path.unlink(missing_ok=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None  # a damaged record is redone, not trusted


def _setup(spec: Mapping[str, Any]):
    device = resolve_device(spec["device"])
    data = load_dataset(spec["dataset"], spec["data_path"])
    split = split_indices(
        len(data.train_y),
        spec["val_size"],
        spec["train_subset"],
        derive_seed("split", spec["seed"]),
    )
    mean, std = channel_stats(data.train_x[split.train])
    return device, data, split, mean, std


def _result(
    spec: Mapping[str, Any], meta: Mapping[str, Any], *, cached: bool, resumed: int | None
) -> dict[str, Any]:
    return {
        "key": config_key(spec),
        "variant": spec["variant"],
        "depth": spec["depth"],
        "width": spec["width"],
        "kernel_size": spec["kernel_size"],
        "arch": meta["arch"],
        "val_acc": meta["val_acc"],
        "train_loss": meta["history"][-1]["train_loss"] if meta["history"] else None,
        "epochs": meta["epoch"],
        "seconds": meta["seconds"],
        "seconds_per_epoch": meta["seconds"] / max(meta["epoch"], 1),
        "n_train": meta["n_train"],
        "n_val": meta["n_val"],
        "trainable_parameters": meta["trainable_parameters"],
        "cached": cached,
        "resumed_from_epoch": resumed,
        "history": meta["history"],
    }


def train_config(
    spec: Mapping[str, Any],
    *,
    progress: bool = False,
    on_epoch_end: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train one configuration (or resume it, or return its finished record) and return
    a plain dict with its validation accuracy, seconds and history.

    ``on_epoch_end(epoch)`` is called after each epoch's checkpoint is written (the tests
    use it to interrupt a run). The result's ``cached`` is True when nothing was trained,
    and ``resumed_from_epoch`` names the epoch a run resumed at.
    """
    spec = make_spec(**spec)
    pt_path, json_path, _ = _paths(spec)
    record = _read_json(json_path)
    if record is not None and record.get("status") == "done" and record.get("key") == pt_path.stem:
        return _result(spec, record, cached=True, resumed=None)
    with torch_threads(spec["threads"]):
        return _train(spec, progress=progress, on_epoch_end=on_epoch_end)


def _train(
    spec: dict[str, Any], *, progress: bool, on_epoch_end: Callable[[int], None] | None
) -> dict[str, Any]:
    pt_path, json_path, _ = _paths(spec)
    device, data, split, mean, std = _setup(spec)
    model = _model(spec, data).to(device)
    params = trainable_parameters(model)
    optimiser = torch.optim.Adam(params, lr=spec["lr"])
    meta: dict[str, Any] = {
        "key": pt_path.stem,
        "identity": _identity(spec),
        "arch": model.arch,
        "status": "running",
        "epoch": 0,
        "seconds": 0.0,
        "history": [],
        "val_acc": None,
        "n_train": len(split.train),
        "n_val": len(split.val),
        "trainable_parameters": sum(p.numel() for p in params),
    }
    resumed = None
    if pt_path.is_file():
        state = load_checkpoint(pt_path, restart_hint=_RESTART)
        if state.get("identity") == _identity(spec):
            model.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimizer"])
            meta.update(epoch=state["epoch"], seconds=state["seconds"], history=state["history"])
            resumed = state["epoch"]

    # the images stay uint8 (a GPU holds them whole: 60 MB for Fashion-MNIST)
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    mean, std = mean.to(device), std.to(device)
    n = len(split.train)
    bs = min(spec["batch_size"], n)
    steps_per_epoch = n // bs  # the last incomplete batch is dropped (batch norm needs > 1)
    total_steps = steps_per_epoch * spec["epochs"]
    model.train()
    for epoch in range(meta["epoch"], spec["epochs"]):
        started = time.perf_counter()
        shuffle = make_generator(derive_seed("shuffle", meta["identity"], epoch))
        dropout = make_generator(derive_seed("dropout", meta["identity"], epoch), device=device)
        order = split.train[torch.randperm(n, generator=shuffle)].to(device)
        steps = range(steps_per_epoch)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc=f"{pt_path.stem} epoch {epoch + 1}", leave=False)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)  # no sync per step
        for i in steps:
            idx = order[i * bs : (i + 1) * bs]
            xb = standardise(train_x[idx], mean, std)
            yb = train_y[idx]
            for group in optimiser.param_groups:
                group["lr"] = cosine_lr(epoch * steps_per_epoch + i, total_steps, spec["lr"])
            loss = F.cross_entropy(model(xb, dropout), yb)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            loss_sum += loss.detach().double()
        meta["epoch"] = epoch + 1
        meta["seconds"] += time.perf_counter() - started
        meta["history"].append(
            {"epoch": epoch + 1, "train_loss": float(loss_sum) / max(steps_per_epoch, 1)}
        )
        state = {
            "identity": meta["identity"],
            "model": model.state_dict(),
            "optimizer": optimiser.state_dict(),
            "epoch": meta["epoch"],
            "seconds": meta["seconds"],
            "history": meta["history"],
        }
        save_checkpoint(pt_path, state)
        if meta["epoch"] < spec["epochs"]:
            atomic_write_json(json_path, meta)
        if on_epoch_end is not None:
            on_epoch_end(meta["epoch"])

    started = time.perf_counter()
    meta["val_acc"] = accuracy(
        model,
        data.train_x[split.val],
        data.train_y[split.val],
        mean,
        std,
        batch_size=spec["eval_batch_size"],
        device=device,
    )
    meta["eval_seconds"] = time.perf_counter() - started
    meta["status"] = "done"
    atomic_write_json(json_path, meta)
    return _result(spec, meta, cached=False, resumed=resumed)


def evaluate_test(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The test accuracy of a trained configuration (its ``KEY.pt``), measured once and
    kept in ``KEY.test.json``."""
    spec = make_spec(**spec)
    pt_path, json_path, test_path = _paths(spec)
    cached = _read_json(test_path)
    if cached is not None and cached.get("key") == pt_path.stem:
        return {**cached, "cached": True}
    record = _read_json(json_path)
    if record is None or record.get("status") != "done" or not pt_path.is_file():
        raise ValueError(f"configuration {pt_path.stem} is not trained (no {json_path})")
    with torch_threads(spec["threads"]):
        return _evaluate_test(spec)


def _evaluate_test(spec: dict[str, Any]) -> dict[str, Any]:
    pt_path, _, test_path = _paths(spec)
    device, data, _, mean, std = _setup(spec)
    model = _model(spec, data)
    state = load_checkpoint(pt_path, restart_hint=_RESTART)
    model.load_state_dict(state["model"])
    model.to(device)
    started = time.perf_counter()
    acc = accuracy(
        model,
        data.test_x,
        data.test_y,
        mean,
        std,
        batch_size=spec["eval_batch_size"],
        device=device,
    )
    out = {
        "key": pt_path.stem,
        "test_acc": acc,
        "n_test": len(data.test_y),
        "seconds": time.perf_counter() - started,
    }
    atomic_write_json(test_path, out)
    return {**out, "cached": False}
