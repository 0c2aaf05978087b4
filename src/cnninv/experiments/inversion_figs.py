r"""Figure 4 (§4.5) and Figure 5 (Appendix C.3): photos reconstructed by the what-where
decoder from VGG16's pooled activations, by row

(a) the original photo,
(b) the decoder on the original activation,
(c) on the IHT reconstruction with the learned filters of conv(i+1)_1,
(d) on the IHT reconstruction with Gaussian filters,
(e) on Gaussian random activations (all rescaled to :math:`\|f\|`, all decoded with the
    photo's own pooling switches),

one column per held-out photo; Figure 4 for pool4, Figure 5 for pool1…pool4. The result
carries the pictures (base64 PNG, ``thumb_size`` px) and each one's image-space error
(:data:`cnninv.inversion.IMAGE_ERROR_DEFINITION`);
:mod:`cnninv.report.inversion` draws the grids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cnninv._checks import check_positive_int, make_generator
from cnninv.analysis import next_layer
from cnninv.experiments._common import environment, progress_bar
from cnninv.experiments._inputs import held_out_rule, load_inputs_for
from cnninv.experiments._inversion import ROWS, InversionConfig, check_layers, decoders_for
from cnninv.inversion import (
    IMAGE_ERROR_DEFINITION,
    encode,
    image_metrics,
    png_base64,
    table4_reconstructions,
)

__all__ = ["Fig4Config", "Fig5Config", "run"]


@dataclass
class Fig4Config(InversionConfig):
    layers: str = "pool4"
    thumb_size: int = 160  # side of the stored pictures (px)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int(self.thumb_size, "thumb_size")


@dataclass
class Fig5Config(Fig4Config):
    layers: str = "pool1,pool2,pool3,pool4"


def run(config: Fig4Config, progress: bool = False, log=None) -> dict:
    """Figure 4 (``Fig4Config``) or Figure 5 (``Fig5Config``): the pictures and their errors."""
    started = time.perf_counter()
    name = "fig5" if isinstance(config, Fig5Config) else "fig4"
    inputs = load_inputs_for(config)
    net, x, names = inputs.net, inputs.images, inputs.names
    layers = config.layer_list()
    check_layers(net.model, layers)
    decoders, about = decoders_for(net, config, layers, progress=progress, log=log)
    size = config.thumb_size
    originals = [png_base64(x[i], net.convention, size) for i in range(x.shape[0])]
    out = {}
    for li, layer in enumerate(progress_bar(layers, enabled=progress, desc=name)):
        gen = make_generator(config.seed + 1000 * (li + 1), None, x.device)
        nxt = next_layer(net.model, layer, encode(net.model, x, layer).f, pool=config.pool)
        k, density = nxt.k, nxt.density
        pictures: dict[str, list[str]] = {row: [] for row in ROWS}
        errors: dict[str, list[float]] = {row: [] for row in ROWS}
        for s in range(0, x.shape[0], config.batch):
            xb = x[s : s + config.batch]
            imgs, _ = table4_reconstructions(
                net.model, xb, layer, decoders[layer], k=k, generator=gen, iters=config.iters,
                pool=config.pool, variant=config.variant,
                normalize_filters=config.normalize_filters,
            )  # fmt: skip
            for row, xh in imgs.items():
                errors[row] += image_metrics(xh, xb, net.convention)["relative_error"]
                pictures[row] += [png_base64(xh[i], net.convention, size) for i in range(len(xh))]
        out[layer] = {
            "pictures": pictures,
            "errors": errors,
            "k": k,
            "k_fraction": density,
            "decoder": about[layer],
        }
    return {
        "experiment": name,
        "model": net.name,
        "weights": net.weights,
        "images": names,
        "held_out_rule": held_out_rule(config.images),
        "rows": {"original": "(a) original image", **ROWS},
        "originals": originals,
        "layers": out,
        "error_definition": IMAGE_ERROR_DEFINITION,
        **environment(config, started),
    }
