r"""Table 4, image space (§4.5): for pool1…pool4 of VGG16, the image-space relative error
of the trained what-where decoder applied to

(a) the original pooled activation :math:`f`,
(b) :math:`\hat f = \mathbf W^T\mathbb M(\mathbf Wf, k)` with the learned filters of
    conv(i+1)_1 (unit norm),
(c) the same with Gaussian filters of the same size,
(d) Gaussian random activations,

every activation rescaled to :math:`\|f\|` and decoded with the encoder's switches of the
photo (the "where"), on the held-out photos (never seen by the decoders). ``k`` matches
the density measured at relu(i+1)_1 on the same photos, as in the activation-space half.

Error (``ERROR_DEFINITION``): :math:`\|\hat x - x\|/\|x\|` with :math:`x` the photo and
:math:`\hat x` the decoder's output, both in the network's input space (VGG16: BGR, 0–255,
the Caffe mean subtracted; the space the decoders work in and Caffe's decoders worked
in), per photo, then averaged. The same in RGB [0, 1] (output clipped), PSNR and SSIM are
reported beside it.

The paper's decoders (Caffe, trained on ImageNet by Zhang et al. 2016) cannot be had; ours
are trained here on a few dozen offline photos (:mod:`cnninv.inversion.training`), so
row (a), and with it every row, is expected to be worse than the paper's; the paper's
comparison is between the rows.

The helpers below (photos, decoders, the four reconstructions) are shared by
:mod:`cnninv.experiments.inversion_figs` and :mod:`cnninv.experiments.inversion_baselines`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import torch

from cnninv._checks import make_generator
from cnninv.analysis import k_for_fraction
from cnninv.data import load_images
from cnninv.experiments import paper
from cnninv.experiments._common import check_config, environment, progress_bar
from cnninv.experiments._networks import weights_arg
from cnninv.inversion.decoder import Decoder, encode, pool_number
from cnninv.inversion.methods import (
    decode,
    iht_activation,
    image_metrics,
    next_conv,
    random_activation,
)
from cnninv.inversion.training import (
    HELD_OUT_RULE,
    QUICK_TRAINING,
    TrainConfig,
    decoder_path,
    get_decoder,
    held_out_photos,
)
from cnninv.networks import LoadedNetwork, load_network

__all__ = [
    "ERROR_DEFINITION",
    "QUICK",
    "ROWS",
    "Config",
    "decoders_for",
    "load_photos",
    "reconstructions",
    "run",
]

ERROR_DEFINITION = (
    "||x_hat - x|| / ||x||, x the original photo and x_hat its reconstruction (in Table 4 "
    "and Figures 4-5 the decoder's output), both in the network's input space (VGG16: BGR, "
    "0-255, Caffe mean subtracted), per photo, then the mean over photos"
)

#: The rows of Table 4 (image space) and of Figures 4 and 5, in order.
ROWS = {
    "original_activation": "(b) decoder on the original activation",
    "iht_learned": "(c) IHT with learned filters",
    "iht_random": "(d) IHT with random filters",
    "random_activations": "(e) decoder on random activations",
}

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
class Config:
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


# --------------------------------------------------------------------------- shared helpers
def load_photos(config) -> tuple[LoadedNetwork, torch.Tensor, list[str]]:
    """The network and the photos of an inversion experiment (default: the held-out ones)."""
    from cnninv._checks import resolve_device

    dev = resolve_device(config.device)
    net = load_network(
        config.model, weights_arg(config.weights), seed=config.seed, device=dev,
        features_only=True,
    )  # fmt: skip
    paths = (
        held_out_photos() if config.images in ("held-out", "default", "", None) else config.images
    )
    x, names = load_images(paths, net.convention, size=config.image_size)
    if config.max_images:
        x, names = x[: config.max_images], names[: config.max_images]
    return net, x.to(dev), names


def decoders_for(
    net: LoadedNetwork, config, layers: list[str], *, progress: bool = False, log=None
) -> tuple[dict[str, Decoder], dict[str, dict[str, Any]]]:
    """The decoder of each layer (from the cache, trained when missing) and a summary of
    each (file, held-out error, training time, whether it was trained in this run)."""
    decs, about = {}, {}
    if log is None and progress:
        log = _stderr
    for layer in layers:
        tc = config.train_config(layer)
        cached = decoder_path(net, tc, config.cache or None).is_file()
        dec, info, path = get_decoder(
            net, tc, cache=config.cache or None, device=config.device, progress=progress,
            log=log,
        )  # fmt: skip
        decs[layer] = dec
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
    return decs, about


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def layer_k(net: LoadedNetwork, f: torch.Tensor, layer: str, pool: int) -> tuple[int, float]:
    """``k`` from the density at the ReLU of the next convolution on all photos."""
    _, conv, relu = next_conv(net.model, layer)
    with torch.no_grad():
        density = float((relu(conv(f)) != 0).double().mean())
    shape = (conv.out_channels, *f.shape[-2:])
    return k_for_fraction(max(density, 1e-6), shape, pool), density


def reconstructions(
    net: LoadedNetwork,
    x: torch.Tensor,
    layer: str,
    decoder: Decoder,
    config,
    *,
    generator: torch.Generator,
    k: int,
) -> tuple[dict[str, torch.Tensor], dict[str, list[float]]]:
    """The four decoded images of Table 4 / Figures 4–5 for a batch ``x``:
    ``{row: x_hat}`` (:data:`ROWS`), and the activation-space errors of rows (c)–(e)."""
    enc = encode(net.model, x, layer)
    f = enc.f
    out = {"original_activation": decode(decoder, enc)}
    act_err = {}
    for row, filters in (("iht_learned", "learned"), ("iht_random", "random")):
        f_hat, info = iht_activation(
            net.model, f, layer, k=k, filters=filters, iters=config.iters, pool=config.pool,
            variant=config.variant, normalize_filters=config.normalize_filters,
            generator=generator,
        )  # fmt: skip
        out[row] = decode(decoder, enc, f_hat)
        act_err[row] = info["activation_errors"]
    noise = random_activation(f, generator)
    out["random_activations"] = decode(decoder, enc, noise)
    act_err["random_activations"] = (
        (noise - f).flatten(1).norm(dim=1) / f.flatten(1).norm(dim=1)
    ).tolist()
    return out, act_err


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def run(config: Config, progress: bool = False, log=None) -> dict:
    """Run Table 4 (image space); returns the errors per layer and row, the paper's beside."""
    started = time.perf_counter()
    net, x, names = load_photos(config)
    layers = config.layer_list()
    for layer in layers:
        pool_number(net.model, layer)
        next_conv(net.model, layer)
    decoders, about = decoders_for(net, config, layers, progress=progress, log=log)
    published = paper.TABLE4_IMAGE if net.name == "vgg16" else {}
    results = {}
    for li, layer in enumerate(progress_bar(layers, enabled=progress, desc="table4-image")):
        gen = make_generator(config.seed + 1000 * (li + 1), None, x.device)
        f_all = encode(net.model, x, layer).f
        k, density = layer_k(net, f_all, layer, config.pool)
        metrics: dict[str, dict[str, list[float]]] = {r: {} for r in ROWS}
        act_errors: dict[str, list[float]] = {r: [] for r in ROWS if r != "original_activation"}
        for s in range(0, x.shape[0], config.batch):
            xb = x[s : s + config.batch]
            imgs, aerr = reconstructions(
                net, xb, layer, decoders[layer], config, generator=gen, k=k
            )
            for row, xh in imgs.items():
                for key, vals in image_metrics(xh, xb, net.convention).items():
                    metrics[row].setdefault(key, []).extend(vals)
            for row, vals in aerr.items():
                act_errors[row].extend(vals)
        p = published.get(layer, (None, None, None))
        results[layer] = {
            **{row: _mean(metrics[row]["relative_error"]) for row in ROWS},
            "paper_learned": p[0],
            "paper_random": p[1],
            "paper_random_activations": p[2],
            "metrics": {row: {key: _mean(v) for key, v in m.items()} for row, m in metrics.items()},
            "per_image": {row: metrics[row]["relative_error"] for row in ROWS},
            "activation_errors": {row: _mean(v) for row, v in act_errors.items()},
            "next_conv": next_conv(net.model, layer)[0],
            "k": k,
            "k_fraction": density,
            "decoder": about[layer],
        }
    return {
        "experiment": "table4-image",
        "model": net.name,
        "weights": net.weights,
        "weights_source": net.source,
        "images": names,
        "held_out_rule": HELD_OUT_RULE if config.images in ("held-out", "default", "") else None,
        "rows": ROWS,
        "layers": results,
        "error_definition": ERROR_DEFINITION,
        "method": "decoder(f_hat, switches of the photo); f_hat = W^T M(W f, k) with conv(i+1)_1 "
        f"({'unit-norm ' if config.normalize_filters else ''}learned or Gaussian filters), "
        f"{config.iters} IHT iteration(s), {config.pool}x{config.pool} blocks, variant "
        f"{config.variant!r}, rescaled to ||f||; random activations: Gaussian rescaled to ||f||",
        **environment(config, started),
    }
