r"""Beyond the paper: every inversion method of :mod:`cnninv.inversion.methods` at every
pooling layer, on the held-out photos.

Methods: ``decoder`` (the trained what-where decoder on the original activation),
``iht`` (the paper's one-step IHT with conv(i+1)_1's learned filters, then the decoder),
``optimize`` (Mahendran & Vedaldi 2015: Adam on the image, TV and α-norm priors, no
training) and ``deconvnet`` (Zeiler & Fergus 2014: switches, ReLU and transposed filters,
no training; rescaled to :math:`\|x\|`). For each: the image-space relative error
(:data:`cnninv.inversion.IMAGE_ERROR_DEFINITION`), the same in RGB [0, 1], PSNR,
SSIM, and the seconds per photo (inversion only: the decoders' training time is reported
apart, from their files). One grid: the first photo, one row per method, one column per
layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cnninv._checks import check_positive_int
from cnninv.analysis import next_layer
from cnninv.experiments._common import environment, progress_bar
from cnninv.experiments._inputs import held_out_rule, load_inputs_for
from cnninv.experiments._inversion import InversionConfig, check_layers, decoders_for
from cnninv.inversion import (
    IMAGE_ERROR_DEFINITION,
    METHODS,
    encode,
    image_metrics,
    invert,
    png_base64,
)

__all__ = ["QUICK", "Config", "run"]

#: ``--quick``: 2 photos at 112 px, 30 optimisation steps.
QUICK = {"max_images": 2, "image_size": 112, "optimize_iters": 30}


@dataclass
class Config(InversionConfig):
    methods: str = "decoder,iht,optimize,deconvnet"
    thumb_size: int = 160
    batch: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int(self.optimize_iters, "optimize_iters")
        check_positive_int(self.thumb_size, "thumb_size")
        unknown = [m for m in self.method_list() if m not in METHODS]
        if unknown or not self.method_list():
            raise ValueError(f"methods must be a comma-separated subset of {METHODS}, got "
                             f"{self.methods!r}")  # fmt: skip

    def method_list(self) -> list[str]:
        return [s.strip() for s in str(self.methods).split(",") if s.strip()]


def run(config: Config, progress: bool = False, log=None) -> dict:
    """Every method at every layer: means of the measures, seconds per photo, one grid."""
    started = time.perf_counter()
    inputs = load_inputs_for(config)
    net, x, names = inputs.net, inputs.images, inputs.names
    layers, methods = config.layer_list(), config.method_list()
    needs_decoder = any(m in ("decoder", "iht") for m in methods)
    check_layers(net.model, layers, needs_next_conv="iht" in methods)
    decoders, about = (
        decoders_for(net, config, layers, progress=progress, log=log) if needs_decoder else ({}, {})
    )
    size = config.thumb_size
    grid = {"image": names[0], "original": png_base64(x[0], net.convention, size), "pictures": {}}
    results = {}
    for layer in progress_bar(layers, enabled=progress, desc="inversion-baselines"):
        k = None
        if "iht" in methods:
            k = next_layer(net.model, layer, encode(net.model, x, layer).f, pool=config.pool).k
        results[layer] = {}
        grid["pictures"][layer] = {}
        for method in methods:
            measures: dict[str, list[float]] = {}
            seconds = 0.0
            for s in range(0, x.shape[0], config.batch):
                xb = x[s : s + config.batch]
                inv = invert(
                    net, xb, layer, method, decoder=decoders.get(layer), k=k,
                    iters=config.iters if method == "iht" else None, pool=config.pool,
                    variant=config.variant, normalize_filters=config.normalize_filters,
                    optimize=config.optimize_options(), seed=config.seed + s,
                )  # fmt: skip
                seconds += inv.seconds
                for key, vals in image_metrics(inv.x_hat, xb, net.convention).items():
                    measures.setdefault(key, []).extend(vals)
                if s == 0:
                    grid["pictures"][layer][method] = png_base64(inv.x_hat[0], net.convention, size)
            n = x.shape[0]
            results[layer][method] = {
                **{key: sum(v) / n for key, v in measures.items()},
                "seconds_per_image": seconds / n,
                "per_image": measures,
            }
    return {
        "experiment": "inversion-baselines",
        "model": net.name,
        "weights": net.weights,
        "images": names,
        "image_size": config.image_size,
        "held_out_rule": held_out_rule(config.images),
        "methods": methods,
        "layers": results,
        "grid": grid,
        "decoders": about,
        "optimize_options": {**config.optimize_options().__dict__},
        "error_definition": IMAGE_ERROR_DEFINITION,
        "notes": {
            "deconvnet": "output rescaled to ||x|| (input space): it has no scale of its own",
            "iht": f"{config.iters} IHT iteration(s) with conv(i+1)_1's unit-norm learned "
            "filters, rescaled to ||f||, then the decoder",
            "seconds": "inversion only, on this machine's "
            f"{config.device}; decoder training time is in 'decoders'",
        },
        **environment(config, started),
    }
