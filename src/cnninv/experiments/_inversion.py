"""Settings and steps shared by the inversion experiments (``table4-image``, ``fig4``,
``fig5``, ``inversion-baselines``): the photos, IHT's settings and the decoders' training
in one config; the decoders of a config; the check that its layers fit."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from cnninv.experiments._common import check_config
from cnninv.inversion import (
    QUICK_TRAINING,
    RECONSTRUCTIONS,
    TrainConfig,
    decoded_pools,
    get_decoders,
)
from cnninv.models import next_conv

__all__ = ["QUICK", "ROWS", "InversionConfig", "check_layers", "decoders_for"]

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

#: ``--quick`` overrides shared by table4-image, fig4, fig5 and inversion-baselines (the
#: same tiny decoders, trained once and cached).
QUICK: dict[str, Any] = {
    "train_crop": QUICK_TRAINING["crop"],
    "train_width": QUICK_TRAINING["width"],
    "train_epochs": QUICK_TRAINING["epochs"],
    "train_steps": QUICK_TRAINING["steps_per_epoch"],
    "train_batch": QUICK_TRAINING["batch"],
    "train_lr": QUICK_TRAINING["lr"],
    "train_scales": QUICK_TRAINING["scales"],
    "max_images": 3,
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
    # the decoders' training (TrainConfig); they are cached and trained when missing
    train_crop: int = 64
    train_width: int = 16
    train_epochs: int = 20
    train_steps: int = 50
    train_batch: int = 8
    train_lr: float = 1e-3
    train_scales: str = "224"  # sides the training photos are resized to
    cache: str = ""  # cnninv cache folder ("" = $CNNINV_CACHE or ~/.cache/cnninv)
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
        if isinstance(self.max_images, bool) or not isinstance(self.max_images, int):
            raise ValueError(f"max_images must be an integer, got {self.max_images!r}")
        if self.max_images < 0:
            raise ValueError(f"max_images must be >= 0, got {self.max_images!r}")
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
    """The decoders of ``layers`` for an inversion experiment's config (cached or trained;
    training progress on stderr when ``progress``)."""
    if log is None and progress:
        log = _stderr
    return get_decoders(
        net, config.train_configs(layers), cache=config.cache or None, device=config.device,
        progress=progress, log=log,
    )  # fmt: skip


def check_layers(model, layers: list[str], *, needs_next_conv: bool = True) -> None:
    """Every layer is a pooling layer of the network (followed by a convolution)."""
    for layer in layers:
        decoded_pools(model, layer)
        if needs_next_conv:
            next_conv(model, layer)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)
