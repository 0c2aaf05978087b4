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

:class:`EncodedPhotos` is the other way, for photo sets that fit in memory: each photo is
encoded once per side and flip (the whole :math:`S\times S` photo, as the experiments
encode photos), and every crop is cut from the encodings: the image, the activation, and
each pool's switches re-indexed into the crop. The crops then have no border of their own
(a pool4 unit sees 212 px: in a 64 px crop encoded alone, every unit sees the crop's
zero padding, which whole photos do not have), and the encoder runs once per (photo,
side, flip) instead of once per crop.

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
from cnninv.inversion.decoder import encode

__all__ = [
    "Draw",
    "EncodedPhotos",
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


def _block_origins(ph: int) -> np.ndarray:
    """Flat index of the top-left entry of every 2×2 block of a (2ph × 2ph) map."""
    r = np.arange(ph, dtype=np.int64).reshape(ph, 1)
    c = np.arange(ph, dtype=np.int64).reshape(1, ph)
    return (2 * r) * (2 * ph) + 2 * c


class EncodedPhotos:
    """Crops cut from photos encoded once per side and flip (kept in memory).

    Sample ``g`` is drawn as in :class:`PhotoCrops` (photo, side, flip, position), the
    position rounded down to the grid of ``2^N`` pixels so that the crop covers whole
    pooling blocks of every pool. The entry (photo, side, flip) is encoded the first time a
    crop needs it: the image (float16), the activation at ``layer`` (float16) and, for each
    pool, the position of its switch in its 2×2 block (``dy·2 + dx``, uint8).

    Parameters
    ----------
    paths, convention, crop, flip, seed : as :class:`PhotoCrops`.
    scales : a list of sides (``"192,224,288"``; a range is refused: each side is an
        entry in memory).
    model, layer, device : the encoder.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        convention,
        crop: int,
        scales: str,
        *,
        model,
        layer: str,
        device: str | torch.device = "cpu",
        flip: bool = True,
        seed: int = 0,
    ) -> None:
        if parse_scales(scales)[-1]:
            raise ValueError(
                f"encoding whole photos needs a list of sides, not the range {scales!r}"
            )
        self.reader = PhotoCrops(paths, convention, crop, scales, flip=flip, seed=seed)
        self.model, self.layer, self.device = model, layer, torch.device(device)
        enc = encode(model, torch.zeros(1, 3, crop, crop, device=self.device), layer)
        self.n_pools = len(enc.switches)
        self.unit = 2**self.n_pools
        if crop % self.unit:
            raise ValueError(f"crop ({crop}) must be a multiple of {self.unit} for {layer}")
        self._memo: dict[tuple[int, int, bool], tuple] = {}

    @property
    def crop(self) -> int:
        return self.reader.crop

    def entry_bytes(self, side: int) -> int:
        """Memory of one encoded photo of side ``side`` (bytes)."""
        enc = encode(self.model, torch.zeros(1, 3, side, side, device=self.device), self.layer)
        return 2 * 3 * side * side + 2 * enc.f.numel() + sum(s.numel() for s in enc.switches)

    def draw(self, index: int) -> Draw:
        """As :meth:`PhotoCrops.draw`, the position on the ``2^N`` grid."""
        d = self.reader.draw(index)
        u = self.unit
        return Draw(d.photo, d.side, d.flip, u * (d.top // u), u * (d.left // u))

    def _encoded(self, photo: int, side: int, flip: bool) -> tuple:
        key = (photo, side, flip)
        if key not in self._memo:
            from PIL import Image

            img = Image.fromarray(self.reader.photo(photo)).resize(
                (side, side), Image.Resampling.BILINEAR
            )
            arr = np.asarray(img, dtype=np.float32)
            if flip:
                arr = arr[:, ::-1]
            rgb = torch.from_numpy(arr.copy() / np.float32(255.0)).permute(2, 0, 1)
            x = self.reader.convention.to_input(rgb)[None].to(self.device)
            enc = encode(self.model, x, self.layer)
            offsets = []
            for sw, (_, w) in zip(enc.switches, enc.sizes, strict=True):
                rows, cols = sw[0] // w, sw[0] % w
                offsets.append(((rows % 2) * 2 + cols % 2).to(torch.uint8).cpu().numpy())
            self._memo[key] = (x[0].cpu().half().numpy(), enc.f[0].cpu().half().numpy(), offsets)
        return self._memo[key]

    def batch(
        self, indices: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[tuple[int, int]]]:
        """The crops of samples ``indices``: images, activations, switches (indices into
        each crop's pre-pool maps, as ``max_pool2d`` returns them) and the map sizes."""
        crop, unit = self.crop, self.unit
        xs: list[np.ndarray] = []
        fs: list[np.ndarray] = []
        sws: list[list[np.ndarray]] = [[] for _ in range(self.n_pools)]
        for g in indices:
            d = self.draw(g)
            x, f, offsets = self._encoded(d.photo, d.side, d.flip)
            top, left = d.top, d.left
            xs.append(x[:, top : top + crop, left : left + crop])
            c, t, l_ = crop // unit, top // unit, left // unit
            fs.append(f[:, t : t + c, l_ : l_ + c])
            for level in range(self.n_pools):
                step = 2 ** (level + 1)  # pool level+1's map is 1/step of the image
                ph, t2, l2 = crop // step, top // step, left // step
                off = offsets[level][:, t2 : t2 + ph, l2 : l2 + ph]
                # flat index in the (2ph x 2ph) pre-pool map: (2r + dy)·2ph + 2c + dx
                delta = (off >> 1).astype(np.int64) * (2 * ph) + (off & 1)
                sws[level].append(_block_origins(ph) + delta)
        sizes = [(crop // 2**level, crop // 2**level) for level in range(self.n_pools)]
        return (
            torch.from_numpy(np.stack(xs)).float(),
            torch.from_numpy(np.stack(fs)).float(),
            [torch.from_numpy(np.stack(s)) for s in sws],
            sizes,
        )
