r"""The data sets of the Table 1 experiment, read from local files (no downloads).

Fashion-MNIST (the default)
    60,000 training and 10,000 test images of 28×28 grey levels, 10 classes, in the IDX
    format of LeCun's MNIST: ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
    ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz`` (gzipped or not). The
    Debian package ``dataset-fashion-mnist`` installs them in
    :data:`FASHION_MNIST_DIR`. Images are zero-padded by 2 pixels to 32×32 so that the
    paper's CIFAR-10 architectures (Table 5) apply unchanged.
CIFAR-10 (the paper's)
    A user's copy of the ``cifar-10-batches-py`` folder (``data_batch_1`` … ``data_batch_5``,
    ``test_batch``): pickled dicts with ``b"data"`` (N×3072 uint8, channel-major) and
    ``b"labels"``. They are pickles, so they are read with :class:`RestrictedUnpickler`,
    which builds nothing but plain containers and NumPy arrays and refuses any other
    global (a pickle can otherwise run arbitrary code).

Images stay ``uint8`` (N×C×32×32) in memory; :func:`standardise` makes float batches with
the per-channel mean and standard deviation of the training split.

>>> import numpy as np, tempfile, os
>>> tmp = tempfile.TemporaryDirectory()
>>> path = os.path.join(tmp.name, "x-idx3-ubyte.gz")
>>> _ = write_idx(path, np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
>>> read_idx(path).shape
(2, 3, 4)
>>> tmp.cleanup()
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from cnninv._checks import check_positive_int, make_generator

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_DIR",
    "DATASETS",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "ImageData",
    "RestrictedUnpickler",
    "Split",
    "channel_stats",
    "default_path",
    "load_cifar10",
    "load_dataset",
    "load_fashion_mnist",
    "read_cifar_batch",
    "read_idx",
    "split_indices",
    "standardise",
    "write_idx",
]

DATASETS = ("fashion-mnist", "cifar10")
#: Where the Debian package ``dataset-fashion-mnist`` installs the IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Where a user's ``cifar-10-batches-py`` is looked for when no path is given.
CIFAR10_DIR = Path("~/.cache/cnninv/cifar-10-batches-py")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

# IDX type codes (third byte of the magic number) -> big-endian NumPy dtypes
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped when its name ends in ``.gz``) into a NumPy array.

    The format: a magic number ``00 00 TT NN`` (TT the element type, NN the number of
    dimensions), NN big-endian 32-bit sizes, then the elements in C order.

    Raises
    ------
    ValueError
        naming the file, when it is missing, truncated, not gzip or not IDX.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"IDX file {path} does not exist")
    try:
        with _open(path) as f:
            raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ValueError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()!r})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path} is a corrupt IDX file: header of {ndim} dimensions truncated")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    count = int(np.prod(shape, dtype=np.int64))
    body = raw[4 + 4 * ndim :]
    if len(body) != count * dtype.itemsize:
        raise ValueError(
            f"{path} is a corrupt IDX file: header says shape {shape} "
            f"({count * dtype.itemsize} bytes of data), found {len(body)} bytes"
        )
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8 or int8 array as an IDX file (gzipped when the name ends in ``.gz``).
    The inverse of :func:`read_idx`; the tests use it to make small data sets."""
    path = Path(path)
    array = np.ascontiguousarray(array)
    if array.dtype not in _IDX_CODES:
        raise ValueError(f"write_idx writes uint8 or int8 arrays, got {array.dtype}")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"array must have 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, _IDX_CODES[array.dtype], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


_SAFE_BUILTINS = {"dict": dict, "list": list, "bytes": bytes, "str": str, "int": int}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler for the CIFAR-10 batches that builds only plain containers and NumPy
    arrays: any global other than those in :attr:`ALLOWED` is refused with
    :class:`pickle.UnpicklingError`, so a crafted file cannot run code."""

    @staticmethod
    def _numpy_reconstruct():
        try:
            from numpy._core.multiarray import _reconstruct
        except ImportError:  # NumPy < 2
            from numpy.core.multiarray import _reconstruct
        return _reconstruct

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),  # NumPy 1 (the files' own names)
            ("numpy._core.multiarray", "_reconstruct"),  # NumPy 2
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            *(("builtins", name) for name in _SAFE_BUILTINS),
            *(("__builtin__", name) for name in _SAFE_BUILTINS),  # Python 2's name
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refused to load global {module}.{name}: only NumPy arrays and plain "
                "containers are allowed in a CIFAR-10 batch"
            )
        if name == "_reconstruct":
            return self._numpy_reconstruct()
        if module == "numpy":
            return getattr(np, name)
        return _SAFE_BUILTINS[name]


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: images N×3×32×32 uint8 and labels N int64.

    Raises
    ------
    ValueError
        naming the file when it is missing, refused by :class:`RestrictedUnpickler`, or
        not a CIFAR-10 batch.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"CIFAR-10 batch {path} does not exist")
    try:
        with open(path, "rb") as f:
            batch = RestrictedUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise ValueError(f"cannot read CIFAR-10 batch {path}: {exc}") from exc
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise ValueError(f"{path} is not a CIFAR-10 batch: {exc!r}") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path} is not a CIFAR-10 batch (no b'data' and b'labels' keys)")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise ValueError(f"{path}: b'data' must be a 2-d uint8 array")
    if data.shape[1] != 3 * 32 * 32 or len(labels) != data.shape[0]:
        raise ValueError(
            f"{path}: expected N×3072 images and N labels, got {data.shape} and {len(labels)}"
        )
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must lie in 0..9")
    return data.reshape(-1, 3, 32, 32), labels


@dataclass(frozen=True)
class ImageData:
    """A data set held in memory: ``uint8`` images N×C×32×32 and ``int64`` labels."""

    name: str
    path: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])


def default_path(dataset: str) -> Path:
    """Where ``dataset`` is looked for when no path is given."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    return FASHION_MNIST_DIR if dataset == "fashion-mnist" else CIFAR10_DIR.expanduser()


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise ValueError(
        f"Fashion-MNIST file {folder / (stem + '.gz')} is missing "
        "(install the Debian package dataset-fashion-mnist, or give the folder that holds "
        "the four IDX files)"
    )


def load_fashion_mnist(path: str | os.PathLike | None = None) -> ImageData:
    """Fashion-MNIST from the IDX files in ``path`` (default :data:`FASHION_MNIST_DIR`),
    zero-padded to 32×32."""
    folder = Path(path).expanduser() if path is not None else FASHION_MNIST_DIR
    if not folder.is_dir():
        raise ValueError(
            f"Fashion-MNIST folder {folder} does not exist (apt-get install "
            "dataset-fashion-mnist, or give data_path)"
        )
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(_find_idx(folder, f"{prefix}-images-idx3-ubyte"))
        y = read_idx(_find_idx(folder, f"{prefix}-labels-idx1-ubyte"))
        if x.ndim != 3 or x.shape[1:] != (28, 28) or x.dtype != np.uint8:
            raise ValueError(f"{folder}: {prefix} images must be N×28×28 uint8, got {x.shape}")
        if y.shape != (x.shape[0],):
            raise ValueError(
                f"{folder}: {x.shape[0]} {prefix} images but {y.shape} labels do not match"
            )
        if y.size and (y.min() < 0 or y.max() > 9):
            raise ValueError(f"{folder}: {prefix} labels must lie in 0..9")
        x = np.pad(x, ((0, 0), (2, 2), (2, 2)))[:, None]
        parts[split] = (torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64)))
    return ImageData(
        "fashion-mnist", str(folder), *parts["train"], *parts["test"], FASHION_MNIST_CLASSES
    )


def load_cifar10(path: str | os.PathLike | None = None) -> ImageData:
    """CIFAR-10 from a local ``cifar-10-batches-py`` folder (default :data:`CIFAR10_DIR`)."""
    folder = Path(path).expanduser() if path is not None else CIFAR10_DIR.expanduser()
    if not folder.is_dir():
        raise ValueError(
            f"CIFAR-10 folder {folder} does not exist: CIFAR-10 is not shipped with cnninv; "
            "give the path of your cifar-10-batches-py folder"
        )
    train = [read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    test_x, test_y = read_cifar_batch(folder / "test_batch")
    train_x = np.concatenate([b[0] for b in train])
    train_y = np.concatenate([b[1] for b in train])
    return ImageData(
        "cifar10",
        str(folder),
        torch.from_numpy(train_x.copy()),
        torch.from_numpy(train_y),
        torch.from_numpy(test_x.copy()),
        torch.from_numpy(test_y),
        CIFAR10_CLASSES,
    )


@lru_cache(maxsize=2)
def _load_cached(dataset: str, folder: str, stamp: tuple) -> ImageData:
    return load_fashion_mnist(folder) if dataset == "fashion-mnist" else load_cifar10(folder)


def load_dataset(dataset: str, path: str | os.PathLike | None = None) -> ImageData:
    """Load ``dataset`` (``"fashion-mnist"`` or ``"cifar10"``) from ``path`` (None: its
    :func:`default_path`). Kept in memory (two data sets at most), keyed by the folder and
    its files' sizes and times, so the configurations of a sweep share one copy."""
    folder = Path(path).expanduser() if path is not None else default_path(dataset)
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if not folder.is_dir():
        # the loaders raise the message that says what to do
        return load_fashion_mnist(folder) if dataset == "fashion-mnist" else load_cifar10(folder)
    stamp = tuple(
        sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir())
    )
    return _load_cached(dataset, str(folder.resolve()), stamp)


@dataclass(frozen=True)
class Split:
    """Indices into the training set: ``train`` (used to fit) and ``val`` (held out to
    choose hyper-parameters). The test set is separate and used once."""

    train: torch.Tensor
    val: torch.Tensor


def split_indices(n: int, val_size: int, train_subset: int | None, seed: int) -> Split:
    """A seeded split of ``n`` training images: ``val_size`` held out for validation, and
    ``train_subset`` of the rest (None: all of them) for training.

    >>> s = split_indices(100, 20, 50, seed=0)
    >>> len(s.val), len(s.train), len(set(s.val.tolist()) & set(s.train.tolist()))
    (20, 50, 0)
    """
    check_positive_int(val_size, "val_size")
    if val_size >= n:
        raise ValueError(f"val_size={val_size} leaves no training images out of {n}")
    if train_subset is not None:
        check_positive_int(train_subset, "train_subset")
        if train_subset > n - val_size:
            raise ValueError(
                f"train_subset={train_subset} exceeds the {n - val_size} training images "
                f"left after {val_size} for validation"
            )
    perm = torch.randperm(n, generator=make_generator(seed))
    end = n if train_subset is None else val_size + train_subset
    return Split(train=perm[val_size:end].sort().values, val=perm[:val_size].sort().values)


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of uint8 images N×C×H×W, on the [0, 1]
    scale, as (C,) float32 tensors."""
    xs = x.to(torch.float64) / 255.0
    mean = xs.mean(dim=(0, 2, 3))
    std = xs.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return mean.float(), std.float()


def standardise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 images to float32 with zero mean and unit variance per channel."""
    xs = x.to(torch.float32) / 255.0
    return (xs - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
