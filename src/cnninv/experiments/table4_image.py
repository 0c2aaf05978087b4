r"""Table 4, image space (§4.5): for pool1…pool4 of VGG16, the image-space relative error
of the what-where decoder applied to

(a) the original pooled activation :math:`f`,
(b) :math:`\hat f = \mathbf W^T\mathbb M(\mathbf Wf, k)` with the learned filters of
    conv(i+1)_1 (unit norm),
(c) the same with Gaussian filters of the same size,
(d) Gaussian random activations,

every activation rescaled to :math:`\|f\|` and decoded with the encoder's switches of the
photo (the "where"), on the held-out photos (never seen by the decoders). ``k`` matches
the density measured at relu(i+1)_1 on the same photos, as in the activation-space half.
These four rows are the paper's protocol.

Beyond the paper, labelled as such:

* variant rows (``variants``; :data:`cnninv.inversion.VARIANTS`): (b)–(d) projected onto
  :math:`a \ge 0` (the decoder was only ever shown non-negative activations; the IHT
  reconstructions are about half negative) and rescaled to :math:`\|f\|`;
* what each activation looks like to the decoder (:func:`cnninv.inversion.activation_stats`:
  negative share, cosine with :math:`f`, cosine of the per-channel means, high-frequency
  ratio);
* a decoder-free column (``optimize``): each activation of (a)–(d) inverted by the
  optimisation of Mahendran & Vedaldi (match it instead of :math:`f`, same priors), on the
  first ``optimize_images`` photos at ``optimize_size`` px;
* the paper's ordering checked at every layer, for both columns: decoder on :math:`f` ≤
  IHT (learned) ≤ random activations.

Error (:data:`cnninv.inversion.IMAGE_ERROR_DEFINITION`): :math:`\|\hat x - x\|/\|x\|`
with :math:`x` the photo and :math:`\hat x` the reconstruction, both in the network's
input space (VGG16: BGR, 0–255, the Caffe mean subtracted), per photo, then averaged.
The same in RGB [0, 1] (output clipped), PSNR and SSIM are reported beside it.

The paper's decoders (Caffe, trained on ImageNet by Zhang et al. 2016) cannot be had; by
default the decoders are those shipped with cnninv (:mod:`cnninv.inversion.shipping`),
trained on the offline photos, so row (a) is expected to differ from the paper's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

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
    optimize_inputs,
    optimize_record,
)
from cnninv.inversion import (
    IMAGE_ERROR_DEFINITION,
    VARIANTS,
    activation_stats,
    encode,
    image_metrics,
    table4_activations,
)
from cnninv.inversion.methods import decode, optimize_image

__all__ = ["VARIANT_ROWS", "Config", "run"]

#: The variant rows (beyond the paper), in order, with their labels.
VARIANT_ROWS = dict(
    zip(
        VARIANTS,
        (
            "(c+) IHT learned, projected onto f ≥ 0",
            "(d+) IHT random, projected onto f ≥ 0",
            "(e+) |random activations|",
        ),
        strict=True,
    )
)


@dataclass
class Config(InversionConfig):
    """Table 4 (image space): the shared settings of the inversion experiments, the variant
    rows and the optimisation column."""

    variants: bool = True
    optimize: bool = True
    # the optimisation column costs minutes per photo and layer on a CPU at 224 px
    optimize_images: int = 2
    optimize_size: int = 112


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _ordering(v: dict, suffix: str = "") -> dict:
    """The paper's ordering at one layer: decoder on f ≤ IHT learned ≤ random activations
    (``suffix`` ``"_optimize"``: the optimisation column)."""
    a, b, c = (v[f"{r}{suffix}"] for r in ("original_activation", "iht_learned",
                                            "random_activations"))  # fmt: skip
    return {
        "original_le_iht_learned": a <= b,
        "iht_learned_le_random_activations": b <= c,
        "iht_random_le_random_activations": v[f"iht_random{suffix}"] <= c,
        "holds": a <= b <= c,
    }


def run(config: Config, progress: bool = False, log=None) -> dict:
    """Run Table 4 (image space); returns the errors per layer and row, the paper's beside."""
    started = time.perf_counter()
    inputs = load_inputs_for(config)
    net, x, names = inputs.net, inputs.images, inputs.names
    layers = config.layer_list()
    check_layers(net.model, layers)
    decoders, about = decoders_for(net, config, layers, progress=progress, log=log)
    published = paper.TABLE4_IMAGE if net.name == "vgg16" else {}
    x_opt, opt_names = optimize_inputs(config, net, x, names)
    rows = {**ROWS, **(VARIANT_ROWS if config.variants else {})}
    results = {}
    for li, layer in enumerate(progress_bar(layers, enabled=progress, desc="table4-image")):
        gen = make_generator(config.seed + 1000 * (li + 1), None, x.device)
        nxt = next_layer(net.model, layer, encode(net.model, x, layer).f, pool=config.pool)
        k, density = nxt.k, nxt.density
        metrics: dict[str, dict[str, list[float]]] = {r: {} for r in rows}
        act_errors: dict[str, list[float]] = {r: [] for r in rows if r != "original_activation"}
        stats: dict[str, dict[str, list[float]]] = {r: {} for r in rows}
        for s in range(0, x.shape[0], config.batch):
            xb = x[s : s + config.batch]
            enc = encode(net.model, xb, layer)
            acts, aerr = table4_activations(
                net.model, enc, layer, k=k, generator=gen, iters=config.iters,
                pool=config.pool, variant=config.variant,
                normalize_filters=config.normalize_filters, variants=config.variants,
            )  # fmt: skip
            for row, a in acts.items():
                xh = decode(decoders[layer], enc, a)
                for key, vals in image_metrics(xh, xb, net.convention).items():
                    metrics[row].setdefault(key, []).extend(vals)
                for key, vals in activation_stats(a, enc.f).items():
                    stats[row].setdefault(key, []).extend(vals)
            for row, vals in aerr.items():
                act_errors[row].extend(vals)
        p = published.get(layer, (None, None, None))
        results[layer] = {
            **{row: _mean(metrics[row]["relative_error"]) for row in rows},
            "paper_learned": p[0],
            "paper_random": p[1],
            "paper_random_activations": p[2],
            "metrics": {row: {key: _mean(v) for key, v in m.items()} for row, m in metrics.items()},
            "per_image": {row: metrics[row]["relative_error"] for row in rows},
            "activation_errors": {row: _mean(v) for row, v in act_errors.items()},
            "activation_stats": {
                row: {key: _mean(v) for key, v in st.items()} for row, st in stats.items()
            },
            "next_conv": nxt.conv_name,
            "k": k,
            "k_fraction": density,
            "decoder": about[layer],
        }
        results[layer]["ordering"] = _ordering(results[layer])
        if config.optimize:
            results[layer].update(_optimize_column(config, net, x_opt, layer, li))
            results[layer]["ordering_optimize"] = _ordering(results[layer], "_optimize")
    return {
        "experiment": "table4-image",
        "model": net.name,
        "weights": net.weights,
        "weights_source": net.source,
        "images": names,
        "held_out_rule": held_out_rule(config.images),
        "rows": ROWS,
        "variant_rows": VARIANT_ROWS if config.variants else {},
        "layers": results,
        "error_definition": IMAGE_ERROR_DEFINITION,
        "method": "decoder(f_hat, switches of the photo); f_hat = W^T M(W f, k) with conv(i+1)_1 "
        f"({'unit-norm ' if config.normalize_filters else ''}learned or Gaussian filters), "
        f"{config.iters} IHT iteration(s), {config.pool}x{config.pool} blocks, variant "
        f"{config.variant!r}, rescaled to ||f||; random activations: Gaussian rescaled to ||f||",
        "optimize": optimize_record(
            config,
            x_opt,
            opt_names,
            method="Mahendran & Vedaldi: Adam on the image, alpha-norm and TV priors, "
            "matching each row's activation (computed on these photos at this size, k from "
            "their own density) instead of f",
        )
        if config.optimize
        else None,
        **environment(config, started),
    }


def _optimize_column(config: Config, net, x: torch.Tensor, layer: str, li: int) -> dict:
    """The decoder-free column: each paper row's activation inverted by the optimisation
    (on the photos ``x`` of :func:`optimize_inputs`)."""
    gen = make_generator(config.seed + 1000 * (li + 1), None, x.device)
    opt_gen = make_generator(config.seed + 7 + li, None, x.device)
    enc = encode(net.model, x, layer)
    k = next_layer(net.model, layer, enc.f, pool=config.pool).k
    acts, _ = table4_activations(
        net.model, enc, layer, k=k, generator=gen, iters=config.iters, pool=config.pool,
        variant=config.variant, normalize_filters=config.normalize_filters,
    )  # fmt: skip
    out: dict = {"optimize_metrics": {}, "optimize_per_image": {}}
    for row in ROWS:
        xh, _ = optimize_image(
            net.model, acts[row], layer, net.convention, tuple(x.shape),
            options=config.optimize_options(), generator=opt_gen,
        )  # fmt: skip
        m = image_metrics(xh, x, net.convention)
        out[f"{row}_optimize"] = _mean(m["relative_error"])
        out["optimize_metrics"][row] = {key: _mean(v) for key, v in m.items()}
        out["optimize_per_image"][row] = m["relative_error"]
    return out
