r"""Inputs given as a NumPy array, and what kind of inputs a path holds.

:func:`load_array` reads a ``.npy`` file as it is: shape ``(N, …)``, the batch the model's
``forward`` takes, in float32. It never unpickles (``allow_pickle=False``): an array of
Python objects is refused. :func:`inputs_kind` tells whether ``--inputs PATH`` is images,
audio or an array.

>>> import numpy as np, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "x.npy"
>>> np.save(path, np.zeros((4, 1, 16000), dtype=np.int16))
>>> x = load_array(path)
>>> x.shape, x.dtype
(torch.Size([4, 1, 16000]), torch.float32)
>>> inputs_kind(path)
'array'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnninv.data.audio import AUDIO_SUFFIXES
from cnninv.data.images import IMAGE_SUFFIXES

__all__ = ["inputs_kind", "load_array"]


def load_array(path: str | Path) -> torch.Tensor:
    """A ``.npy`` array as a float32 tensor, its shape unchanged.

    Parameters
    ----------
    path : str or Path
        A ``.npy`` file holding a numeric array of shape ``(N, …)`` (N examples).

    Returns
    -------
    Tensor
        float32, on the CPU.

    Raises
    ------
    ValueError
        If the file is missing, not a ``.npy``, corrupt, holds Python objects (pickle is
        refused), is not real-valued numbers, has fewer than 2 dimensions, no example, or
        values that are not finite.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"inputs {str(path)!r} do not exist")
    if path.suffix.lower() != ".npy":
        raise ValueError(
            f"inputs {str(path)!r}: an array must be a .npy file (np.save), got "
            f"{path.suffix or 'no suffix'!r}"
        )
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise ValueError(
                f"inputs {str(path)!r} hold Python objects (dtype object), which would have to "
                "be unpickled; save a numeric array instead"
            ) from exc
        raise ValueError(f"inputs {str(path)!r} could not be read as .npy: {exc}") from exc
    except Exception as exc:  # truncated or not an .npy at all
        raise ValueError(
            f"inputs {str(path)!r} could not be read as .npy: {type(exc).__name__}: {exc}"
        ) from exc
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"inputs {str(path)!r}: dtype {arr.dtype} is not real numbers (bool, int, float)"
        )
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise ValueError(
            f"inputs {str(path)!r} have shape {arr.shape}; expected (N, …) with N ≥ 1 examples "
            "as the model's forward takes them"
        )
    x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"inputs {str(path)!r} contain NaN or inf")
    return x


def inputs_kind(path: str | Path) -> str:
    """What ``--inputs PATH`` holds: ``"array"`` (a ``.npy`` file), ``"image"`` or
    ``"signal"`` (a folder, or one file, of images or of audio).

    Raises
    ------
    ValueError
        If the path does not exist, is a file of another kind, or a folder holding both
        images and audio, or neither.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"inputs {str(path)!r} do not exist")
    files = [path] if path.is_file() else [p for p in path.iterdir() if p.is_file()]
    suffixes = {p.suffix.lower() for p in files if not p.name.startswith(".")}
    if path.is_file() and suffixes == {".npy"}:
        return "array"
    images, audio = suffixes & set(IMAGE_SUFFIXES), suffixes & set(AUDIO_SUFFIXES)
    if images and audio:
        raise ValueError(
            f"inputs {str(path)!r} hold both images ({', '.join(sorted(images))}) and audio "
            f"({', '.join(sorted(audio))}); put them in separate folders"
        )
    if images:
        return "image"
    if audio:
        return "signal"
    raise ValueError(
        f"inputs {str(path)!r} are neither a .npy array nor a folder of images "
        f"({', '.join(IMAGE_SUFFIXES)}) or audio files ({', '.join(AUDIO_SUFFIXES)})"
    )
