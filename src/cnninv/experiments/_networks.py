"""Loading a network and its photos for an experiment, from the config's plain strings."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnninv._checks import resolve_device
from cnninv.data import default_images, load_images
from cnninv.networks import LoadedNetwork, load_network

__all__ = ["NetworkInputs", "load_inputs", "load_inputs_for", "weights_arg"]


@dataclass
class NetworkInputs:
    net: LoadedNetwork
    images: torch.Tensor
    names: list[str]


def weights_arg(weights: str | None) -> str | None:
    """Config strings to :func:`load_network`'s argument ("" or "file" mean the model path)."""
    return None if weights in (None, "", "file") else weights


def load_inputs(
    model: str,
    weights: str | None,
    images: str,
    max_images: int,
    *,
    seed: int,
    device: str,
    image_size: int | None = None,
) -> NetworkInputs:
    """The network (learned, random or from a file) in eval mode on ``device``, and the
    photos (``"default"``: the 20 ImageNet photos of foolbox) preprocessed for it."""
    dev = resolve_device(device)
    net = load_network(model, weights_arg(weights), seed=seed, device=dev, features_only=True)
    paths = default_images() if images in ("default", "", None) else images
    if max_images and isinstance(paths, list):
        paths = paths[:max_images]
    x, names = load_images(paths, net.convention, size=image_size)
    if max_images:
        x, names = x[:max_images], names[:max_images]
    return NetworkInputs(net, x.to(dev), names)


def load_inputs_for(config) -> NetworkInputs:
    """:func:`load_inputs` from an experiment config's ``model``, ``weights``, ``images``,
    ``max_images``, ``seed``, ``device`` (and ``image_size`` when it has one)."""
    return load_inputs(
        config.model,
        config.weights,
        config.images,
        config.max_images,
        seed=config.seed,
        device=config.device,
        image_size=getattr(config, "image_size", None),
    )
