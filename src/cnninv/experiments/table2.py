"""Tables 2 and 7: the percentage of non-zero activations after each convolution's ReLU
and after each pooling layer, averaged over real photos; Gaussian random filters of the
same shapes beside (they see the same photos)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from cnninv.analysis import activation_sparsity
from cnninv.experiments import paper
from cnninv.experiments._common import check_config, environment
from cnninv.experiments._inputs import load_inputs_for
from cnninv.models import load_network, qualified_name, sparsity_layers

__all__ = ["AlexNetConfig", "Config", "run"]


@dataclass
class Config:
    model: str = "vgg16"
    weights: str = "imagenet"
    images: str = "default"
    max_images: int = 0
    image_size: int = 224
    batch_size: int = 4
    compare_random: bool = True
    seed: int = 0
    device: str = "cpu"
    quick: bool = False

    def __post_init__(self) -> None:
        check_config(self, ("image_size", "batch_size"))
        if self.max_images < 0:
            raise ValueError(f"max_images must be >= 0 (0: all), got {self.max_images}")


@dataclass
class AlexNetConfig(Config):
    """No learned AlexNet weights exist offline: random by default, a file by choice."""

    model: str = "alexnet"
    weights: str = "random"


def run(config: Config, progress: bool = False) -> dict:
    started = time.perf_counter()
    inputs = load_inputs_for(config)
    net = inputs.net
    pairs = sparsity_layers(net.model)
    layers = [(label, qualified_name(net.model, layer)) for label, layer in pairs]
    ours = activation_sparsity(net.model, inputs.images, layers, batch_size=config.batch_size)
    random = None
    if config.compare_random and net.weights != "random":
        rnet = load_network(
            net.name, "random", seed=config.seed, device=inputs.images.device, features_only=True
        )
        random = activation_sparsity(
            rnet.model, inputs.images, layers, batch_size=config.batch_size
        )
    published = paper.TABLE2_VGG16 if net.name == "vgg16" else paper.TABLE7_ALEXNET
    learned = net.weights != "random"
    return {
        "experiment": "table2" if net.name == "vgg16" else "table7",
        "model": net.name,
        "weights": net.weights,
        "weights_source": net.source,
        "images": inputs.names,
        "layers": {
            label: {
                "nonzero_percent": ours[label],
                "random_nonzero_percent": None if random is None else random[label],
                "paper": published.get(label),
            }
            for label, _ in pairs
        },
        "comparable_to_paper": learned,
        "paper_note": "paper: learned filters, ILSVRC 2012 validation set (50,000 images); ours: "
        f"{len(inputs.names)} photos"
        + (
            ""
            if learned
            else "; OUR FILTERS ARE RANDOM (no learned weights given), so the "
            "numbers are not comparable with the paper's"
        ),
        **environment(config, started),
    }
