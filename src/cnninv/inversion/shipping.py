r"""The decoders shipped with cnninv: VGG16 (ImageNet weights) pool1 … pool4, trained by
``cnninv train-decoder --preset shipped`` and kept as package data in
``cnninv/inversion/shipped/`` (float16 safetensors and a ``manifest.json``).

The manifest records, for each layer, the file, its SHA-256, its size, the command that
trained it and a summary of its training record (photos, steps, validation and held-out
errors). :func:`shipped_decoder` reads a decoder only if the file's SHA-256 is the
recorded one (otherwise a ``ValueError`` says how to retrain it) and, as every decoder
file, only for the encoder it was trained on (:func:`~cnninv.inversion.decoder.load_decoder`).
:func:`shipped_for` says whether a network has shipped decoders at all (the encoder's
fingerprint up to the layer must be the recorded one), so that networks with other
weights (random filters, a user's file) train their own.

:data:`SHIPPED_PRESET` is the training configuration of each shipped decoder; the command
that retrains them all (hours on 2 CPU cores, minutes on a GPU) is :data:`RETRAIN_COMMAND`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from cnninv.data.photos import file_sha256
from cnninv.inversion.decoder import Decoder, DecoderInfo, encoder_fingerprint, load_decoder
from cnninv.io import atomic_write_json

__all__ = [
    "MANIFEST",
    "RETRAIN_COMMAND",
    "SHIPPED_LAYERS",
    "SHIPPED_PRESET",
    "add_to_manifest",
    "read_manifest",
    "retrain_command",
    "shipped_decoder",
    "shipped_dir",
    "shipped_for",
]

#: The file that lists the shipped decoders.
MANIFEST = "manifest.json"

#: The layers with a shipped decoder.
SHIPPED_LAYERS = ("pool1", "pool2", "pool3", "pool4")

#: The training configuration of the shipped decoders (``TrainConfig`` fields per layer),
#: chosen by the validation error (docs/decoders.md): 12 epochs of 500 steps at pool1 and
#: pool2, of 250 at pool3 and pool4 (whose steps cost 3–6 times more on the CPU they were
#: trained on); learning rate 3e-3, but 1e-3 at pool3 and pool4, where 3e-3 left the
#: deeper decoders dead (their ReLUs all off) within the first steps.
SHIPPED_PRESET: dict[str, dict[str, Any]] = {
    layer: {
        "crop": 64,
        "width": 32,
        "convs": 3,
        "epochs": 12,
        "steps_per_epoch": 500 if layer in ("pool1", "pool2") else 250,
        "batch": 8,
        "lr": 3e-3 if layer in ("pool1", "pool2") else 1e-3,
        "scales": "224",
        "flip": True,
        "encode": "crops",
        "checkpoint_every": 100,
    }
    for layer in SHIPPED_LAYERS
}

#: The command that retrains every shipped decoder and rewrites the manifest.
RETRAIN_COMMAND = (
    "cnninv train-decoder --layer pool1,pool2,pool3,pool4 --preset shipped --half "
    "--out src/cnninv/inversion/shipped"
)


def retrain_command(layer: str) -> str:
    """The command that retrains the shipped decoder of ``layer``."""
    return (
        f"cnninv train-decoder --layer {layer} --preset shipped --half "
        "--out src/cnninv/inversion/shipped"
    )


def shipped_dir() -> Path:
    """The folder of the shipped decoders (inside the installed package)."""
    return Path(__file__).resolve().parent / "shipped"


def read_manifest(folder: str | Path | None = None) -> dict[str, Any]:
    """The manifest of ``folder`` (default :func:`shipped_dir`); ``{"decoders": {}}`` when
    there is none.

    Raises
    ------
    ValueError
        If the manifest exists but cannot be read.
    """
    path = Path(folder or shipped_dir()) / MANIFEST
    if not path.is_file():
        return {"decoders": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the decoder manifest {path} ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("decoders"), dict):
        raise ValueError(f"{path} is not a cnninv decoder manifest")
    return data


def add_to_manifest(
    folder: str | Path, file: str | Path, info: DecoderInfo, command: str, **extra: Any
) -> Path:
    """Record the decoder file ``file`` (in ``folder``) in ``folder``'s manifest, with its
    SHA-256, a summary of ``info`` and ``extra`` (e.g. the held-out error of the weights as
    stored); the manifest is rewritten atomically."""
    folder, file = Path(folder), Path(file)
    manifest = read_manifest(folder)
    manifest["format"] = "cnninv.decoders"
    tr = info.training
    manifest["decoders"][info.layer] = {
        "file": file.name,
        "sha256": file_sha256(file),
        "bytes": file.stat().st_size,
        "encoder": info.encoder,
        "architecture": info.architecture,
        "command": command,
        "training_photos": len(tr.get("training_images", [])),
        "training_photos_sha256": tr.get("training_photos_sha256"),
        "validation_photos": len(tr.get("validation_images", [])),
        "epochs": tr.get("epochs"),
        "steps": tr.get("steps"),
        "batch": (tr.get("config") or {}).get("batch"),
        "train_seconds": tr.get("train_seconds"),
        "device": tr.get("device"),
        "validation_error": tr.get("validation_error"),
        "held_out_error": tr.get("held_out_error"),
        "held_out_images": tr.get("held_out_images"),
        **extra,
    }
    manifest["decoders"] = dict(sorted(manifest["decoders"].items()))
    return atomic_write_json(folder / MANIFEST, manifest)


def shipped_for(net, layer: str, folder: str | Path | None = None) -> bool:
    """Whether a shipped decoder of ``layer`` exists for ``net``'s encoder (same
    convolutions up to the layer as the one it was trained on)."""
    entry = read_manifest(folder)["decoders"].get(layer)
    if entry is None:
        return False
    try:
        fp = encoder_fingerprint(net.model, layer)
    except ValueError:
        return False
    return (entry.get("encoder") or {}).get("fingerprint") == fp


def shipped_decoder(
    net,
    layer: str,
    *,
    folder: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> tuple[Decoder, DecoderInfo, dict[str, Any]]:
    """The shipped decoder of ``layer`` for ``net``, its file's metadata and its manifest
    entry (with the full path under ``"path"``).

    Raises
    ------
    ValueError
        No shipped decoder for the layer, a file that is missing or whose SHA-256 is not
        the manifest's (the message gives the command that retrains it), or a decoder that
        does not fit ``net`` (:func:`load_decoder`).
    """
    folder = Path(folder or shipped_dir())
    entry = read_manifest(folder)["decoders"].get(layer)
    if entry is None:
        raise ValueError(
            f"no shipped decoder for {layer} (shipped: "
            f"{', '.join(read_manifest(folder)['decoders']) or 'none'}); train one with "
            f"`cnninv train-decoder --layer {layer}`"
        )
    path = folder / entry["file"]
    if not path.is_file():
        raise ValueError(
            f"the shipped {layer} decoder {path} is missing; retrain it with "
            f"`{retrain_command(layer)}`"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()  # read now, never remembered
    if digest != entry.get("sha256"):
        raise ValueError(
            f"the shipped {layer} decoder {path} does not match the SHA-256 in {MANIFEST} "
            f"({digest[:12]}… instead of {str(entry.get('sha256'))[:12]}…); retrain it with "
            f"`{retrain_command(layer)}`"
        )
    dec, info = load_decoder(
        path, layer=layer, model=net.model, convention=net.convention, device=device
    )
    return dec, info, {**entry, "path": str(path)}
