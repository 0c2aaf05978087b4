"""Loading a network and its photos for an experiment, from the config's plain strings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from cnninv._checks import resolve_device
from cnninv.data import default_images, load_images
from cnninv.data.photos import HELD_OUT_RULE, held_out_photos
from cnninv.models import LoadedNetwork, load_network

__all__ = ["NetworkInputs", "held_out_rule", "load_inputs", "load_inputs_for", "load_network_for"]


@dataclass
class NetworkInputs:
    net: LoadedNetwork
    images: torch.Tensor
    names: list[str]


def _weights(weights: str | None) -> str | None:
    """Config strings to :func:`load_network`'s argument ("" or "file": the model is a file)."""
    return None if weights in (None, "", "file") else weights


def _photos(images: str | None) -> list[Path] | str:
    """``"default"``: the 20 ImageNet photos; ``"held-out"``: the 5 never trained on;
    else a folder or file."""
    if images in ("default", "", None):
        return default_images()
    if images == "held-out":
        return held_out_photos()
    return images


def held_out_rule(images: str | None) -> str | None:
    """The held-out rule when ``images`` are the held-out photos, else None."""
    return HELD_OUT_RULE if images == "held-out" else None


def load_network_for(config) -> LoadedNetwork:
    """The network of an experiment config (``model``, ``weights``, ``seed``, ``device``),
    convolutions only, in eval mode."""
    dev = resolve_device(config.device)
    return load_network(
        config.model, _weights(config.weights), seed=config.seed, device=dev, features_only=True
    )


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
    photos (see :func:`_photos`) preprocessed for it, at most ``max_images`` (0: all)."""
    dev = resolve_device(device)
    net = load_network(model, _weights(weights), seed=seed, device=dev, features_only=True)
    paths = _photos(images)
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
