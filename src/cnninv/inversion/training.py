r"""Training the what-where decoders (:class:`~cnninv.inversion.decoder.Decoder`) on
natural photos, with a validation split, a held-out split, checkpoints, a cache, worker
processes, mixed precision on GPU and data-parallel training.

Data (:func:`cnninv.data.photos.photo_split`)
    The default training photos are those of :data:`cnninv.data.photos.DEFAULT_SOURCES`
    (installed by ``make setup``; a missing source is said in a warning) and any folder
    the user adds; a content-hash rule keeps one photo in eight apart for validation (it
    chooses architectures and schedules, and is never trained on); the held-out photos
    are 5 foolbox photos, never trained or validated on (:func:`train_decoder` refuses a
    training list that contains one). The photos' contents, not only their names, are part
    of a decoder's cache key.

Training (:func:`train_decoder`)
    Every step draws ``batch`` random crops (:class:`~cnninv.inversion.crops.PhotoCrops`:
    a random photo resized to a random side of ``scales``, flipped at random, a random
    ``crop``×``crop`` square at any pixel, so that the pooling grids fall on the content at
    every phase), streamed by ``workers`` DataLoader processes, and runs the frozen
    encoder on them up to the layer (keeping every pool's switches), so a folder of any
    size trains without being held in memory. With ``encode="photos"`` the photos are
    instead encoded whole, once per side and flip, and the crops cut from the encodings
    (:class:`~cnninv.inversion.crops.EncodedPhotos`): no crop border in the activations of
    deep layers, whose units see more than a crop, and one encoder pass per photo; which
    trains better decoders at which layer is measured in docs/decoders.md. Adam (learning
    rate decayed along a cosine) minimises the pixel loss of Zhang et al. (2016),
    :math:`\|\mathrm{dec}(f, s) - x\|^2 / (\text{output\_scale}^2\,\#x)`, the mean squared
    error in the network's input space (Caffe BGR 0–255 minus the mean for VGG16) divided
    by ``output_scale``² (255²), plus, when ``feature_weight`` > 0, that weight times the
    relative feature error :math:`\|\phi(\hat x) - \phi(x)\|^2/\|\phi(x)\|^2` at
    ``feature_layer``. After every epoch the relative error :math:`\|\hat x - x\|/\|x\|`
    (input space) of whole photos at ``eval_size`` is measured on the validation photos;
    at the end on the validation and the held-out photos.

Devices
    ``device="cuda"`` runs the encoder and decoder on the GPU; ``amp=True`` runs both
    under bfloat16 autocast there (the loss in float32). Under ``torchrun`` (an
    initialised ``torch.distributed`` process group) each of the ``W`` processes takes
    ``batch / W`` of every step's crops and DistributedDataParallel averages the
    gradients, so the run computes the same steps as one process (to rounding); only
    rank 0 writes checkpoints and the decoder file.

Checkpoints
    ``torch.save`` of plain data (the decoder's and Adam's state dicts, the step, the loss
    and validation history, the configuration key), written atomically every
    ``checkpoint_every`` steps and at the end of every epoch, read back with
    ``weights_only=True``. A step's crops depend only on ``(seed, step)``, so a run resumed
    from a checkpoint ends with exactly the weights of an uninterrupted run.

Cache (:func:`get_decoder`)
    Trained decoders are kept in ``$CNNINV_CACHE/decoders`` (default
    ``~/.cache/cnninv/decoders``), one ``.safetensors`` file per network, layer and
    training configuration; the experiments train what is missing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cnninv._checks import check_positive_int, resolve_device
from cnninv.data.images import load_images
from cnninv.data.photos import (
    HELD_OUT_RULE,
    VALIDATION_RULE,
    file_sha256,
    photo_split,
    photos_fingerprint,
)
from cnninv.inversion.crops import (
    EncodedPhotos,
    PhotoCrops,
    StepSampler,
    parse_scales,
    readable_photos,
    scale_bounds,
)
from cnninv.inversion.decoder import (
    FORMAT_VERSION,
    Decoder,
    DecoderInfo,
    decoded_pools,
    default_widths,
    encode,
    encoder_fingerprint,
    layer_index,
    load_decoder,
    pool_channels,
    save_decoder,
)
from cnninv.metrics import relative_error
from cnninv.models.layers import pool_number
from cnninv.training import cosine_lr, load_checkpoint, save_checkpoint

__all__ = [
    "ENCODE_MODES",
    "QUICK_TRAINING",
    "RESTART_HINT",
    "TrainConfig",
    "TrainResult",
    "cache_dir",
    "decoder_path",
    "decoder_summary",
    "distributed_rank",
    "get_decoder",
    "get_decoders",
    "held_out_error",
    "train_decoder",
]

#: How the training crops are encoded (:class:`TrainConfig`).
ENCODE_MODES = ("crops", "photos")

#: ``encode="photos"`` refuses photo sets whose encodings would take more memory.
MEMORY_LIMIT_BYTES = 8 * 2**30

#: How to start over when a checkpoint cannot be used.
RESTART_HINT = "delete it or rerun with --restart (cnninv train-decoder) to train from scratch"

#: Overrides of :class:`TrainConfig` for tiny decoders trained in seconds per layer on 2
#: CPU cores (networks without shipped decoders, e.g. random filters, in ``--quick`` runs).
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
    crop : side of the training crops (px), rounded down to a multiple of ``2^N``.
    width : base width of the decoder (stage n has ``min(width·2^(n-1), 8·width)``).
    convs : convolutions per decoder stage (:class:`Decoder`).
    epochs, steps_per_epoch, batch : ``epochs · steps_per_epoch`` Adam steps of ``batch``
        crops.
    lr : Adam's initial learning rate, decayed to 0 along a cosine over the run (computed
        from the step index, so a resumed run follows the same schedule).
    scales : sides the photos are resized to before cropping: ``"224"``, a list
        ``"192,224,288"`` or a range ``"160-320"`` (:func:`~cnninv.inversion.crops.parse_scales`).
    flip : random horizontal flips.
    encode : ``"crops"`` (each crop encoded alone, photos streamed from disk by DataLoader
        workers: any folder) or ``"photos"`` (each photo encoded whole once per side and
        flip and kept in memory, crops cut from the encodings:
        :class:`~cnninv.inversion.crops.EncodedPhotos`; needs a list of sides).
    feature_weight : weight of the feature loss (0: the pixel loss alone).
    feature_layer : layer of the feature loss (``""``: the decoded layer).
    eval_size : side of the validation and held-out photos for their errors.
    checkpoint_every : steps between checkpoints (also written at every epoch's end).
    seed : initial weights and crops.
    """

    layer: str = "pool4"
    crop: int = 64
    width: int = 16
    convs: int = 2
    epochs: int = 20
    steps_per_epoch: int = 50
    batch: int = 8
    lr: float = 1e-3
    scales: str = "224"
    flip: bool = True
    encode: str = "crops"
    feature_weight: float = 0.0
    feature_layer: str = ""
    eval_size: int = 224
    checkpoint_every: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("crop", "width", "epochs", "steps_per_epoch", "batch", "eval_size"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.checkpoint_every, "checkpoint_every")
        if isinstance(self.convs, bool) or not isinstance(self.convs, int) or self.convs < 2:
            raise ValueError(f"convs must be an integer >= 2, got {self.convs!r}")
        pool_number(self.layer)
        if self.encode not in ENCODE_MODES:
            raise ValueError(f"encode must be one of {ENCODE_MODES}, got {self.encode!r}")
        if self.encode == "photos" and parse_scales(self.scales)[-1]:
            raise ValueError(
                f"scales {self.scales!r} is a range: encode='photos' needs a list of sides"
            )
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        fw = self.feature_weight
        if not (isinstance(fw, int | float) and math.isfinite(fw) and fw >= 0):
            raise ValueError(f"feature_weight must be a non-negative number, got {fw!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        lo, _ = scale_bounds(self.scales)
        if lo < self.crop:
            raise ValueError(f"every scale must be at least crop={self.crop}, got {self.scales!r}")
        if self.crop < 2 ** pool_number(self.layer):
            raise ValueError(
                f"crop={self.crop} is too small for {self.layer} (needs at least "
                f"{2 ** pool_number(self.layer)} px)"
            )

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


# --------------------------------------------------------------------------- training
@dataclass
class TrainResult:
    """What :func:`train_decoder` returns (``info.training`` holds the record)."""

    decoder: Decoder
    info: DecoderInfo
    losses: list[float]
    resumed_from_step: int | None
    path: Path | None = None


def _effective_crop(crop: int, n_pools: int) -> int:
    """``crop`` rounded down to a multiple of ``2^N`` (so crops align with every pool)."""
    unit = 2**n_pools
    return max(unit, crop - crop % unit)


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


def _input_scale(model, layer: str, x: torch.Tensor, batch: int = 4) -> float:
    """RMS of the layer's activations on the photos ``x``."""
    total, count = 0.0, 0
    for s in range(0, x.shape[0], batch):
        f = encode(model, x[s : s + batch], layer).f
        total += float(f.double().pow(2).sum())
        count += f.numel()
    rms = math.sqrt(total / max(count, 1))
    return rms if rms > 0 else 1.0


def distributed_rank() -> tuple[int, int]:
    """``(rank, world size)`` of an initialised ``torch.distributed`` process group, else
    ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


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
    was_training = decoder.training
    decoder.eval()
    with torch.no_grad():
        for s in range(0, x.shape[0], batch):
            xb = x[s : s + batch]
            enc = encode(model, xb, layer)
            xh = decoder(enc.f, enc.switches, enc.sizes)
            errs += relative_error(xh, xb).tolist()
    decoder.train(was_training)
    return errs


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def train_decoder(
    net,
    config: TrainConfig,
    *,
    train_paths: Sequence[str | Path] | None = None,
    held_out_paths: Sequence[str | Path] | None = None,
    validation_paths: Sequence[str | Path] | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    out: str | Path | None = None,
    out_dtype: str = "float32",
    device: str | torch.device = "cpu",
    workers: int = 0,
    amp: bool = False,
    progress: bool = False,
    callback: Callable[[int, int | None], None] | None = None,
    log: Callable[[str], None] | None = None,
    record: dict[str, Any] | None = None,
) -> TrainResult:
    """Train the decoder of ``config.layer`` for the network ``net``.

    Parameters
    ----------
    net : LoadedNetwork
        The encoder (VGG-style ``features``) and its input convention; it stays frozen.
    config : TrainConfig
    train_paths, held_out_paths, validation_paths : photos; default :func:`photo_split`'s
        (validation only with the default training photos; empty: no validation error).
    checkpoint : file for the checkpoints (None: no checkpoints).
    resume : continue from ``checkpoint`` if it exists and belongs to this configuration.
    out : write the decoder there (``.safetensors``, atomically) and delete the checkpoint.
    out_dtype : ``"float32"`` or ``"float16"``: the weights' dtype in ``out``.
    device : where the encoder and decoder run.
    workers : DataLoader worker processes reading the photos (0: in this process).
    amp : bfloat16 autocast for the encoder and decoder (CUDA only).
    progress : show a progress bar.
    callback : ``callback(step, epoch)`` after each checkpoint (``epoch`` the number of
        epochs completed when the checkpoint ends one, else None); raising from it
        interrupts the run (the checkpoint is already on disk).
    log : receives one line per epoch.
    record : extra entries for the file's training record (e.g. the command line).

    Raises
    ------
    ValueError
        A bad layer, no readable training photo, a held-out photo among the training or
        validation photos, a checkpoint of another configuration, ``amp`` off CUDA, a
        batch that the processes cannot share equally.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be a non-negative integer, got {workers!r}")
    dev = resolve_device(device)
    if amp and dev.type != "cuda":
        raise ValueError(f"amp (mixed precision) needs a CUDA device, got {dev}")
    rank, world = distributed_rank()
    if config.batch % world:
        raise ValueError(f"batch ({config.batch}) must be a multiple of the {world} processes")
    model = net.model.to(dev).eval()
    n_pools = decoded_pools(model, config.layer)
    feature_layer = config.feature_layer or config.layer
    if config.feature_weight > 0:
        layer_index(model, feature_layer)
    if train_paths is None or held_out_paths is None:
        split = photo_split()
        if train_paths is None and validation_paths is None:
            validation_paths = split.validation
        train_paths = split.train if train_paths is None else train_paths
        held_out_paths = split.held_out if held_out_paths is None else held_out_paths
    validation_paths = validation_paths or []
    train_paths = readable_photos([Path(p) for p in train_paths])
    held_out_paths = [Path(p) for p in held_out_paths]
    validation_paths = [Path(p) for p in validation_paths]
    if not held_out_paths:
        raise ValueError("no held-out photos: the held-out error needs at least one")
    held_hashes = {file_sha256(p): p for p in held_out_paths}
    for p in [*train_paths, *validation_paths]:
        if file_sha256(p) in held_hashes:
            raise ValueError(
                f"training photo {p} is the held-out photo {held_hashes[file_sha256(p)]}: "
                "held-out photos are never trained or validated on"
            )

    started = time.perf_counter()
    conv = net.convention
    crop = _effective_crop(config.crop, n_pools)
    fingerprint = encoder_fingerprint(model, config.layer)
    key = _config_key(config, fingerprint, train_paths)
    scale_x, _ = load_images(train_paths[:16], conv, size=config.eval_size)
    val_x, val_names = (
        load_images(validation_paths, conv, size=config.eval_size)
        if validation_paths
        else (None, [])
    )
    decoder = Decoder(
        pool_channels(model, config.layer),
        default_widths(n_pools, config.width),
        _output_scale(conv),
        input_scale=_input_scale(model, config.layer, scale_x.to(dev)),
        convs=config.convs,
        seed=config.seed,
    ).to(dev)
    opt = torch.optim.Adam(decoder.parameters(), lr=config.lr)
    step, losses, elapsed_before, resumed = 0, [], 0.0, None
    validation_curve: list[list[float]] = []
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
        validation_curve = [list(v) for v in state.get("validation_curve", [])]
        elapsed_before = float(state.get("elapsed_s", 0.0))
        resumed = step
        if log and rank == 0:
            log(f"[cnninv] {config.layer}: resuming from step {step} of {config.total_steps}")

    def checkpoint_now(epoch_done: int | None) -> None:
        if ckpt is None or rank != 0:
            return
        state = {
            "config_key": key,
            "step": step,
            "architecture": decoder.architecture(),
            "decoder": decoder.state_dict(),
            "optimizer": opt.state_dict(),
            "losses": losses,
            "validation_curve": validation_curve,
            "elapsed_s": elapsed_before + time.perf_counter() - started,
        }
        save_checkpoint(ckpt, state)
        if callback is not None:
            callback(step, epoch_done)

    runner: torch.nn.Module = decoder
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        runner = DistributedDataParallel(
            decoder, device_ids=[dev.index] if dev.type == "cuda" else None
        )
    sampler = StepSampler(step, config.total_steps, config.batch, rank=rank, world=world)
    if config.encode == "photos":
        encoded = EncodedPhotos(
            train_paths, conv, crop, config.scales, model=model, layer=config.layer,
            device=dev, flip=config.flip, seed=config.seed,
        )  # fmt: skip
        need = len(train_paths) * (2 if config.flip else 1)
        need *= sum(encoded.entry_bytes(side) for side in parse_scales(config.scales)[:-1])
        if need > MEMORY_LIMIT_BYTES:
            raise ValueError(
                f"the encoded training photos would take {need / 2**30:.1f} GiB (more than "
                f"{MEMORY_LIMIT_BYTES / 2**30:.0f}): encode crops instead (--encode crops)"
            )
        per, indices = config.batch // world, list(sampler)
        loader = (encoded.batch(indices[i : i + per]) for i in range(0, len(indices), per))
    else:
        loader = torch.utils.data.DataLoader(
            PhotoCrops(train_paths, conv, crop, config.scales, flip=config.flip, seed=config.seed),
            batch_size=config.batch // world,
            sampler=sampler,
            num_workers=workers,
            pin_memory=dev.type == "cuda",
            prefetch_factor=4 if workers else None,
            worker_init_fn=_worker_init if workers else None,
        )
    autocast = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else (lambda: nullcontext())
    )
    scale = decoder.output_scale
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=config.total_steps,
            initial=step,
            desc=f"decoder {config.layer}",
            leave=False,
            dynamic_ncols=True,
        )
    seen_before = step
    fresh_checkpoint = ckpt is not None and not ckpt.exists()
    try:
        decoder.train()
        for item in loader:
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, config.total_steps, config.lr)
            if config.encode == "photos":
                x, f, switches, sizes = item
                x, f = x.to(dev, non_blocking=True), f.to(dev, non_blocking=True)
                switches = [sw.to(dev, non_blocking=True) for sw in switches]
            else:
                x = item.to(dev, non_blocking=True)
                with torch.no_grad(), autocast():
                    enc = encode(model, x, config.layer)
                f, switches, sizes = enc.f, enc.switches, enc.sizes
            with autocast():
                x_hat = runner(f, switches, sizes)
            x_hat = x_hat.float()
            loss = F.mse_loss(x_hat / scale, x / scale)
            if config.feature_weight > 0:
                with torch.no_grad(), autocast():
                    target = encode(model, x, feature_layer).f.float()
                with autocast():
                    phi = encode(model, x_hat, feature_layer, grad=True).f.float()
                rel = (phi - target).flatten(1).pow(2).sum(1) / target.flatten(1).pow(2).sum(
                    1
                ).clamp_min(1e-12)
                loss = loss + config.feature_weight * rel.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = loss.detach()
            if world > 1:
                import torch.distributed as dist

                dist.all_reduce(value)
                value = value / world
            losses.append(value.item())
            if not math.isfinite(losses[-1]):
                raise ValueError(
                    f"{config.layer}: the decoder's loss became non-finite at step {step + 1} "
                    f"(lr {config.lr}): lower the learning rate (--lr)"
                )
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
            epoch_end = step % config.steps_per_epoch == 0
            if epoch_end and rank == 0:
                val = None
                if val_x is not None:
                    val = _mean(held_out_error(decoder, model, config.layer, val_x.to(dev)))
                    validation_curve.append([step, val])
                if log:
                    recent = losses[-config.steps_per_epoch :]
                    log(
                        f"[cnninv] {config.layer}: epoch {step // config.steps_per_epoch}/"
                        f"{config.epochs} loss {sum(recent) / len(recent):.5f}"
                        + (f", validation error {val:.4f}" if val is not None else "")
                    )
            if epoch_end or step % config.checkpoint_every == 0:
                checkpoint_now(step // config.steps_per_epoch if epoch_end else None)
    except ValueError:
        if fresh_checkpoint and rank == 0:  # nothing of a failed first run is kept
            ckpt.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    run_seconds = time.perf_counter() - started
    train_seconds = elapsed_before + run_seconds

    held_x, held_names = load_images(held_out_paths, conv, size=config.eval_size)
    errs = held_out_error(decoder, model, config.layer, held_x.to(dev)) if rank == 0 else []
    val_errs = (
        held_out_error(decoder, model, config.layer, val_x.to(dev))
        if rank == 0 and val_x is not None
        else []
    )
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
            "training_images": [p.stem for p in train_paths],
            "training_image_files": [str(p) for p in train_paths],
            "training_photos_sha256": photos_fingerprint(train_paths),
            "validation_images": val_names,
            "validation_rule": VALIDATION_RULE,
            "held_out_images": held_names,
            "held_out_rule": HELD_OUT_RULE,
            "epochs": config.epochs,
            "steps": config.total_steps,
            "crop": crop,
            "final_epoch_loss": sum(last) / len(last) if last else None,
            "held_out_error": _mean(errs),
            "held_out_errors": dict(zip(held_names, errs, strict=False)),
            "validation_error": _mean(val_errs),
            "validation_curve": validation_curve,
            "error_definition": "||decoded - x|| / ||x||, x the photo in the network's input "
            "space, mean over the photos",
            "train_seconds": round(train_seconds, 2),
            "images_per_second": round(
                (step - seen_before) * config.batch / max(run_seconds, 1e-9), 2
            ),
            "resumed_from_step": resumed,
            "device": str(dev),
            "processes": world,
            "workers": workers,
            "amp": bool(amp),
            "threads": torch.get_num_threads(),
            "torch_version": torch.__version__,
            "cnninv_version": __version__,
            **(record or {}),
        },
    )
    decoder.eval()
    path = None
    if out is not None and rank == 0:
        path = save_decoder(decoder.cpu(), info, out, dtype=out_dtype)
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
        validation_paths=split.validation,
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
        about[layer] = {"file": str(path), "trained_in_this_run": not cached,
                        **decoder_summary(info)}  # fmt: skip
    return decoders, about


def decoder_summary(info: DecoderInfo) -> dict[str, Any]:
    """What the reports say about a decoder, from its file's metadata: errors, training
    time, steps, epochs, batch, number of training photos, held-out photos, architecture,
    the command that trained it."""
    tr = info.training
    return {
        "held_out_error": tr.get("held_out_error"),
        "validation_error": tr.get("validation_error"),
        "train_seconds": tr.get("train_seconds"),
        "steps": tr.get("steps"),
        "epochs": tr.get("epochs"),
        "batch": (tr.get("config") or {}).get("batch"),
        "training_images": len(tr.get("training_images", [])),
        "held_out_images": tr.get("held_out_images"),
        "architecture": info.architecture,
        "command": tr.get("command"),
    }
