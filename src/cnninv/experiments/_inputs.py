"""Loading a network and its photos for an experiment, from the config's plain strings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnninv._checks import resolve_device
from cnninv.data import (
    TORCHVISION_RGB,
    InputConvention,
    convention_from_options,
    default_images,
    inputs_kind,
    load_array,
    load_images,
    load_signals,
    read_photos,
)
from cnninv.data.photos import HELD_OUT_RULE, held_out_photos
from cnninv.models import LoadedModel, LoadedNetwork, check_inputs, load_network, signal_layout

__all__ = [
    "Inputs",
    "NetworkInputs",
    "held_out_rule",
    "load_inputs",
    "load_inputs_for",
    "load_model_inputs",
    "load_network_for",
]


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


@dataclass
class Inputs:
    """The batch the model takes, what it was made from, and how."""

    x: torch.Tensor
    names: list[str]
    kind: str
    description: str
    convention: InputConvention | None = None


def model_convention(loaded: LoadedModel, config, log=None) -> InputConvention:
    """The convention photos are prepared with for ``loaded``: ``config``'s ``size``,
    ``channels``, ``value_range``, ``mean``, ``std`` over the model's own (or torchvision's,
    said on ``log``)."""
    return _convention(loaded, config, log)


def _convention(loaded: LoadedModel, config, log) -> InputConvention:
    given = any((config.size, config.channels, config.value_range, config.mean, config.std))
    base = loaded.convention
    if base is None and not given and log is not None:
        log(
            "cnninv: warning: the model's input convention is unknown and none was given: "
            "images are prepared as torchvision's (RGB, [0, 1], ImageNet mean and std, 224 "
            "px); say --channels, --range, --mean, --std, --size if the model wants another"
        )
    return convention_from_options(
        config.size or None,
        config.channels or None,
        config.value_range or None,
        config.mean or None,
        config.std or None,
        base=base if base is not None else TORCHVISION_RGB,
    )


def load_model_inputs(loaded: LoadedModel, config, log=None) -> Inputs:
    """The inputs of ``cnninv analyze`` / ``invert`` for any model: ``config.inputs`` a
    folder of images, a folder of WAV files or a ``.npy`` array (default: the 20 ImageNet
    photos, for an image model), shaped as the model's forward takes them; images
    prepared with the convention of ``config``'s ``size``, ``channels``, ``value_range``,
    ``mean``, ``std`` over the model's own (or torchvision's, said on ``log``);
    ``config.max_inputs`` (0: all) of them.

    Raises
    ------
    ValueError
        A 1-d model without ``--inputs``; unreadable inputs; inputs the model cannot take
        (the message says what it wants).
    """
    model = loaded.model
    path = config.inputs
    if not path:
        if loaded.input_kind != "image":
            raise ValueError(
                f"the model takes {loaded.input_kind}s, not photos: give --inputs (a folder "
                "of WAV files, or a .npy array of the shape its forward takes)"
            )
        kind = "image"
        source: Any = default_images()
        description = "the 20 ImageNet photos of foolbox"
    else:
        kind = inputs_kind(path)
        source = path
        description = str(Path(path))
    if kind == "image":
        convention = _convention(loaded, config, log)
        if config.max_inputs and isinstance(source, list):
            source = source[: config.max_inputs]
        x, paths = read_photos(source, convention)
        names = [p.stem for p in paths]
        if loaded.input_shape is not None and len(loaded.input_shape) == 4:
            if loaded.input_shape[-1] == 3 and loaded.input_shape[1] != 3:
                x = x.permute(0, 2, 3, 1).contiguous()  # a channels-last (NHWC) graph
                description += " (NHWC, as the model declares)"
        out = Inputs(x, names, kind, description, convention)
    elif kind == "signal":
        signals = load_signals(path)
        layout = signal_layout(model, signals.x)
        x = layout.apply(signals.x)
        description += f" ({signals.sample_rate} Hz, {signals.x.shape[1]} samples, as {layout})"
        out = Inputs(x, list(signals.names), kind, description)
    else:
        x = load_array(path)
        out = Inputs(x.float(), [f"{i}" for i in range(x.shape[0])], kind, description)
    if config.max_inputs:
        out.x, out.names = out.x[: config.max_inputs], out.names[: config.max_inputs]
    check_inputs(model, out.x, input_shape=loaded.input_shape)
    return out
