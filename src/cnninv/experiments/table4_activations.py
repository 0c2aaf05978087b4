r"""Table 4, activation space (§4.5): for pool1…pool4 of VGG16, reconstruct each photo's
pooled activation :math:`f` through the next convolution by IHT,
:math:`\hat f=\mathbf W^T\mathbb M(\mathbf Wf,k)`, with (a) the learned filters of
conv(i+1)_1, (b) Gaussian filters of the same size, and compare with (c) Gaussian random
activations; every estimate is rescaled to :math:`\|f\|` as in the paper, and the error is
:math:`\|f-\hat f\|/\|f\|` averaged over the photos. ``k`` matches the density measured
on the same photos at conv(i+1)_1's ReLU (Table 2's quantity). Beyond the paper: the
same with more IHT iterations (normalised IHT, whose step adapts to the filters' scale).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from cnninv._checks import make_generator
from cnninv.analysis import next_layer, reconstruct_activation_iters
from cnninv.experiments import paper
from cnninv.experiments._common import check_config, environment, progress_bar
from cnninv.experiments._inputs import load_inputs_for
from cnninv.inversion import random_activation
from cnninv.metrics import relative_error
from cnninv.models import capture, pool_conv_pairs, qualified_name

__all__ = ["Config", "run"]


@dataclass
class Config:
    model: str = "vgg16"
    weights: str = "imagenet"
    layers: str = ""  # comma-separated pooling layers; "" = every pool followed by a conv
    iters: str = "1,5,20"  # IHT iterations to report; 1 is the paper's
    pool: int = 2
    variant: str = "abs"
    normalize_filters: bool = True
    images: str = "default"
    max_images: int = 8  # 0: all; each photo costs about a minute on 2 CPU cores
    batch: int = 4
    seed: int = 0
    device: str = "cpu"
    quick: bool = False

    def __post_init__(self) -> None:
        check_config(self, ("pool", "batch"))
        its = self.iteration_list()
        if not its or any(i < 1 for i in its):
            raise ValueError(f"iters must be positive integers, got {self.iters!r}")
        if self.variant not in ("abs", "relu"):
            raise ValueError(f"variant must be 'abs' or 'relu', got {self.variant!r}")

    def iteration_list(self) -> list[int]:
        try:
            return sorted({int(v) for v in str(self.iters).split(",") if v.strip()})
        except ValueError:
            raise ValueError(
                f"iters must be comma-separated integers, got {self.iters!r}"
            ) from None


def run(config: Config, progress: bool = False) -> dict:
    started = time.perf_counter()
    inputs = load_inputs_for(config)
    net, dev, x = inputs.net, inputs.images.device, inputs.images
    pairs = pool_conv_pairs(net.model)
    if config.layers:
        wanted = [s.strip() for s in config.layers.split(",") if s.strip()]
        known = dict(pairs)
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise ValueError(f"layers {unknown} are not pooling layers followed by a conv")
        pairs = [(w, known[w]) for w in wanted]
    gen = make_generator(config.seed, None, dev)
    iters = config.iteration_list()
    published = paper.TABLE4_ACTIVATION if net.name == "vgg16" else {}
    results = {}
    # every pooling layer's activations from one pass through the network
    names = {pool_name: qualified_name(net.model, pool_name) for pool_name, _ in pairs}
    acts = capture(net.model, x, list(names.values()), batch_size=config.batch)
    for pool_name, conv_name in progress_bar(pairs, enabled=progress, desc="table4"):
        f = acts.pop(names[pool_name])
        nxt = next_layer(
            net.model, pool_name, f, unit_norm=config.normalize_filters, pool=config.pool,
            batch_size=config.batch,
        )  # fmt: skip
        W, Wr, k, density = nxt.W, nxt.operator("random", gen), nxt.k, nxt.density
        errs: dict[str, dict[int, list[torch.Tensor]]] = {"learned": {}, "random": {}}
        rand_errs = []
        for s in range(0, f.shape[0], config.batch):
            fb = f[s : s + config.batch]
            for name, op in (("learned", W), ("random", Wr)):
                recon = reconstruct_activation_iters(
                    op, fb, k, iters, pool=config.pool, variant=config.variant
                )
                for it, (_, e) in recon.items():
                    errs[name].setdefault(it, []).append(e.cpu())
            noise = random_activation(fb, gen)
            rand_errs.append(relative_error(noise, fb).cpu())
        mean = {n: {it: float(torch.cat(v).mean()) for it, v in d.items()} for n, d in errs.items()}
        p = published.get(pool_name, (None, None, None))
        results[pool_name] = {
            "next_conv": conv_name,
            "learned": mean["learned"][iters[0]],
            "random": mean["random"][iters[0]],
            "random_activations": float(torch.cat(rand_errs).mean()),
            "paper_learned": p[0],
            "paper_random": p[1],
            "paper_random_activations": p[2],
            "learned_by_iters": {str(it): v for it, v in mean["learned"].items()},
            "random_by_iters": {str(it): v for it, v in mean["random"].items()},
            "k": k,
            "k_fraction": density,
            "activation_shape": list(f.shape[1:]),
        }
    return {
        "experiment": "table4-activations",
        "model": net.name,
        "weights": net.weights,
        "weights_source": net.source,
        "images": inputs.names,
        "iters": iters,
        "layers": results,
        "method": "f_hat = W^T M(W f, k) (1 iteration; more: normalised IHT), rescaled to ||f||; "
        "error ||f - f_hat|| / ||f|| averaged over photos; "
        f"filters {'normalised to unit norm' if config.normalize_filters else 'as learned'}; "
        f"{config.pool}x{config.pool} pooling blocks, variant {config.variant!r}",
        **environment(config, started),
    }
