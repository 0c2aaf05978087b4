r"""Training the what-where decoders (:class:`~cnninv.inversion.decoder.Decoder`) on the
offline natural photos, with a held-out split, checkpoints and a cache.

Data (:func:`cnninv.data.photos.photo_split`)
    The default training photos are those bundled in installed packages (foolbox's
    ImageNet photos that are not held out, scikit-image, scikit-learn, matplotlib; a missing
    source is said in a warning) and any folder the user adds; the held-out photos are 5
    foolbox photos, never trained on (checked by content: :func:`train_decoder` refuses a
    training list that contains one). The photos' contents, not only their names, are part
    of a decoder's cache key.

Training (:func:`train_decoder`)
    Each photo, and its mirror image, is resized to every side in ``scales`` (224 by
    default: the size the photos have when inverted) and run once through the frozen
    encoder up to the layer, keeping the activation and the switch of every pooling
    block. Every step then draws ``batch`` random ``crop``×``crop`` crops (random photo,
    scale, flip, and position on the grid of the ``2^N`` pixels of ``poolN``, ``crop``
    rounded down to a multiple of it) from a generator seeded by ``(seed, step)`` alone:
    the crop of the photo, the matching crop of its activation, and its switches
    re-indexed into the crop (so the decoder trains on what it sees at test time, the
    activations of whole photos, and the encoder runs once, not at every step). Adam
    (learning rate decayed along a cosine) minimises
    :math:`\|\mathrm{dec}(f, s) - x\|^2 / (\text{output\_scale}^2\,\#x)`, the mean
    squared error in the network's input space (Caffe BGR 0–255 minus the mean for
    VGG16) divided by ``output_scale``² (255²). Afterwards the relative error
    :math:`\|\hat x - x\|/\|x\|` (input space) is measured on the held-out photos at
    ``eval_size``.

Checkpoints
    ``torch.save`` of plain data (the decoder's and Adam's state dicts, the step, the loss
    history, the configuration key), written atomically every ``checkpoint_every`` steps
    and at the end of every epoch, read back with ``weights_only=True``. Because a
    step's crops depend only on ``(seed, step)``, a run resumed from a checkpoint ends
    with exactly the weights of an uninterrupted run.

Cache (:func:`get_decoder`)
    Trained decoders are kept in ``$CNNINV_CACHE/decoders`` (default
    ``~/.cache/cnninv/decoders``), one ``.safetensors`` file per network, layer and
    training configuration; the experiments train what is missing.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cnninv._checks import check_positive_int, resolve_device
from cnninv.data.images import load_images
from cnninv.data.photos import HELD_OUT_RULE, file_sha256, photo_split, photos_fingerprint
from cnninv.inversion.decoder import (
    FORMAT_VERSION,
    Decoder,
    DecoderInfo,
    decoded_pools,
    default_widths,
    encode,
    encoder_fingerprint,
    load_decoder,
    pool_channels,
    save_decoder,
)
from cnninv.metrics import relative_error
from cnninv.models.layers import pool_number
from cnninv.training import cosine_lr, load_checkpoint, save_checkpoint, step_generator

__all__ = [
    "QUICK_TRAINING",
    "RESTART_HINT",
    "TrainConfig",
    "TrainResult",
    "cache_dir",
    "decoder_path",
    "get_decoder",
    "get_decoders",
    "held_out_error",
    "train_decoder",
]

#: How to start over when a checkpoint cannot be used.
RESTART_HINT = "delete it or rerun with --restart (cnninv train-decoder) to train from scratch"

#: Overrides of :class:`TrainConfig` for the experiments' ``--quick`` runs: tiny decoders
#: trained for a few seconds per layer on 2 CPU cores (their images are only a sketch).
QUICK_TRAINING: dict[str, Any] = {
    "scales": "112",
    "crop": 48,
    "width": 8,
    "epochs": 4,
    "steps_per_epoch": 25,
    "batch": 8,
    "lr": 3e-3,
}


@dataclass
class TrainConfig:
    """How a decoder is trained (every field is part of its cache key).

    layer : ``"pool1"`` … ``"pool5"``.
    crop : side of the training crops (px).
    width : base width of the decoder (stage n has ``min(width·2^(n-1), 8·width)``).
    epochs, steps_per_epoch, batch : ``epochs · steps_per_epoch`` Adam steps of ``batch``
        crops.
    lr : Adam's initial learning rate, decayed to 0 along a cosine over the run (computed
        from the step index, so a resumed run follows the same schedule).
    scales : comma-separated sides the photos are resized to before cropping.
    eval_size : side of the held-out photos for the held-out error.
    checkpoint_every : steps between checkpoints (also written at every epoch's end).
    seed : initial weights and crops.
    """

    layer: str = "pool4"
    crop: int = 64
    width: int = 16
    epochs: int = 20
    steps_per_epoch: int = 50
    batch: int = 8
    lr: float = 1e-3
    scales: str = "224"
    eval_size: int = 224
    checkpoint_every: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("crop", "width", "epochs", "steps_per_epoch", "batch", "eval_size"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.checkpoint_every, "checkpoint_every")
        pool_number(self.layer)
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        sides = self.scale_list()
        if any(s < self.crop for s in sides):
            raise ValueError(f"every scale must be at least crop={self.crop}, got {self.scales!r}")
        if self.crop < 2 ** pool_number(self.layer):
            raise ValueError(
                f"crop={self.crop} is too small for {self.layer} (needs at least "
                f"{2 ** pool_number(self.layer)} px)"
            )

    def scale_list(self) -> list[int]:
        try:
            sides = [int(v) for v in str(self.scales).split(",") if v.strip()]
        except ValueError:
            raise ValueError(
                f"scales must be comma-separated integers, got {self.scales!r}"
            ) from None
        if not sides or any(s < 1 for s in sides):
            raise ValueError(f"scales must be positive integers, got {self.scales!r}")
        return sides

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


# --------------------------------------------------------------------------- training
@dataclass
class TrainResult:
    """What :func:`train_decoder` returns."""

    decoder: Decoder
    info: DecoderInfo
    losses: list[float]
    resumed_from_step: int | None
    path: Path | None = None


@dataclass
class _Bank:
    """The training photos encoded once: images ``x`` (P, 3, S, S) in input space, the
    activation ``f`` at the layer, and for each pool the position of its switch inside its
    2×2 block (``dy·2 + dx``, uint8). Entry ``p + P`` is photo ``p`` flipped."""

    x: torch.Tensor
    f: torch.Tensor
    offsets: list[torch.Tensor]


def _encode_bank(model, layer: str, x: torch.Tensor, dev, batch: int = 2) -> _Bank:
    xs, fs, offs = [], [], []
    with torch.no_grad():
        for flip in (False, True):
            for s in range(0, x.shape[0], batch):
                xb = x[s : s + batch]
                xb = xb.flip(-1) if flip else xb
                enc = encode(model, xb.to(dev), layer)
                xs.append(xb.cpu())
                fs.append(enc.f.cpu())
                per_pool = []
                for sw, (_, w) in zip(enc.switches, enc.sizes, strict=True):
                    rows, cols = sw // w, sw % w
                    per_pool.append(((rows % 2) * 2 + cols % 2).to(torch.uint8).cpu())
                offs.append(per_pool)
    n_pools = len(offs[0])
    return _Bank(
        torch.cat(xs),
        torch.cat(fs),
        [torch.cat([o[n] for o in offs]) for n in range(n_pools)],
    )


def _effective_crop(crop: int, n_pools: int) -> int:
    """``crop`` rounded down to a multiple of ``2^N`` (so crops align with every pool)."""
    unit = 2**n_pools
    return max(unit, crop - crop % unit)


@functools.lru_cache(maxsize=16)
def _block_origins(ph: int) -> np.ndarray:
    """Flat index of the top-left entry of every 2×2 block of a (2ph × 2ph) map."""
    r = np.arange(ph, dtype=np.int64).reshape(ph, 1)
    c = np.arange(ph, dtype=np.int64).reshape(1, ph)
    return (2 * r) * (2 * ph) + 2 * c


def _sample_batch(
    banks: list[_Bank], crop: int, batch: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[tuple[int, int]]]:
    """``batch`` random crops (photo, scale, flip, position on the ``2^N`` grid): images,
    activations, switches (indices into each crop's pre-pool maps) and map sizes."""
    n_pools = len(banks[0].offsets)
    unit = 2**n_pools
    xs: list[np.ndarray] = []
    fs: list[np.ndarray] = []
    sws: list[list[np.ndarray]] = [[] for _ in range(n_pools)]
    n = banks[0].x.shape[0]
    for _ in range(batch):
        i = int(torch.randint(n, (1,), generator=gen))
        bank = banks[int(torch.randint(len(banks), (1,), generator=gen))]
        side_h, side_w = bank.x.shape[-2:]
        top = unit * int(torch.randint((side_h - crop) // unit + 1, (1,), generator=gen))
        left = unit * int(torch.randint((side_w - crop) // unit + 1, (1,), generator=gen))
        xs.append(bank.x.numpy()[i, :, top : top + crop, left : left + crop])
        c, t, l_ = crop // unit, top // unit, left // unit
        fs.append(bank.f.numpy()[i, :, t : t + c, l_ : l_ + c])
        for level in range(n_pools):
            step = 2 ** (level + 1)  # the pooled map of pool level+1 is 1/step of the image
            ph, t2, l2 = crop // step, top // step, left // step
            off = bank.offsets[level][i, :, t2 : t2 + ph, l2 : l2 + ph].numpy()
            # flat index in the (2ph x 2ph) pre-pool map: (2r + dy)·2ph + 2c + dx (in NumPy:
            # small integer tensor ops are slow in torch when the cores are shared)
            delta = (off >> 1).astype(np.int64) * (2 * ph) + (off & 1)
            sws[level].append(_block_origins(ph) + delta)
    sizes = [(crop // 2**level, crop // 2**level) for level in range(n_pools)]
    return (
        torch.from_numpy(np.stack(xs)),
        torch.from_numpy(np.stack(fs)),
        [torch.from_numpy(np.stack(s)) for s in sws],
        sizes,
    )


def _config_key(config: TrainConfig, net_fingerprint: str, train_paths: Sequence[Path]) -> str:
    """The identity of a training run: configuration, encoder, and the training photos'
    contents (two machines with other photos get other keys, hence other cache files)."""
    payload = {
        "config": dataclasses.asdict(config),
        "encoder": net_fingerprint,
        "photos": photos_fingerprint(train_paths),
        "format": FORMAT_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _output_scale(convention) -> float:
    return float(convention.scale) / (sum(convention.std) / 3.0)


def _input_scale(banks: list[_Bank]) -> float:
    """RMS of the layer's activations on the training photos."""
    rms = float(torch.cat([b.f.flatten() for b in banks]).pow(2).mean().sqrt())
    return rms if rms > 0 else 1.0


def held_out_error(
    decoder: Decoder,
    model: torch.nn.Module,
    layer: str,
    x: torch.Tensor,
    *,
    batch: int = 2,
) -> list[float]:
    """Relative errors :math:`\\|\\mathrm{dec}(f, s) - x\\|/\\|x\\|` (input space), per image."""
    errs = []
    decoder.eval()
    with torch.no_grad():
        for s in range(0, x.shape[0], batch):
            xb = x[s : s + batch]
            enc = encode(model, xb, layer)
            xh = decoder(enc.f, enc.switches, enc.sizes)
            errs += relative_error(xh, xb).tolist()
    return errs


def train_decoder(
    net,
    config: TrainConfig,
    *,
    train_paths: Sequence[str | Path] | None = None,
    held_out_paths: Sequence[str | Path] | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    out: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
    callback: Callable[[int, int | None], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train the decoder of ``config.layer`` for the network ``net``.

    Parameters
    ----------
    net : LoadedNetwork
        The encoder (VGG-style ``features``) and its input convention; it stays frozen.
    config : TrainConfig
    train_paths, held_out_paths : photos; default :func:`photo_split`.
    checkpoint : file for the checkpoints (None: no checkpoints).
    resume : continue from ``checkpoint`` if it exists and belongs to this configuration.
    out : write the decoder there (``.safetensors``) and delete the checkpoint.
    device : where the encoder and decoder run.
    progress : show a progress bar.
    callback : ``callback(step, epoch)`` after each checkpoint (``epoch`` the number of
        epochs completed when the checkpoint ends one, else None); raising from it
        interrupts the run (the checkpoint is already on disk).
    log : receives one line per epoch.

    Raises
    ------
    ValueError
        A bad layer, no training photo, a held-out photo among the training photos, a
        checkpoint of another configuration.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    dev = resolve_device(device)
    model = net.model.to(dev).eval()
    n_pools = decoded_pools(model, config.layer)
    if train_paths is None or held_out_paths is None:
        split = photo_split()
        train_paths = split.train if train_paths is None else train_paths
        held_out_paths = split.held_out if held_out_paths is None else held_out_paths
    train_paths = [Path(p) for p in train_paths]
    held_out_paths = [Path(p) for p in held_out_paths]
    if not train_paths:
        raise ValueError("no training photos")
    if not held_out_paths:
        raise ValueError("no held-out photos: the held-out error needs at least one")
    held_hashes = {file_sha256(p): p for p in held_out_paths}
    for p in train_paths:
        if file_sha256(p) in held_hashes:
            raise ValueError(
                f"training photo {p} is the held-out photo {held_hashes[file_sha256(p)]}: "
                "held-out photos are never trained on"
            )

    started = time.perf_counter()
    conv = net.convention
    banks: list[_Bank] = []
    names: list[str] = []
    for side in config.scale_list():
        photos, names = load_images(train_paths, conv, size=side)
        banks.append(_encode_bank(model, config.layer, photos, dev))
    crop = _effective_crop(config.crop, n_pools)
    fingerprint = encoder_fingerprint(model, config.layer)
    key = _config_key(config, fingerprint, train_paths)

    decoder = Decoder(
        pool_channels(model, config.layer),
        default_widths(n_pools, config.width),
        _output_scale(conv),
        input_scale=_input_scale(banks),
        seed=config.seed,
    ).to(dev)
    opt = torch.optim.Adam(decoder.parameters(), lr=config.lr)
    step, losses, elapsed_before, resumed = 0, [], 0.0, None
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and resume and ckpt.is_file():
        state = load_checkpoint(ckpt, restart_hint=RESTART_HINT)
        if state.get("config_key") != key:
            raise ValueError(
                f"checkpoint {ckpt} belongs to another training configuration; delete it or "
                "pass resume=False (--restart)"
            )
        if state.get("architecture") != decoder.architecture():
            raise ValueError(f"checkpoint {ckpt} holds another decoder architecture")
        decoder.load_state_dict(state["decoder"])
        opt.load_state_dict(state["optimizer"])
        step, losses = int(state["step"]), list(state["losses"])
        elapsed_before = float(state.get("elapsed_s", 0.0))
        resumed = step
        if log:
            log(f"[cnninv] {config.layer}: resuming from step {step} of {config.total_steps}")

    def checkpoint_now(epoch_done: int | None) -> None:
        if ckpt is None:
            return
        state = {
            "config_key": key,
            "step": step,
            "architecture": decoder.architecture(),
            "decoder": decoder.state_dict(),
            "optimizer": opt.state_dict(),
            "losses": losses,
            "elapsed_s": elapsed_before + time.perf_counter() - started,
        }
        save_checkpoint(ckpt, state)
        if callback is not None:
            callback(step, epoch_done)

    scale = decoder.output_scale
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=config.total_steps,
            initial=step,
            desc=f"decoder {config.layer}",
            leave=False,
            dynamic_ncols=True,
        )
    try:
        decoder.train()
        while step < config.total_steps:
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, config.total_steps, config.lr)
            x, f, switches, sizes = _sample_batch(
                banks, crop, config.batch, step_generator(config.seed, step)
            )
            x_hat = decoder(f.to(dev), [sw.to(dev) for sw in switches], sizes)
            x = x.to(dev)
            loss = F.mse_loss(x_hat / scale, x / scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
            epoch_end = step % config.steps_per_epoch == 0
            if epoch_end and log:
                recent = losses[-config.steps_per_epoch :]
                log(
                    f"[cnninv] {config.layer}: epoch {step // config.steps_per_epoch}/"
                    f"{config.epochs} loss {sum(recent) / len(recent):.5f}"
                )
            if epoch_end or step % config.checkpoint_every == 0:
                checkpoint_now(step // config.steps_per_epoch if epoch_end else None)
    finally:
        if bar is not None:
            bar.close()
    train_seconds = elapsed_before + time.perf_counter() - started

    held_x, held_names = load_images(held_out_paths, conv, size=config.eval_size)
    errs = held_out_error(decoder, model, config.layer, held_x.to(dev))
    from cnninv._version import __version__

    last = losses[-config.steps_per_epoch :]
    info = DecoderInfo(
        layer=config.layer,
        architecture=decoder.architecture(),
        convention=dataclasses.asdict(conv),
        encoder={"name": net.name, "weights": net.weights, "fingerprint": fingerprint},
        training={
            "config": dataclasses.asdict(config),
            "config_key": key,
            "training_images": names,
            "training_image_files": [str(p) for p in train_paths],
            "held_out_images": held_names,
            "held_out_rule": HELD_OUT_RULE,
            "epochs": config.epochs,
            "steps": config.total_steps,
            "final_epoch_loss": sum(last) / len(last) if last else None,
            "held_out_error": sum(errs) / len(errs),
            "held_out_errors": dict(zip(held_names, errs, strict=True)),
            "error_definition": "||decoded - x|| / ||x||, x the photo in the network's input "
            "space, mean over the held-out photos",
            "train_seconds": round(train_seconds, 2),
            "resumed_from_step": resumed,
            "device": str(dev),
            "threads": torch.get_num_threads(),
            "torch_version": torch.__version__,
            "cnninv_version": __version__,
        },
    )
    decoder.eval()
    path = None
    if out is not None:
        path = save_decoder(decoder.cpu(), info, out)
        decoder.to(dev)
        if ckpt is not None:
            ckpt.unlink(missing_ok=True)
    return TrainResult(decoder, info, losses, resumed, path)


# --------------------------------------------------------------------------- cache
def cache_dir(cache: str | Path | None = None) -> Path:
    """cnninv's cache folder: ``cache`` if given, else ``$CNNINV_CACHE``, else
    ``~/.cache/cnninv``. Decoders live in its ``decoders/`` sub-folder."""
    if cache:
        return Path(cache).expanduser()
    env = os.environ.get("CNNINV_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "cnninv"


def decoder_path(
    net, config: TrainConfig, cache: str | Path | None = None, train_paths=None
) -> Path:
    """The cache file of the decoder of ``net`` trained with ``config``."""
    if train_paths is None:
        train_paths = photo_split().train
    fingerprint = encoder_fingerprint(net.model, config.layer)
    key = _config_key(config, fingerprint, [Path(p) for p in train_paths])
    name = f"{net.name}-{fingerprint[:10]}-{config.layer}-{key[:10]}.safetensors"
    return cache_dir(cache) / "decoders" / name


def get_decoder(
    net,
    config: TrainConfig,
    *,
    cache: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
    train: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[Decoder, DecoderInfo, Path]:
    """The decoder of ``net`` for ``config.layer``: read from the cache, or trained (with
    checkpoints in ``<cache>/decoders/checkpoints``, resumed if interrupted) and cached.

    Raises
    ------
    ValueError
        If it is not cached and ``train`` is False.
    """
    split = photo_split()
    path = decoder_path(net, config, cache, split.train)
    dev = resolve_device(device)
    if path.is_file():
        dec, info = load_decoder(
            path, layer=config.layer, model=net.model, convention=net.convention, device=dev
        )
        return dec, info, path
    if not train:
        raise ValueError(
            f"no cached decoder {path}; train it with `cnninv train-decoder --layer {config.layer}`"
        )
    if log:
        log(f"[cnninv] training the {config.layer} decoder -> {path}")
    ckpt = path.parent / "checkpoints" / (path.stem + ".ckpt")
    res = train_decoder(
        net,
        config,
        train_paths=split.train,
        held_out_paths=split.held_out,
        checkpoint=ckpt,
        out=path,
        device=dev,
        progress=progress,
        log=log,
    )
    return res.decoder.to(dev).eval(), res.info, path


def get_decoders(
    net,
    configs: dict[str, TrainConfig],
    *,
    cache: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[dict[str, Decoder], dict[str, dict[str, Any]]]:
    """The decoder of each layer of ``configs`` (layer -> its :class:`TrainConfig`), from
    the cache or trained when missing, and a summary of each (file, held-out error,
    training time, whether it was trained in this call, training photos)."""
    decoders, about = {}, {}
    for layer, config in configs.items():
        cached = decoder_path(net, config, cache).is_file()
        dec, info, path = get_decoder(
            net, config, cache=cache, device=device, progress=progress, log=log
        )
        decoders[layer] = dec
        tr = info.training
        about[layer] = {
            "file": str(path),
            "held_out_error": tr.get("held_out_error"),
            "train_seconds": tr.get("train_seconds"),
            "trained_in_this_run": not cached,
            "steps": tr.get("steps"),
            "training_images": len(tr.get("training_images", [])),
            "held_out_images": tr.get("held_out_images"),
            "architecture": info.architecture,
        }
    return decoders, about
