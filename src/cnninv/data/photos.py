r"""The natural photos the decoders are trained on, the photos they are validated on, and
the photos held out from both.

Default training sources (:data:`DEFAULT_SOURCES`, all installed by the project's set-up,
``make setup``; each found on disk without importing anything):

=================  =====  ==============================================================
source             count  what
=================  =====  ==============================================================
foolbox            15     the ImageNet photos of ``foolbox/data`` that are not held out
scikit-image       14     the colour photos bundled in the wheel (astronaut, chelsea,
                          coffee, rocket, the two motorcycle views, hubble_deep_field,
                          retina) and the grey ones (camera, coins, moon, brick, grass,
                          gravel)
scikit-learn       2      ``load_sample_images()``: china, flower
matplotlib         1      ``grace_hopper.jpg``
opencv-doc         45     Debian's OpenCV examples: the natural photos among
                          ``examples/data`` (:data:`OPENCV_PHOTOS`), the scene-text
                          photos of ``examples/text``, ``examples/hfs/data`` and
                          ``examples/alphamat``
mate-backgrounds   12     Debian's MATE wallpapers of ``nature/`` (macro and landscape
                          photographs)
=================  =====  ==============================================================

What was looked at and left out (by eye, once): from ``opencv-doc`` the renders, logos,
cartoons, text pages, charts and synthetic shapes (``Blender_Suzanne*``, ``HappyFish``,
``*Logo*``, ``blox``, ``cards``, ``chessboard``, ``digits``, ``pic1``–``pic6``,
``detect_blob``, ``ellipses``, ``gradient``, ``mask``, ``ml``, ``notes``, ``opencv-logo*``,
``pca_test1``, ``sudoku``, ``imageText*``, ``text_*``, ``templ``, ``tmpl``), the painting
``starry_night``, the tampered copy ``ela_modified`` and the artificially blurred
``licenseplate_motion``, and the 26 chessboard calibration frames ``left01``–``right14``
(one scene 26 times); the MATE ``abstract/`` and ``desktop/`` wallpapers and every
wallpaper of ``gnome-backgrounds``, ``ukui-wallpapers``, ``lomiri-wallpapers`` and
``sway-backgrounds`` (renders and abstract art, not photographs).

:func:`photo_split` warns (``UserWarning``, naming the source and how to install it) when a
source of the default is missing, so that a machine that trains on fewer photos says so; a
user's folder (``extra``) is added on request.

Held out, never trained on nor validated on: the foolbox photos whose index ``NN`` in
``imagenet_NN_LABEL.jpg`` is 3 mod 4 (5 of the 20). The split is checked by file *content*
(SHA-256), so a copy of a held-out photo under another name is dropped from training too.

Validation (:data:`VALIDATION_RULE`): the training candidates whose content hash falls in
one eighth of the hash space; they choose architectures and schedules and are never
trained on. The rule depends on each photo's content alone, so adding photos never moves
one between the two sets. :func:`photos_fingerprint` hashes the contents of a photo list
(the decoders' cache key).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cnninv.data.images import IMAGE_SUFFIXES, default_images, list_images

__all__ = [
    "DEFAULT_SOURCES",
    "HELD_OUT_RULE",
    "VALIDATION_RULE",
    "PhotoSource",
    "PhotoSplit",
    "file_sha256",
    "held_out_photos",
    "is_validation",
    "library_photos",
    "photo_split",
    "photos_fingerprint",
]

#: Which foolbox photos are held out (never trained on, never validated on).
HELD_OUT_RULE = "foolbox imagenet_NN_*.jpg with NN % 4 == 3 (NN = 3, 7, 11, 15, 19)"

#: Which training candidates are kept apart for validation.
VALIDATION_RULE = "int(SHA-256 of the file's content[:8 hex digits], 16) % 8 == 0"

#: The scikit-image photos used for training (bundled in the wheel): colour, then grey.
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "camera.png",
    "coins.png",
    "moon.png",
    "brick.png",
    "grass.png",
    "gravel.png",
)

#: scikit-learn's sample photos (``sklearn/datasets/images``).
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")

#: Where Debian's ``opencv-doc`` puts its examples.
OPENCV_ROOT = Path("/usr/share/doc/opencv-doc/examples")

#: The natural photos of ``opencv-doc``, relative to :data:`OPENCV_ROOT`.
OPENCV_PHOTOS = tuple(
    [
        f"data/{n}"
        for n in (
            "aero1.jpg", "aero3.jpg", "aloeL.jpg", "aloeR.jpg", "apple.jpg", "baboon.jpg",
            "basketball1.png", "basketball2.png", "board.jpg", "box.png", "box_in_scene.png",
            "building.jpg", "butterfly.jpg", "chicky_512.png", "ela_original.jpg",
            "fruits.jpg", "graf1.png", "graf3.png", "home.jpg", "left.jpg", "leuvenA.jpg",
            "leuvenB.jpg", "messi5.jpg", "orange.jpg", "right.jpg", "rubberwhale1.png",
            "rubberwhale2.png", "smarties.png", "squirrel_cls.jpg", "stuff.jpg",
        )
    ]
    + [f"text/scenetext0{i}.jpg" for i in range(1, 7)]
    + [f"text/scenetext_segmented_word0{i}.jpg" for i in range(1, 6)]
    + [f"hfs/data/00{i}.jpg" for i in range(3)]
    + ["alphamat/input_images/plant.jpg"]
)  # fmt: skip

#: Where Debian's ``mate-backgrounds`` puts its nature photographs.
MATE_NATURE = Path("/usr/share/backgrounds/mate/nature")

#: The MATE nature photographs.
MATE_PHOTOS = (
    "Aqua.jpg", "Blinds.jpg", "Dune.jpg", "FreshFlower.jpg", "Garden.jpg", "GreenMeadow.jpg",
    "LadyBird.jpg", "RainDrops.jpg", "Storm.jpg", "TwoWings.jpg", "Wood.jpg",
    "YellowFlower.jpg",
)  # fmt: skip


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _in_package(package: str, sub: str, names: Sequence[str]) -> Callable[[], list[Path]]:
    def find() -> list[Path]:
        root = _package_dir(package)
        if root is None:
            return []
        return [root / sub / n for n in names if (root / sub / n).is_file()]

    return find


def _on_disk(root: Path, names: Sequence[str]) -> Callable[[], list[Path]]:
    def find() -> list[Path]:
        return [root / n for n in names if (root / n).is_file()]

    return find


def _foolbox_not_held_out() -> list[Path]:
    try:
        return [p for p in default_images() if not _held_out_name(p.name)]
    except ValueError:  # foolbox missing
        return []


@dataclass(frozen=True)
class PhotoSource:
    """A default source of training photos: how many it holds, how to install it, and
    how to find its photos on disk."""

    count: int
    install: str
    find: Callable[[], list[Path]]


#: The documented default training sources: name -> :class:`PhotoSource`. The project's
#: set-up (``make setup``) installs every one of them.
DEFAULT_SOURCES: dict[str, PhotoSource] = {
    "foolbox": PhotoSource(
        15, "pip install --no-deps foolbox==3.3.4", _foolbox_not_held_out
    ),
    "scikit-image": PhotoSource(
        len(SKIMAGE_PHOTOS), "pip install scikit-image",
        _in_package("skimage", "data", SKIMAGE_PHOTOS),
    ),
    "scikit-learn": PhotoSource(
        len(SKLEARN_PHOTOS), "pip install scikit-learn",
        _in_package("sklearn", "datasets/images", SKLEARN_PHOTOS),
    ),
    "matplotlib": PhotoSource(
        1, "pip install matplotlib",
        _in_package("matplotlib", "mpl-data/sample_data", ("grace_hopper.jpg",)),
    ),
    "opencv-doc": PhotoSource(
        len(OPENCV_PHOTOS), "apt-get install opencv-doc (Debian)",
        _on_disk(OPENCV_ROOT, OPENCV_PHOTOS),
    ),
    "mate-backgrounds": PhotoSource(
        len(MATE_PHOTOS), "apt-get install mate-backgrounds (Debian)",
        _on_disk(MATE_NATURE, MATE_PHOTOS),
    ),
}  # fmt: skip


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's content (remembered for the process, keyed by the file's path,
    size and modification time: a training set is hashed once, not once per check)."""
    p = Path(path).resolve()
    st = p.stat()
    return _sha256_of(str(p), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=1 << 20)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def photos_fingerprint(paths: Sequence[str | Path]) -> str:
    """SHA-256 over the contents of ``paths`` in order: two lists of photos get the same
    fingerprint only if they hold the same images in the same order (names do not count)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(file_sha256(p).encode())
    return h.hexdigest()


def is_validation(digest: str) -> bool:
    """Whether a training candidate with content hash ``digest`` (hex SHA-256) is a
    validation photo (:data:`VALIDATION_RULE`)."""
    return int(digest[:8], 16) % 8 == 0


@dataclass
class PhotoSplit:
    """Training, validation and held-out photos (disjoint by path and by content).

    ``dropped``: photos left out because they are copies of held-out photos or of photos
    already listed; ``missing``: sources of :data:`DEFAULT_SOURCES` not found (whole or in
    part) on this machine, each as ``"name (install hint)"``; ``sources``: how many photos
    each source gave.
    """

    train: list[Path]
    held_out: list[Path]
    validation: list[Path] = field(default_factory=list)
    dropped: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)


def _held_out_name(name: str) -> bool:
    return int(name.split("_")[1]) % 4 == 3


def held_out_photos() -> list[Path]:
    """The held-out photos: the foolbox photos ``imagenet_NN_*.jpg`` with ``NN % 4 == 3``."""
    return [p for p in default_images() if _held_out_name(p.name)]


def library_photos() -> tuple[dict[str, list[Path]], list[str]]:
    """The photos of every default source found on this machine (source -> paths), and
    the names of the sources that are missing or incomplete."""
    found, missing = {}, []
    for name, source in DEFAULT_SOURCES.items():
        got = source.find()
        found[name] = got
        if len(got) < source.count:
            missing.append(name)
    return found, missing


def photo_split(
    extra: str | Path | Sequence[str | Path] | None = None, *, defaults: bool = True
) -> PhotoSplit:
    """Training, validation and held-out photos: the default sources (when ``defaults``),
    then ``extra``; held-out copies and duplicates dropped, then :data:`VALIDATION_RULE`.

    ``extra``: a folder or files of the user's photos, added to the candidates (a held-out
    photo among them is dropped). A default source that is missing here is named in a
    ``UserWarning`` (the decoders then train on fewer photos than documented).
    """
    held = held_out_photos()
    held_hashes = {file_sha256(p) for p in held}
    candidates: list[Path] = []
    sources: dict[str, int] = {}
    missing_names: list[str] = []
    if defaults:
        found, missing_names = library_photos()
        for name, paths in found.items():
            sources[name] = len(paths)
            candidates += paths
    if extra:
        user = [p for p in list_images(extra) if p.suffix.lower() in IMAGE_SUFFIXES]
        if not user:
            raise ValueError(f"the extra training photos {extra!r} hold no image file")
        sources["extra"] = len(user)
        candidates += user
    train, validation, dropped, seen = [], [], [], set()
    for p in candidates:
        digest = file_sha256(p)
        if digest in held_hashes or digest in seen:
            dropped.append(p)
            continue
        seen.add(digest)
        (validation if is_validation(digest) else train).append(p)
    missing = [f"{n} ({DEFAULT_SOURCES[n].install})" for n in missing_names]
    if missing:
        warnings.warn(
            "the default decoder training photos are incomplete on this machine: missing "
            + "; ".join(missing),
            UserWarning,
            stacklevel=2,
        )
    return PhotoSplit(train, held, validation, dropped, missing, sources)
