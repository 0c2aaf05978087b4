r"""The natural photos the decoders are trained on, and the photos held out from them.

Default training set (:data:`DEFAULT_SOURCES`): the foolbox ImageNet photos that are *not*
held out, the colour photos bundled in scikit-image (astronaut, chelsea, coffee, rocket,
the two motorcycle views, hubble_deep_field, retina) and matplotlib's ``grace_hopper.jpg``
— all inside packages that the set-up installs, found on disk without importing them (so
the same command trains on the same photos on every machine set up the same way).
:func:`photo_split` warns (``UserWarning``, naming the source and how to install it) when
a source of the default is missing, so that a machine that trains on fewer photos says
so; a user's folder (``extra``) is added on request.

Held out, never trained on: the foolbox photos whose index ``NN`` in
``imagenet_NN_LABEL.jpg`` is 3 mod 4 (5 of the 20). The split is checked by file *content*
(SHA-256), so a copy of a held-out photo under another name is dropped from training too.
:func:`photos_fingerprint` hashes the contents of a photo list (the decoders' cache key).
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cnninv.data.images import IMAGE_SUFFIXES, default_images, list_images

__all__ = [
    "DEFAULT_SOURCES",
    "HELD_OUT_RULE",
    "PhotoSplit",
    "file_sha256",
    "held_out_photos",
    "library_photos",
    "photo_split",
    "photos_fingerprint",
]

#: Which foolbox photos are held out (never trained on).
HELD_OUT_RULE = "foolbox imagenet_NN_*.jpg with NN % 4 == 3 (NN = 3, 7, 11, 15, 19)"

#: The scikit-image photos used for training (colour, bundled in the wheel).
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
)

#: The documented default training sources: name -> (how many photos, how to install).
DEFAULT_SOURCES: dict[str, tuple[int, str]] = {
    "foolbox": (15, "pip install --no-deps foolbox==3.3.4"),
    "scikit-image": (len(SKIMAGE_PHOTOS), "pip install scikit-image"),
    "matplotlib": (1, "pip install matplotlib"),
}


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's content."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def photos_fingerprint(paths: Sequence[str | Path]) -> str:
    """SHA-256 over the contents of ``paths`` in order: two lists of photos get the same
    fingerprint only if they hold the same images in the same order (names do not count)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(file_sha256(p).encode())
    return h.hexdigest()


@dataclass
class PhotoSplit:
    """Training and held-out photos (disjoint by path and by content).

    ``dropped``: photos left out of training because they are copies of held-out ones;
    ``missing``: sources of :data:`DEFAULT_SOURCES` not found on this machine, each as
    ``"name (install hint)"``.
    """

    train: list[Path]
    held_out: list[Path]
    dropped: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def held_out_photos() -> list[Path]:
    """The held-out photos: the foolbox photos ``imagenet_NN_*.jpg`` with ``NN % 4 == 3``."""
    return [p for p in default_images() if int(p.name.split("_")[1]) % 4 == 3]


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def library_photos() -> tuple[list[Path], list[str]]:
    """The natural photos bundled in the default's packages (scikit-image, matplotlib),
    found on disk, and the names of the sources that were not found."""
    out: list[Path] = []
    found: dict[str, list[Path]] = {}
    skimage = _package_dir("skimage")
    if skimage is not None:
        found["scikit-image"] = [
            skimage / "data" / n for n in SKIMAGE_PHOTOS if (skimage / "data" / n).is_file()
        ]
    mpl = _package_dir("matplotlib")
    if mpl is not None:
        hopper = mpl / "mpl-data" / "sample_data" / "grace_hopper.jpg"
        found["matplotlib"] = [hopper] if hopper.is_file() else []
    missing = []
    for name in ("scikit-image", "matplotlib"):
        expected, _ = DEFAULT_SOURCES[name]
        got = found.get(name, [])
        if len(got) < expected:
            missing.append(name)
        out += got
    return out, missing


def photo_split(extra: str | Path | Sequence[str | Path] | None = None) -> PhotoSplit:
    """Training photos (the default sources, then ``extra``) and held-out photos.

    ``extra``: a folder or files of the user's photos, added to training (a held-out photo
    among them is dropped). A default source that is missing here is named in a
    ``UserWarning`` (the decoders then train on fewer photos than documented).
    """
    held = held_out_photos()
    held_hashes = {file_sha256(p) for p in held}
    held_set = {p.resolve() for p in held}
    candidates = [p for p in default_images() if p.resolve() not in held_set]
    library, missing_names = library_photos()
    candidates += library
    if len(candidates) - len(library) < DEFAULT_SOURCES["foolbox"][0]:
        missing_names.insert(0, "foolbox")
    if extra:
        candidates += [p for p in list_images(extra) if p.suffix.lower() in IMAGE_SUFFIXES]
    train, dropped, seen = [], [], set()
    for p in candidates:
        digest = file_sha256(p)
        if digest in held_hashes:
            dropped.append(p)
        elif digest not in seen:
            seen.add(digest)
            train.append(p)
    missing = [f"{n} ({DEFAULT_SOURCES[n][1]})" for n in missing_names]
    if missing:
        warnings.warn(
            "the default decoder training photos are incomplete on this machine: missing "
            + "; ".join(missing),
            UserWarning,
            stacklevel=2,
        )
    return PhotoSplit(train, held, dropped, missing)
