"""Real photos for the experiments, preprocessed for a network and back.

The default set is the 20 ImageNet validation photos shipped inside the ``foolbox``
package (``foolbox/data/imagenet_NN_LABEL.jpg``, ``LABEL`` the ImageNet class index),
found on disk without importing foolbox.

Preprocessing (:func:`load_images`): each image is converted to RGB and resized
directly to ``H × W`` (bilinear, with PIL's antialiasing), the aspect ratio not
kept. This is the "resized to 224×224" with which the sparsity of Table 2 was checked;
the usual "shorter side to 256, centre crop 224" would cut off part of each photo. Then
the network's :class:`~cnninv.data.convention.InputConvention` applies (channel order, scale,
mean, std). :func:`to_display` undoes the convention.
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from cnninv._checks import check_positive_int
from cnninv.data.convention import InputConvention

__all__ = [
    "IMAGE_SUFFIXES",
    "default_images",
    "imagenet_label",
    "list_images",
    "load_images",
    "read_photos",
    "to_display",
]

#: Suffixes of the files that :func:`load_images` reads from a folder.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")

_FOOLBOX_IMAGENET = re.compile(r"^imagenet_(\d+)_(\d+)\.jpg$")


def default_images() -> list[Path]:
    """The 20 ImageNet photos of ``foolbox/data``, sorted by their index.

    Raises
    ------
    ValueError
        If foolbox is not installed or holds no such photo.
    """
    hint = "install them with `pip install --no-deps foolbox==3.3.4`"
    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"the default images need the foolbox package: {hint}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    paths = [p for p in folder.glob("imagenet_*.jpg") if _FOOLBOX_IMAGENET.match(p.name)]
    if not paths:
        raise ValueError(f"no imagenet_NN_LABEL.jpg photos in {folder}: {hint}")
    return sorted(paths, key=lambda p: int(_FOOLBOX_IMAGENET.match(p.name).group(1)))


def imagenet_label(path: str | Path) -> int | None:
    """The ImageNet class index in a foolbox file name ``imagenet_NN_LABEL.jpg``, else None."""
    m = _FOOLBOX_IMAGENET.match(Path(path).name)
    return int(m.group(2)) if m else None


def list_images(paths_or_folder: str | Path | Sequence[str | Path]) -> list[Path]:
    """The image files of a folder (name order, :data:`IMAGE_SUFFIXES`, hidden files
    skipped), a single file, or a list of files as given."""
    if isinstance(paths_or_folder, str | Path):
        folder = Path(paths_or_folder)
        if not folder.exists():
            raise ValueError(f"paths_or_folder {str(folder)!r} does not exist")
        if folder.is_file():
            return [folder]
        return sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
    paths = [Path(p) for p in paths_or_folder]
    return paths


class UnsupportedImage(ValueError):
    """An image Pillow opens but whose values cannot be put on the 8-bit scale."""


def _high_depth_rgb(img) -> np.ndarray:
    """A 16-bit, 32-bit integer or float single-channel image as RGB in [0, 1]: 16-bit
    data divided by 65535; 32-bit integers divided by 255 when they hold 8-bit values, by
    65535 when 16-bit ones; floats taken as they are when in [0, 1] or divided by 255 when
    in [0, 255]; anything else is refused."""
    arr = np.asarray(img).astype(np.float64)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if img.mode.startswith("I;16"):
        arr = arr / 65535.0
    elif img.mode == "I" and lo >= 0 and hi <= 255:
        arr = arr / 255.0
    elif img.mode == "I" and lo >= 0 and hi <= 65535:
        arr = arr / 65535.0
    elif img.mode == "F" and lo >= 0 and hi <= 1:
        pass
    elif img.mode == "F" and lo >= 0 and hi <= 255:
        arr = arr / 255.0
    else:
        raise UnsupportedImage(
            f"mode {img.mode} with values in [{lo:g}, {hi:g}]: cannot tell its range "
            "(expected 16-bit data, or floats in [0, 1] or [0, 255])"
        )
    return np.repeat(arr[..., None], 3, axis=2).astype(np.float32)


def _read_rgb(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """One image as RGB in [0, 1], resized to ``size`` (H, W), whatever its mode: 8-bit
    modes (1, L, P, LA, RGB, RGBA, CMYK, YCbCr …) through Pillow's RGB conversion (alpha
    dropped), 16-bit, 32-bit and float grey images scaled by :func:`_high_depth_rgb`."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        if img.mode.startswith("I") or img.mode == "F":
            arr = _high_depth_rgb(img)
            chans = [
                Image.fromarray(arr[..., 0], mode="F").resize(
                    (size[1], size[0]), Image.Resampling.BILINEAR
                )
            ]
            arr = np.repeat(np.asarray(chans[0], dtype=np.float32)[..., None], 3, axis=2)
        else:
            rgb = img.convert("RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.asarray(rgb, dtype=np.float32) / 255.0
    return torch.from_numpy(np.clip(arr, 0.0, 1.0).copy()).permute(2, 0, 1)


def read_photos(
    paths_or_folder: str | Path | Sequence[str | Path],
    convention: InputConvention,
    size: int | tuple[int, int] | None = None,
) -> tuple[torch.Tensor, list[Path]]:
    """Read photos into a batch preprocessed for a network; like :func:`load_images` but
    returns the paths of the files read (unreadable ones are skipped with a warning)."""
    if not isinstance(convention, InputConvention):
        raise ValueError(f"convention must be an InputConvention, got {type(convention).__name__}")
    if size is None:
        hw = convention.hw
    elif isinstance(size, tuple | list) and len(size) == 2:
        hw = (check_positive_int(size[0], "size"), check_positive_int(size[1], "size"))
    else:
        hw = (check_positive_int(size, "size"),) * 2
    paths = list_images(paths_or_folder)
    images, read, skipped = [], [], []
    for p in paths:
        try:
            images.append(_read_rgb(p, hw))
        except UnsupportedImage as exc:
            skipped.append(f"{p} ({exc})")
            continue
        except Exception as exc:  # PIL raises several types for unreadable files
            skipped.append(f"{p} ({type(exc).__name__})")
            continue
        read.append(p)
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable image file(s): {', '.join(skipped)}",
            UserWarning,
            stacklevel=3,
        )
    if not images:
        raise ValueError(f"no readable image in paths_or_folder {paths_or_folder!r}")
    return convention.to_input(torch.stack(images)), read


def load_images(
    paths_or_folder: str | Path | Sequence[str | Path],
    convention: InputConvention,
    size: int | tuple[int, int] | None = None,
) -> tuple[torch.Tensor, list[str]]:
    """Read photos into a batch preprocessed for a network.

    Parameters
    ----------
    paths_or_folder : folder, file, or list of files
        A folder is read in name order, files with an :data:`IMAGE_SUFFIXES` suffix.
    convention : InputConvention
        The network's (``LoadedNetwork.convention``).
    size : int or (H, W), optional
        Side of the square images, or ``(H, W)``; ``convention.hw`` ((224, 224)) by default.

    Returns
    -------
    x : Tensor of shape ``(N, 3, H, W)``
    names : list of str
        The file names (without suffix) of the images read, in the batch's order.

    Raises
    ------
    ValueError
        If the folder does not exist, or no image could be read. Unreadable files are
        skipped with a ``UserWarning`` that names them.
    """
    x, read = read_photos(paths_or_folder, convention, size)
    return x, [p.stem for p in read]


def to_display(x: torch.Tensor, convention: InputConvention) -> torch.Tensor:
    """RGB images in [0, 1], channels last, from network inputs (the inverse of the
    preprocessing of :func:`load_images`, clipped), e.g. for ``plt.imshow``.

    Parameters
    ----------
    x : Tensor of shape ``(3, H, W)`` or ``(..., 3, H, W)``
    convention : InputConvention

    Returns
    -------
    Tensor of shape ``(H, W, 3)`` or ``(..., H, W, 3)``, on the CPU, float32.
    """
    if not isinstance(convention, InputConvention):
        raise ValueError(f"convention must be an InputConvention, got {type(convention).__name__}")
    rgb = convention.to_rgb(x.detach().float().cpu())
    return rgb.clamp(0.0, 1.0).movedim(-3, -1).contiguous()
