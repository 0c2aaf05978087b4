"""The ``cnninv invert`` job: reconstruct photos from one layer's activations by one or
more methods of :func:`cnninv.inversion.invert`, and measure each reconstruction.

:func:`run` returns a JSON-ready result that carries the pictures (base64 PNG, the
reconstructions and the originals); :func:`cnninv.report.inversion.invert_files` renders
it into PNG files, grids and the JSON that the command writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from cnninv._checks import check_memory, resolve_device
from cnninv.data import read_photos
from cnninv.data.photos import file_sha256
from cnninv.experiments._common import environment
from cnninv.experiments._inputs import load_model_inputs, model_convention
from cnninv.inversion import (
    IMAGE_ERROR_DEFINITION,
    METHODS,
    TrainConfig,
    decoded_pools,
    get_decoder,
    image_metrics,
    invert,
    layer_index,
    load_decoder,
    png_base64,
)
from cnninv.inversion.any_decoder import AnyDecoderConfig
from cnninv.inversion.generic import GENERIC_METHODS, invert_any
from cnninv.inversion.shipping import shipped_decoder, shipped_for
from cnninv.metrics import relative_error
from cnninv.models import LoadedModel, LoadedNetwork, next_conv

__all__ = [
    "AnyConfig",
    "AnyTrainConfig",
    "Config",
    "any_decoder_for",
    "run",
    "run_any",
    "train_any",
    "unique_names",
]


@dataclass
class Config:
    """What ``cnninv invert`` was asked (recorded with the result)."""

    layer: str
    methods: tuple[str, ...]
    image_size: int = 224
    iters: int | None = None
    filters: str = "learned"
    decoder: str = ""  # a decoder file; "" = the shipped one, else the cached one (trained)
    cache: str = ""
    seed: int = 0
    device: str = "cpu"
    quick: bool = False

    def __post_init__(self) -> None:
        # VGG16's activations up to pool5 hold ~15 M floats per 224² image, every method
        # keeps a few copies (the optimisation: gradients too)
        check_memory(
            4 * 15e6 * (self.image_size / 224) ** 2 * 8,
            f"invert at --size {self.image_size}",
        )
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"methods must be among {', '.join(METHODS)}, got {self.methods}")


def unique_names(paths: Sequence[Path]) -> list[str]:
    """A label per photo for output file names: the stem, or the whole file name where
    two photos share a stem (``a.jpg`` and ``a.png``), so outputs never overwrite."""
    stems = [p.stem for p in paths]
    return [p.name if stems.count(p.stem) > 1 else p.stem for p in paths]


def _decoder(net: LoadedNetwork, config: Config, train: TrainConfig, progress: bool, log):
    """The decoder file given, else the shipped one (when it fits the network), else the
    cached one trained with ``train`` (trained if missing)."""
    source = "file"
    if config.decoder:
        dec, info = load_decoder(
            config.decoder, layer=config.layer, model=net.model, convention=net.convention,
            device=config.device,
        )  # fmt: skip
        path = Path(config.decoder)
    elif shipped_for(net, config.layer):
        dec, info, entry = shipped_decoder(net, config.layer, device=config.device)
        path, source = Path(entry["path"]), "shipped"
    else:
        dec, info, path = get_decoder(
            net, train, cache=config.cache or None, device=config.device, progress=progress,
            log=log,
        )  # fmt: skip
        source = "trained"
    about = {
        "source": source,
        "file": str(path),
        "sha256": file_sha256(path),
        "held_out_error": info.training.get("held_out_error"),
        "training_images": len(info.training.get("training_images", [])),
        "steps": info.training.get("steps"),
    }
    return dec, about


def run(
    net: LoadedNetwork,
    images: str | Path | Sequence[str | Path],
    config: Config,
    train: TrainConfig,
    *,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Invert ``images`` (a folder, a file, or files) at ``config.layer`` by every method
    of ``config.methods``; ``train`` is the decoder's training configuration when the
    decoder comes from the cache."""
    started = time.perf_counter()
    resolve_device(config.device)
    layer_index(net.model, config.layer)
    if any(m in ("decoder", "iht") for m in config.methods):
        if not config.layer.startswith("pool"):
            raise ValueError(
                f"methods decoder and iht start from a pooling layer (pool1…), not "
                f"{config.layer}; use optimize or deconvnet for {config.layer}"
            )
        decoded_pools(net.model, config.layer)
        if "iht" in config.methods:
            next_conv(net.model, config.layer)
    x, paths = read_photos(images, net.convention, size=config.image_size)
    names = unique_names(paths)
    x = x.to(next(net.model.parameters()).device)
    decoder, decoder_about = None, None
    if any(m in ("decoder", "iht") for m in config.methods):
        decoder, decoder_about = _decoder(net, config, train, progress, log)
    results, pictures = [], {}
    for method in config.methods:
        inv = invert(
            net, x, config.layer, method, decoder=decoder, iters=config.iters,
            filters=config.filters, seed=config.seed, progress=progress,
        )  # fmt: skip
        metrics = image_metrics(inv.x_hat, x, net.convention)
        for i, name in enumerate(names):
            pictures[(name, method)] = png_base64(inv.x_hat[i], net.convention)
            results.append(
                {
                    "image": name,
                    "method": method,
                    **{key: vals[i] for key, vals in metrics.items()},
                    "seconds": inv.seconds / len(names),
                    "info": {
                        k: (v[i] if isinstance(v, list) and len(v) == len(names) else v)
                        for k, v in inv.info.items()
                        if k != "feature_error_by_iter"
                    },
                }
            )
    return {
        "experiment": "invert",
        "layer": config.layer,
        "model": net.name,
        "weights": net.weights,
        "weights_source": net.source,
        "image_size": config.image_size,
        "images": names,
        "methods": list(config.methods),
        "filters": config.filters,
        "iters": config.iters,
        "decoder": decoder_about,
        "error_definition": "relative_error: " + IMAGE_ERROR_DEFINITION + "; "
        "rgb_relative_error: the same in RGB [0, 1]; psnr, ssim (scikit-image, data_range=1, "
        "channel_axis) on RGB [0, 1]; seconds: wall time per image",
        "results": results,
        "originals": {n: png_base64(x[i], net.convention) for i, n in enumerate(names)},
        "pictures": {f"{n}|{m}": p for (n, m), p in pictures.items()},
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        **environment(config, started),
    }


@dataclass
class AnyConfig:
    """``cnninv invert`` for any model (qualified layer names, the generic methods)."""

    layer: str
    methods: tuple[str, ...]
    inputs: str = ""
    size: str = ""
    channels: str = ""
    value_range: str = ""
    mean: str = ""
    std: str = ""
    max_inputs: int = 0
    iters: int | None = None
    filters: str = "learned"
    decoder: str = ""  # the decoder file of the "decoder" method (default: the cached one)
    cache: str = ""
    seed: int = 0
    device: str = "cpu"
    quick: bool = False

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in GENERIC_METHODS]
        if bad or not self.methods:
            raise ValueError(
                f"methods for this model must be among {', '.join(GENERIC_METHODS)}, got "
                f"{self.methods}"
            )


def any_decoder_for(loaded: LoadedModel, config: AnyConfig):
    """The decoder of ``config.layer`` for ``loaded`` (``config.decoder``, else the cached
    one) and its record; ``ValueError`` saying how to train one when there is none."""
    from cnninv.inversion.any_decoder import any_decoder_path, load_any_decoder
    from cnninv.inversion.training import cache_dir

    path = Path(config.decoder) if config.decoder else None
    if path is None:
        path = any_decoder_path(cache_dir(config.cache or None), loaded.model, config.layer)
        if not path.is_file():
            raise ValueError(
                f"no decoder trained for layer {config.layer!r} of this model (looked for "
                f"{path}): train one with cnninv train-decoder --model {loaded.spec} --layer "
                f"{config.layer} (same --inputs/--size/… as here), or pass --decoder FILE"
            )
    device = next(loaded.model.parameters()).device
    decoder, info = load_any_decoder(path, model=loaded.model, layer=config.layer, device=device)
    return decoder, {"path": str(path), **info}


def run_any(
    loaded: LoadedModel,
    config: AnyConfig,
    *,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Invert the inputs of ``loaded`` (photos, signals or an array, as ``cnninv analyze``
    reads them) at ``config.layer`` by every method of ``config.methods``
    (:func:`cnninv.inversion.generic.invert_any`). Photos carry their pictures."""
    started = time.perf_counter()
    inputs = load_model_inputs(loaded, config, log)
    x = inputs.x.to(next(loaded.model.parameters()).device)
    results, pictures, arrays = [], {}, {}
    conv = inputs.convention if inputs.kind == "image" else None
    decoder, decoder_record = None, None
    if "decoder" in config.methods:
        decoder, decoder_record = any_decoder_for(loaded, config)
    for method in config.methods:
        inv = invert_any(
            loaded.model, x, config.layer, method, convention=conv, iters=config.iters,
            filters=config.filters, seed=config.seed, progress=progress, decoder=decoder,
        )  # fmt: skip
        if conv is not None:
            metrics = image_metrics(inv.x_hat, x, conv)
        else:
            metrics = {"relative_error": relative_error(inv.x_hat, x).tolist()}
        for i, name in enumerate(inputs.names):
            if conv is not None:
                pictures[(name, method)] = png_base64(inv.x_hat[i], conv)
            else:
                arrays[(name, method)] = _npy_base64(inv.x_hat[i])
            results.append(
                {
                    "image": name,
                    "method": method,
                    **{key: vals[i] for key, vals in metrics.items()},
                    "seconds": inv.seconds / len(inputs.names),
                    "info": {
                        k: (v[i] if isinstance(v, list) and len(v) == len(inputs.names) else v)
                        for k, v in inv.info.items()
                    },
                }
            )
    originals = {}
    if conv is not None:
        originals = {n: png_base64(x[i], conv) for i, n in enumerate(inputs.names)}
    return {
        "experiment": "invert",
        "layer": config.layer,
        "model": loaded.spec,
        "weights": loaded.source,
        "weights_source": loaded.source,
        "provenance": loaded.provenance,
        "inputs_kind": inputs.kind,
        "inputs_source": inputs.description,
        "images": inputs.names,
        "methods": list(config.methods),
        "filters": config.filters,
        "iters": config.iters,
        "decoder": decoder_record,
        "error_definition": "relative_error: ||x_hat - x|| / ||x|| in the model's input space"
        + ("; rgb_relative_error, psnr, ssim on RGB [0, 1]" if conv is not None else ""),
        "results": results,
        "originals": originals,
        "pictures": {f"{n}|{m}": p for (n, m), p in pictures.items()},
        "arrays": {f"{n}|{m}": a for (n, m), a in arrays.items()},
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        **environment(config, started),
    }


def _npy_base64(t) -> str:
    """A reconstruction that is not a picture, as the base64 of its ``.npy`` file."""
    import base64
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, t.detach().float().cpu().numpy(), allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass
class AnyTrainConfig(AnyDecoderConfig):
    """``cnninv train-decoder --model SPEC`` for any model: where its training inputs come
    from (``inputs``: a folder of photos or WAV files or a ``.npy`` array, every eighth one
    kept for validation; none: the decoders' default photos of
    :func:`cnninv.data.photos.photo_split`, with ``images`` added, and the held-out photos
    measured), the input convention (as ``cnninv analyze``), and the training settings of
    :class:`cnninv.inversion.any_decoder.AnyDecoderConfig`."""

    inputs: str = ""
    images: str = ""
    only_images: bool = False
    size: str = ""
    channels: str = ""
    value_range: str = ""
    mean: str = ""
    std: str = ""
    max_inputs: int = 0
    steps: int = 1000


def _split_every_eighth(x):
    import torch

    if x.shape[0] < 2:
        raise ValueError(
            f"training a decoder needs at least 2 inputs (one kept for validation), got "
            f"{x.shape[0]}"
        )
    val = torch.arange(x.shape[0]) % 8 == 7
    if not bool(val.any()):
        val[-1] = True
    return x[~val], x[val]


def train_any(
    loaded: LoadedModel,
    layer: str,
    config: AnyTrainConfig,
    *,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
):
    """Train the decoder of ``layer`` (a qualified module name) of any model
    (:func:`cnninv.inversion.any_decoder.train_any_decoder`) on the inputs of ``config``.
    Returns the decoder and its training record (with the inputs' source and, on the
    default photos, the held-out photos' error)."""
    from cnninv.data.photos import photo_split
    from cnninv.inversion.any_decoder import train_any_decoder
    from cnninv.inversion.crops import readable_photos
    from cnninv.models import check_inputs

    model = loaded.model
    dev = next(model.parameters()).device
    held, held_names, flips = None, [], config.flips
    if config.inputs:
        inputs = load_model_inputs(loaded, config, log)
        x_train, x_val = _split_every_eighth(inputs.x)
        flips = flips and inputs.kind == "image"
        source = (
            f"{inputs.description}: {x_train.shape[0]} for training, {x_val.shape[0]} for "
            "validation"
        )
    else:
        if loaded.input_kind != "image":
            raise ValueError(
                f"the model takes {loaded.input_kind}s, not photos: give --inputs (a folder of "
                "WAV files, or a .npy array of the shape its forward takes)"
            )
        if loaded.input_shape is not None and len(loaded.input_shape) == 4:
            if loaded.input_shape[-1] == 3 and loaded.input_shape[1] != 3:
                raise ValueError(
                    "the model takes channels-last (NHWC) photos: give them as a .npy array "
                    "with --inputs"
                )
        convention = model_convention(loaded, config, log)
        split = photo_split(config.images or None, defaults=not config.only_images)
        x_train, _ = read_photos(readable_photos(split.train), convention)
        if split.validation:
            x_val, _ = read_photos(split.validation, convention)
        else:
            x_train, x_val = _split_every_eighth(x_train)
        held, held_paths = read_photos(split.held_out, convention)
        held_names = [p.stem for p in held_paths]
        source = (
            f"the decoders' photos: {x_train.shape[0]} for training, {x_val.shape[0]} for "
            f"validation, {held.shape[0]} held out ("
            + ", ".join(f"{k} {v}" for k, v in split.sources.items())
            + ")"
        )
    check_inputs(model, x_train[:1].to(dev), input_shape=loaded.input_shape)
    settings = AnyDecoderConfig(
        **{f.name: getattr(config, f.name) for f in fields(AnyDecoderConfig)}
    )
    settings.flips = flips
    if log is not None:
        log(f"[cnninv] decoder {layer}: {source}; {settings.steps} steps of {settings.batch}")
    decoder, record = train_any_decoder(
        model, layer, x_train.to(dev), x_val.to(dev), settings, progress=progress, log=log
    )
    record["inputs_source"] = source
    if held is not None:
        import torch

        from cnninv.inversion.generic import activation

        feats = activation(model, layer)
        errs = []
        with torch.no_grad():
            for s in range(0, held.shape[0], settings.batch):
                xb = held[s : s + settings.batch].to(dev)
                errs += relative_error(decoder(feats(xb)), xb).tolist()
        record["held_out_error"] = sum(errs) / len(errs)
        record["held_out_inputs"] = held_names
    return decoder, record
