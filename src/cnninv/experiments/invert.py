"""The ``cnninv invert`` job: reconstruct photos from one layer's activations by one or
more methods of :func:`cnninv.inversion.invert`, and measure each reconstruction.

:func:`run` returns a JSON-ready result that carries the pictures (base64 PNG, the
reconstructions and the originals); :func:`cnninv.report.inversion.invert_files` renders
it into PNG files, grids and the JSON that the command writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnninv._checks import resolve_device
from cnninv.data import read_photos
from cnninv.data.photos import file_sha256
from cnninv.experiments._common import environment
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
from cnninv.inversion.shipping import shipped_decoder, shipped_for
from cnninv.models import LoadedNetwork, next_conv

__all__ = ["Config", "run", "unique_names"]


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
