"""Tables 3 and 6: the coherence of every convolution's learned filters beside Gaussian
random filters of the same size, without shifts and over all relative shifts."""

from __future__ import annotations

import time
from dataclasses import dataclass

from cnninv.analysis import filter_coherence
from cnninv.experiments import paper
from cnninv.experiments._common import check_config, environment, progress_bar
from cnninv.experiments._inputs import load_network_for
from cnninv.models import conv_layer, conv_layer_names

__all__ = ["AlexNetConfig", "Config", "run"]


@dataclass
class Config:
    model: str = "vgg16"
    weights: str = "imagenet"
    seed: int = 0
    device: str = "cpu"
    quick: bool = False

    def __post_init__(self) -> None:
        check_config(self)


@dataclass
class AlexNetConfig(Config):
    model: str = "alexnet"
    weights: str = "random"


def run(config: Config, progress: bool = False) -> dict:
    started = time.perf_counter()
    net = load_network_for(config)
    learned = net.weights != "random"
    published = paper.TABLE3_VGG16 if net.name == "vgg16" else paper.TABLE6_ALEXNET
    layers = {}
    names = conv_layer_names(net.model)
    for i, name in enumerate(progress_bar(names, enabled=progress, desc="coherence")):
        conv = conv_layer(net.model, name)
        c = filter_coherence(conv.weight, stride=conv.stride[0], seed=config.seed + i)
        if not learned:
            c["learned_noshift"] = c["learned_shift"] = None
        p_learned, p_random = published.get(name, (None, None))
        layers[name] = {
            **c,
            "paper_learned": p_learned,
            "paper_random": p_random,
            "filter_shape": list(conv.weight.shape),
            "stride": conv.stride[0],
        }
    return {
        "experiment": "table3" if net.name == "vgg16" else "table6",
        "model": net.name,
        "weights": net.weights,
        "weights_source": net.source,
        "definition": "max |<w_i, w_j>| over distinct filters normalised to unit norm over "
        "channels and taps (noshift); over all relative shifts that are multiples of the "
        "stride, partial overlaps included, i.e. the coherence of the rows of W (shift)",
        "layers": layers,
        "learned_available": learned,
        **environment(config, started),
    }
