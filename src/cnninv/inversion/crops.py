r"""Random crops of photos for the decoders' training, streamed by ``torch`` DataLoader
workers (a folder of any size: photos are read when a crop needs them, never all at once).

Sample ``g`` of a run seeded by ``s`` depends on ``(s, g)`` and the photos alone
(:meth:`PhotoCrops.draw`): a photo, a side :math:`S` drawn from the scales, a horizontal
flip (a coin toss) and a position. The photo is resized to :math:`S\times S` (as the
experiments resize photos to 224×224, aspect ratio not kept), flipped, and the
``crop``×``crop`` square at that position is returned in the network's input space. So
any number of workers, any order of delivery, and a run resumed at step ``t`` (whose
sampler starts at sample ``t · batch``) see exactly the crops of an uninterrupted run.

Each worker keeps up to ``cache_size`` decoded photos (shrunk so that their shorter side
is the largest scale), so a small photo set is decoded once per worker and a large one
streams from disk.

:class:`EncodedPhotos` is the other way, for photo sets that fit in memory (the default
one): each photo is encoded once per side and flip (the whole :math:`S\times S` photo,
as the experiments encode photos), and every crop is cut from the encodings: the image,
the activation, and each pool's switches re-indexed into the crop. The crops then see no
border of their own, and the encoder runs once per (photo, side, flip) instead of once per
crop, which makes training 1.5–2.5 times faster on a CPU.

>>> from cnninv.inversion.crops import parse_scales, StepSampler
>>> parse_scales("160-320"), parse_scales("224,288")
((160, 320, True), (224, 288, False))
>>> list(StepSampler(start=1, stop=3, batch=4, rank=1, world=2))
[6, 7, 10, 11]
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from cnninv._checks import check_positive_int

__all__ = [
    "Draw",
    "PhotoCrops",
    "StepSampler",
    "parse_scales",
    "readable_photos",
    "scale_bounds",
]


def parse_scales(spec: str) -> tuple[int, int, bool] | tuple[int, ...]:
    """``"224"`` or ``"192,224,288"`` (a side drawn among them) -> the sides and ``False``;
    ``"160-320"`` (a side drawn uniformly in the range, both ends included) ->
    ``(160, 320, True)``.

    Raises
    ------
    ValueError
        Anything else, or a side below 1.
    """
    text = str(spec).strip()
    try:
        if "-" in text:
            lo_s, hi_s = text.split("-", 1)
            lo, hi = int(lo_s), int(hi_s)
            if lo < 1 or hi < lo:
                raise ValueError
            return (lo, hi, True)
        sides = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(
            f"scales must be comma-separated sides ('224,288') or a range ('160-320'), got {spec!r}"
        ) from None
    if not sides or any(s < 1 for s in sides):
        raise ValueError(f"scales must be positive integers, got {spec!r}")
    return (*sides, False)


def scale_bounds(spec: str) -> tuple[int, int]:
    """The smallest and largest side of a scales spec."""
    parsed = parse_scales(spec)
    sides = parsed[:2] if parsed[-1] else parsed[:-1]
    return min(sides), max(sides)


def readable_photos(paths: Sequence[str | Path]) -> list[Path]:
    """The photos among ``paths`` whose header PIL can read (an unreadable one is named in
    a ``UserWarning``).

    Raises
    ------
    ValueError
        If none is readable.
    """
    from PIL import Image

    ok, bad = [], []
    for p in map(Path, paths):
        try:
            with Image.open(p) as img:
                if img.size[0] < 1 or img.size[1] < 1:
                    raise ValueError("empty image")
            ok.append(p)
        except Exception as exc:  # PIL raises several types for unreadable files
            bad.append(f"{p} ({type(exc).__name__})")
    if not ok:
        where = f"{Path(paths[0]).parent}" if len(paths) else "the photos given"
        raise ValueError(
            f"no readable image among the {len(paths)} training photo(s) of {where}"
            + (f" (e.g. {bad[0]})" if bad else "")
        )
    if bad:
        warnings.warn(
            f"skipped {len(bad)} unreadable training photo(s): {', '.join(bad[:5])}"
            + (" …" if len(bad) > 5 else ""),
            UserWarning,
            stacklevel=2,
        )
    return ok


@dataclass(frozen=True)
class Draw:
    """What sample ``g`` is: photo index, side, flip, top-left corner of the crop."""

    photo: int
    side: int
    flip: bool
    top: int
    left: int


class PhotoCrops(Dataset):
    """Sample ``g`` -> a random ``crop``×``crop`` crop (network input space, ``(3, crop,
    crop)``) of a photo resized to a random side, flipped at random.

    Parameters
    ----------
    paths : the photos (each must be readable: :func:`readable_photos`).
    convention : the network's :class:`~cnninv.data.convention.InputConvention`.
    crop : side of the crops (px).
    scales : sides the photos are resized to (:func:`parse_scales`), each at least ``crop``.
    flip : draw horizontal flips.
    seed : the run's seed.
    cache_size : decoded photos kept per process.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        convention,
        crop: int,
        scales: str = "224",
        *,
        flip: bool = True,
        seed: int = 0,
        cache_size: int = 256,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("no training photos")
        self.convention = convention
        self.crop = check_positive_int(crop, "crop")
        self.scales = parse_scales(scales)
        lo, self.max_side = scale_bounds(scales)
        if lo < crop:
            raise ValueError(f"every scale must be at least crop={crop}, got {scales!r}")
        self.flip = bool(flip)
        self.seed = int(seed)
        self.cache_size = check_positive_int(cache_size, "cache_size")
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:  # samples are drawn by index; any index is valid
        return 2**62

    def draw(self, index: int) -> Draw:
        """The photo, side, flip and position of sample ``index`` (from ``(seed, index)``)."""
        rng = np.random.default_rng([self.seed & (2**63 - 1), int(index)])
        photo = int(rng.integers(len(self.paths)))
        if self.scales[-1]:
            side = int(rng.integers(self.scales[0], self.scales[1] + 1))
        else:
            sides = self.scales[:-1]
            side = int(sides[int(rng.integers(len(sides)))])
        flip = bool(rng.random() < 0.5) if self.flip else False
        top = int(rng.integers(side - self.crop + 1))
        left = int(rng.integers(side - self.crop + 1))
        return Draw(photo, side, flip, top, left)

    def photo(self, i: int) -> np.ndarray:
        """Photo ``i`` as uint8 RGB ``(H, W, 3)``, shrunk so that its shorter side is at most
        the largest scale (cached)."""
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        from PIL import Image

        path = self.paths[i]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                w, h = img.size
                f = self.max_side / min(w, h)
                if f < 1:
                    size = (max(1, round(w * f)), max(1, round(h * f)))
                    img = img.resize(size, Image.Resampling.BILINEAR)
                arr = np.asarray(img, dtype=np.uint8).copy()
        except Exception as exc:  # PIL raises several types for a damaged file
            raise ValueError(f"cannot read training photo {path} ({exc})") from None
        self._cache[i] = arr
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return arr

    def __getitem__(self, index: int) -> torch.Tensor:
        from PIL import Image

        d = self.draw(index)
        img = Image.fromarray(self.photo(d.photo)).resize(
            (d.side, d.side), Image.Resampling.BILINEAR
        )
        arr = np.asarray(img, dtype=np.float32)[d.top : d.top + self.crop]
        arr = arr[:, d.left : d.left + self.crop]
        if d.flip:
            arr = arr[:, ::-1]
        rgb = torch.from_numpy(arr.copy() / np.float32(255.0)).permute(2, 0, 1)
        return self.convention.to_input(rgb)


class StepSampler(Sampler[int]):
    """The sample indices of training steps ``start`` … ``stop - 1`` that process ``rank``
    of ``world`` handles: step ``t`` is samples ``t·batch`` … ``t·batch + batch - 1``,
    split in ``world`` equal consecutive shares."""

    def __init__(self, start: int, stop: int, batch: int, *, rank: int = 0, world: int = 1):
        check_positive_int(batch, "batch")
        check_positive_int(world, "world")
        if batch % world:
            raise ValueError(
                f"batch ({batch}) must be a multiple of the number of processes ({world})"
            )
        if not 0 <= rank < world:
            raise ValueError(f"rank must be in [0, {world}), got {rank}")
        self.start, self.stop, self.batch = int(start), int(stop), batch
        self.rank, self.world = rank, world
        self.per_rank = batch // world

    def __iter__(self) -> Iterator[int]:
        for t in range(self.start, self.stop):
            base = t * self.batch + self.rank * self.per_rank
            yield from range(base, base + self.per_rank)

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.per_rank
