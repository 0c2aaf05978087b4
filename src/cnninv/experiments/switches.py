r"""What the switches carry (the paper's conclusion, measured): "there is considerable
information captured in the switch units … that no mathematical model has yet expressed"
(§5). For pool1…pool4 of VGG16, on the held-out photos, the image is reconstructed from

(a) ``values_and_switches``: the pooled activation :math:`f` and the encoder's switches;
(b) ``switches_only``: the switches, every pooled unit set to one constant (the layer's
    mean magnitude on the photo);
(c) ``values_only``: :math:`f`, every switch at its block's top-left (naive unpooling);
(d) ``neither``: :math:`|g|` (:math:`g` Gaussian) rescaled to :math:`\|f\|`, switches
    uniform in each block,

(:func:`cnninv.inversion.switch_information`) by two methods: the what-where decoder
(given the values and the switches of every pool), and the optimisation of Mahendran &
Vedaldi, whose data term becomes, when switches are given,
:func:`cnninv.inversion.switch_objective` (each switch must be its block's maximum, at
every pool; the values must match at pool N), and for ``values_only`` the usual
:math:`\|\Phi(x) - f\|^2/\|f\|^2` (max pooling, switches free). For each: the image-space
relative error (:data:`cnninv.inversion.IMAGE_ERROR_DEFINITION`), SSIM, and a grid.

The decoders were trained on (a) only; (b)–(d) ask what each one does with less. The
optimisation has no training, so it measures the information itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cnninv._checks import check_positive_int, make_generator
from cnninv.experiments._common import environment, progress_bar
from cnninv.experiments._inputs import held_out_rule, load_inputs_for
from cnninv.experiments._inversion import (
    InversionConfig,
    check_layers,
    decoders_for,
    optimize_inputs,
    optimize_record,
)
from cnninv.inversion import (
    IMAGE_ERROR_DEFINITION,
    SWITCH_CONDITIONS,
    encode,
    image_metrics,
    optimize_image,
    png_base64,
    switch_information,
)

__all__ = ["CONDITIONS", "QUICK", "Config", "run"]

#: The conditions, with their labels.
CONDITIONS = dict(
    zip(
        SWITCH_CONDITIONS,
        (
            "(a) values + switches",
            "(b) switches only",
            "(c) values only (top-left unpooling)",
            "(d) neither (random values, random switches)",
        ),
        strict=True,
    )
)

#: ``--quick``: 2 photos for the decoders, 1 photo at 64 px and 30 steps for the
#: optimisation.
QUICK = {"max_images": 2, "optimize_images": 1, "optimize_size": 64, "optimize_iters": 30}


@dataclass
class Config(InversionConfig):
    """The switch experiment: the shared inversion settings (photos, decoders, the
    optimisation); ``optimize_images`` photos go through the optimisation (0: all)."""

    # the optimisation costs minutes per photo and layer on a CPU at 224 px
    optimize_images: int = 2
    optimize_size: int = 112
    thumb_size: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int(self.thumb_size, "thumb_size")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def run(config: Config, progress: bool = False, log=None) -> dict:
    """Reconstructions from values and/or switches, by the decoder and the optimisation."""
    started = time.perf_counter()
    inputs = load_inputs_for(config)
    net, x, names = inputs.net, inputs.images, inputs.names
    layers = config.layer_list()
    check_layers(net.model, layers, needs_next_conv=False)
    decoders, about = decoders_for(net, config, layers, progress=progress, log=log)
    x_opt, opt_names = optimize_inputs(config, net, x, names)
    size = config.thumb_size
    grid = {
        "image": names[0],
        "original": png_base64(x[0], net.convention, size),
        "decoder": {},
        "optimize": {},
    }
    notes: dict[str, str] = {}
    results = {}
    for li, layer in enumerate(progress_bar(layers, enabled=progress, desc="switches")):
        gen = make_generator(config.seed + 1000 * (li + 1), None, x.device)
        per: dict[str, dict] = {c: {} for c in SWITCH_CONDITIONS}
        grid["decoder"][layer], grid["optimize"][layer] = {}, {}
        for s in range(0, x.shape[0], config.batch):
            xb = x[s : s + config.batch]
            enc = encode(net.model, xb, layer)
            for cond in SWITCH_CONDITIONS:
                values, switches, notes[cond] = switch_information(enc, cond, gen)
                xh = decoders[layer](values, switches, enc.sizes).detach()
                for key, vals in image_metrics(xh, xb, net.convention).items():
                    per[cond].setdefault(key, []).extend(vals)
                if s == 0:
                    grid["decoder"][layer][cond] = png_base64(xh[0], net.convention, size)
        opt_gen = make_generator(config.seed + 2000 * (li + 1), None, x.device)
        enc = encode(net.model, x_opt, layer)
        optimized: dict[str, dict] = {}
        for cond in SWITCH_CONDITIONS:
            values, switches, _ = switch_information(enc, cond, opt_gen)
            xh, _ = optimize_image(
                net.model, values, layer, net.convention, tuple(x_opt.shape),
                options=config.optimize_options(), generator=opt_gen,
                switches=None if cond == "values_only" else switches,
            )  # fmt: skip
            m = image_metrics(xh, x_opt, net.convention)
            optimized[cond] = {
                "error": _mean(m["relative_error"]),
                "ssim": _mean(m["ssim"]),
                "psnr": _mean(m["psnr"]),
                "per_image": m["relative_error"],
            }
            grid["optimize"][layer][cond] = png_base64(xh[0], net.convention, size)
        results[layer] = {
            cond: {
                "error": _mean(per[cond]["relative_error"]),
                "ssim": _mean(per[cond]["ssim"]),
                "psnr": _mean(per[cond]["psnr"]),
                "rgb_relative_error": _mean(per[cond]["rgb_relative_error"]),
                "per_image": per[cond]["relative_error"],
                "optimize": optimized[cond],
            }
            for cond in SWITCH_CONDITIONS
        }
        results[layer]["decoder"] = about[layer]
    return {
        "experiment": "switches",
        "model": net.name,
        "weights": net.weights,
        "images": names,
        "held_out_rule": held_out_rule(config.images),
        "conditions": CONDITIONS,
        "condition_notes": notes,
        "layers": results,
        "grid": grid,
        "optimize": optimize_record(
            config,
            x_opt,
            opt_names,
            objective="values_only: ||maxpool features - f||^2 / ||f||^2 (switches free); "
            "otherwise switch_objective: values at the pool-N switches, and every switch "
            "the maximum of its block at every pool",
        ),
        "error_definition": IMAGE_ERROR_DEFINITION,
        **environment(config, started),
    }
