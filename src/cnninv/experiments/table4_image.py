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

Error (:data:`cnninv.inversion.IMAGE_ERROR_DEFINITION`): :math:`\|\hat x - x\|/\|x\|`
with :math:`x` the photo and :math:`\hat x` the decoder's output, both in the network's
input space (VGG16: BGR, 0–255, the Caffe mean subtracted; the space the decoders work in
and Caffe's decoders worked in), per photo, then averaged. The same in RGB [0, 1] (output
clipped), PSNR and SSIM are reported beside it.

The paper's decoders (Caffe, trained on ImageNet by Zhang et al. 2016) cannot be had; ours
are trained here on a few dozen offline photos (:mod:`cnninv.inversion.training`), so
row (a), and with it every row, is expected to be worse than the paper's; the paper's
comparison is between the rows.

The four reconstructions are :func:`cnninv.inversion.table4_reconstructions`; this
module's :class:`Config` (photos, IHT settings, the decoders' training) is shared by
:mod:`cnninv.experiments.inversion_figs` and :mod:`cnninv.experiments.inversion_baselines`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cnninv._checks import make_generator
from cnninv.analysis import next_layer
from cnninv.experiments import paper
from cnninv.experiments._common import environment, progress_bar
from cnninv.experiments._inputs import held_out_rule, load_inputs_for
from cnninv.experiments._inversion import (
    ROWS,
    InversionConfig,
    check_layers,
    decoders_for,
)
from cnninv.inversion import (
    IMAGE_ERROR_DEFINITION,
    encode,
    image_metrics,
    table4_reconstructions,
)

__all__ = ["Config", "run"]


@dataclass
class Config(InversionConfig):
    """Table 4 (image space): the shared settings of the inversion experiments."""


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def run(config: Config, progress: bool = False, log=None) -> dict:
    """Run Table 4 (image space); returns the errors per layer and row, the paper's beside."""
    started = time.perf_counter()
    inputs = load_inputs_for(config)
    net, x, names = inputs.net, inputs.images, inputs.names
    layers = config.layer_list()
    check_layers(net.model, layers)
    decoders, about = decoders_for(net, config, layers, progress=progress, log=log)
    published = paper.TABLE4_IMAGE if net.name == "vgg16" else {}
    results = {}
    for li, layer in enumerate(progress_bar(layers, enabled=progress, desc="table4-image")):
        gen = make_generator(config.seed + 1000 * (li + 1), None, x.device)
        nxt = next_layer(net.model, layer, encode(net.model, x, layer).f, pool=config.pool)
        k, density = nxt.k, nxt.density
        metrics: dict[str, dict[str, list[float]]] = {r: {} for r in ROWS}
        act_errors: dict[str, list[float]] = {r: [] for r in ROWS if r != "original_activation"}
        for s in range(0, x.shape[0], config.batch):
            xb = x[s : s + config.batch]
            imgs, aerr = table4_reconstructions(
                net.model, xb, layer, decoders[layer], k=k, generator=gen, iters=config.iters,
                pool=config.pool, variant=config.variant,
                normalize_filters=config.normalize_filters,
            )  # fmt: skip
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
            "next_conv": nxt.conv_name,
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
        "held_out_rule": held_out_rule(config.images),
        "rows": ROWS,
        "layers": results,
        "error_definition": IMAGE_ERROR_DEFINITION,
        "method": "decoder(f_hat, switches of the photo); f_hat = W^T M(W f, k) with conv(i+1)_1 "
        f"({'unit-norm ' if config.normalize_filters else ''}learned or Gaussian filters), "
        f"{config.iters} IHT iteration(s), {config.pool}x{config.pool} blocks, variant "
        f"{config.variant!r}, rescaled to ||f||; random activations: Gaussian rescaled to ||f||",
        **environment(config, started),
    }
