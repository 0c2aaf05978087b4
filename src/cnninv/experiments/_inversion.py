"""Settings and steps shared by the inversion experiments (``table4-image``, ``fig4``,
``fig5``, ``inversion-baselines``, ``switches``): the photos, IHT's settings and the
decoders (shipped, or trained with the config's settings) in one config; the decoders of a
config; the check that its layers fit."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from cnninv.data.photos import file_sha256
from cnninv.experiments._common import check_config
from cnninv.inversion import (
    QUICK_TRAINING,
    RECONSTRUCTIONS,
    OptimizeOptions,
    TrainConfig,
    decoded_pools,
    get_decoders,
)
from cnninv.inversion.shipping import shipped_decoder, shipped_for
from cnninv.inversion.training import decoder_summary
from cnninv.models import next_conv

__all__ = [
    "DECODER_SOURCES",
    "QUICK",
    "ROWS",
    "InversionConfig",
    "check_layers",
    "decoders_for",
    "optimize_inputs",
    "optimize_record",
]

#: The rows of Table 4 (image space) and of Figures 4 and 5, in order (the keys are
#: :data:`cnninv.inversion.RECONSTRUCTIONS`).
ROWS = dict(
    zip(
        RECONSTRUCTIONS,
        (
            "(b) decoder on the original activation",
            "(c) IHT with learned filters",
            "(d) IHT with random filters",
            "(e) decoder on random activations",
        ),
        strict=True,
    )
)

#: Where the decoders of an inversion experiment come from.
DECODER_SOURCES = ("shipped", "train")

#: ``--quick`` overrides shared by table4-image, fig4, fig5 and inversion-baselines: fewer
#: photos; the shipped decoders as in a full run, and, for a network that has none (random
#: filters, a user's file), tiny decoders trained once and cached.
QUICK: dict[str, Any] = {
    "train_crop": QUICK_TRAINING["crop"],
    "train_width": QUICK_TRAINING["width"],
    "train_epochs": QUICK_TRAINING["epochs"],
    "train_steps": QUICK_TRAINING["steps_per_epoch"],
    "train_batch": QUICK_TRAINING["batch"],
    "train_lr": QUICK_TRAINING["lr"],
    "train_scales": QUICK_TRAINING["scales"],
    "max_images": 3,
    "optimize_images": 1,
    "optimize_size": 64,
    "optimize_iters": 30,
}


@dataclass
class InversionConfig:
    """Settings shared by the inversion experiments: photos, IHT, the decoders' training."""

    model: str = "vgg16"
    weights: str = "imagenet"
    layers: str = "pool1,pool2,pool3,pool4"
    images: str = "held-out"  # "held-out" (the 5 held-out foolbox photos), a folder or file
    max_images: int = 0  # 0: all
    image_size: int = 224
    iters: int = 1  # IHT iterations (1: the paper's)
    pool: int = 2
    variant: str = "abs"
    normalize_filters: bool = True
    # "shipped": the decoders shipped with cnninv where they fit the network and layer
    # (VGG16, ImageNet weights, pool1-pool4), else trained with the train_* settings;
    # "train": always the decoders of the train_* settings (cached, trained when missing)
    decoders: str = "shipped"
    train_crop: int = 64
    train_width: int = 16
    train_epochs: int = 20
    train_steps: int = 50
    train_batch: int = 8
    train_lr: float = 1e-3
    train_scales: str = "224"  # sides the training photos are resized to
    cache: str = ""  # cnninv cache folder ("" = $CNNINV_CACHE or ~/.cache/cnninv)
    # the optimisation inversion (Mahendran & Vedaldi), for the experiments that run it
    optimize_images: int = 0  # how many of the photos (0: all)
    optimize_size: int = 0  # their side in px (0: image_size)
    optimize_iters: int = 200
    optimize_lr: float = 0.05
    tv_weight: float = 0.005
    alpha_weight: float = 1e-5
    batch: int = 2
    seed: int = 0
    device: str = "cpu"
    quick: bool = False

    def __post_init__(self) -> None:
        check_config(
            self,
            ("image_size", "iters", "pool", "batch", "train_crop", "train_width",
             "train_epochs", "train_steps", "train_batch"),
        )  # fmt: skip
        for name in ("max_images", "optimize_images", "optimize_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        self.optimize_options()
        if self.decoders not in DECODER_SOURCES:
            raise ValueError(f"decoders must be one of {DECODER_SOURCES}, got {self.decoders!r}")
        if self.variant not in ("abs", "relu"):
            raise ValueError(f"variant must be 'abs' or 'relu', got {self.variant!r}")
        if not self.layer_list():
            raise ValueError(f"layers must name at least one pooling layer, got {self.layers!r}")
        for layer in self.layer_list():
            if not layer.startswith("pool"):
                raise ValueError(f"layers must be pooling layers (pool1…), got {layer!r}")
        self.train_config(self.layer_list()[0])

    def layer_list(self) -> list[str]:
        return [s.strip() for s in str(self.layers).split(",") if s.strip()]

    def optimize_options(self) -> OptimizeOptions:
        return OptimizeOptions(
            iters=self.optimize_iters,
            lr=self.optimize_lr,
            tv_weight=self.tv_weight,
            alpha_weight=self.alpha_weight,
        )

    def train_config(self, layer: str) -> TrainConfig:
        return TrainConfig(
            layer=layer,
            crop=self.train_crop,
            width=self.train_width,
            epochs=self.train_epochs,
            steps_per_epoch=self.train_steps,
            batch=self.train_batch,
            lr=self.train_lr,
            scales=self.train_scales,
            seed=self.seed,
        )

    def train_configs(self, layers: list[str]) -> dict[str, TrainConfig]:
        return {layer: self.train_config(layer) for layer in layers}


def decoders_for(net, config, layers: list[str], *, progress: bool = False, log=None):
    """The decoders of ``layers`` for an inversion experiment's config: the shipped one
    where ``config.decoders == "shipped"`` and one fits (:func:`shipped_for`), else the
    one trained with the config's ``train_*`` settings (cached or trained; training
    progress on stderr when ``progress``). Returns ``(decoders, about)``; ``about[layer]``
    says which decoder it is (source, file, SHA-256, training photos, steps, held-out
    error) for the report."""
    if log is None and progress:
        log = _stderr
    decoders, about = {}, {}
    to_train = []
    for layer in layers:
        if config.decoders == "shipped" and shipped_for(net, layer):
            dec, info, entry = shipped_decoder(net, layer, device=config.device)
            decoders[layer] = dec
            about[layer] = {
                "source": "shipped",
                "file": entry["path"],
                "sha256": entry["sha256"],
                "trained_in_this_run": False,
                **decoder_summary(info),
            }
        else:
            to_train.append(layer)
    if to_train:
        trained, about_trained = get_decoders(
            net, config.train_configs(to_train), cache=config.cache or None,
            device=config.device, progress=progress, log=log,
        )  # fmt: skip
        for layer in to_train:
            decoders[layer] = trained[layer]
            entry = about_trained[layer]
            about[layer] = {
                "source": "trained",
                **entry,
                "sha256": file_sha256(entry["file"]),
            }
    return {layer: decoders[layer] for layer in layers}, {layer: about[layer] for layer in layers}


def optimize_record(config, x_opt, names: list[str], **about: str) -> dict:
    """How an experiment's optimisation column was run: its photos, their size, the
    options, and ``about`` (what it matched)."""
    return {
        "images": names,
        "size": int(x_opt.shape[-1]),
        "options": config.optimize_options().__dict__,
        **about,
    }


def optimize_inputs(config, net, x, names: list[str]):
    """The photos of the optimisation columns: the first ``optimize_images`` (0: all),
    re-read at ``optimize_size`` px when it differs from ``image_size``; never more photos
    than the experiment's own (``x``)."""
    n = min(config.optimize_images or x.shape[0], x.shape[0])
    size = config.optimize_size or config.image_size
    if size == config.image_size:
        return x[:n], names[:n]
    from cnninv.experiments._inputs import load_inputs

    small = load_inputs(
        config.model, config.weights, config.images, n, seed=config.seed,
        device=config.device, image_size=size,
    )  # fmt: skip
    return small.images[:n], small.names[:n]


def check_layers(model, layers: list[str], *, needs_next_conv: bool = True) -> None:
    """Every layer is a pooling layer of the network (followed by a convolution)."""
    for layer in layers:
        decoded_pools(model, layer)
        if needs_next_conv:
            next_conv(model, layer)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)
