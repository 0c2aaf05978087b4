r"""Input conventions: how an RGB photo in [0, 1] becomes a network's input, and back.

A network is trained on inputs prepared one way (channel order, scale, mean, std); the same
preparation must be applied to every photo it analyses, and undone to show a reconstruction.
:class:`InputConvention` is that preparation; :data:`CAFFE_BGR` (the Caffe / Keras VGG16
weights) and :data:`TORCHVISION_RGB` are the two every ImageNet network uses.

>>> import torch
>>> rgb = torch.rand(2, 3, 4, 4)
>>> x = CAFFE_BGR.to_input(rgb)          # BGR, 0-255, Caffe mean subtracted
>>> torch.allclose(CAFFE_BGR.to_rgb(x), rgb, atol=1e-5)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "CAFFE_BGR",
    "PLAIN_RGB",
    "TORCHVISION_RGB",
    "InputConvention",
    "convention_from_options",
]


@dataclass(frozen=True)
class InputConvention:
    """How an RGB image in :math:`[0, 1]` becomes the network's input.

    ``x[c] = (scale * image[order[c]] - mean[c]) / std[c]``: the channels are put in
    ``channel_order``, multiplied by ``scale``, then normalised per channel. ``mean`` and
    ``std`` are given in the network's channel order (B, G, R for ``"BGR"``).

    Parameters
    ----------
    channel_order : ``"RGB"`` or ``"BGR"``
    scale : float
        1.0 for images in [0, 1], 255.0 for images in [0, 255].
    mean, std : tuple of 3 floats
    image_size : int or (int, int)
        The input size the network was trained at: the side of a square, or ``(H, W)``.
        A square ``(H, H)`` is stored as ``H``, so conventions (and the files that record
        them) stay as they were; :attr:`hw` is always ``(H, W)``.
    """

    channel_order: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    image_size: int | tuple[int, int] = 224

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {self.channel_order!r}")
        if not (isinstance(self.scale, int | float) and math.isfinite(self.scale)) or not (
            self.scale > 0
        ):
            raise ValueError(f"scale must be a positive number, got {self.scale!r}")
        for name in ("mean", "std"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 3 or not all(math.isfinite(v) for v in value):
                raise ValueError(f"{name} must be 3 finite numbers, got {getattr(self, name)!r}")
            object.__setattr__(self, name, value)
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std!r}")
        object.__setattr__(self, "image_size", _image_size(self.image_size))

    @property
    def hw(self) -> tuple[int, int]:
        """The input size as ``(H, W)``."""
        s = self.image_size
        return (s, s) if isinstance(s, int) else s

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (3, 1, 1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return mean, std

    def _check(self, x: torch.Tensor, name: str) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() < 3 or x.shape[-3] != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must have shape (..., 3, H, W), got {shape}")

    def to_input(self, rgb: torch.Tensor) -> torch.Tensor:
        """Network input from RGB images in [0, 1] of shape ``(..., 3, H, W)``."""
        self._check(rgb, "rgb")
        x = rgb.float() if not rgb.is_floating_point() else rgb
        if self.channel_order == "BGR":
            x = x.flip(-3)
        mean, std = self._stats(x)
        return (x * self.scale - mean) / std

    def to_rgb(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_input`: RGB of shape ``(..., 3, H, W)``, not clipped."""
        self._check(x, "x")
        mean, std = self._stats(x)
        rgb = (x * std + mean) / self.scale
        return rgb.flip(-3) if self.channel_order == "BGR" else rgb


def _image_size(value: object) -> int | tuple[int, int]:
    def positive(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    if positive(value):
        return value
    if isinstance(value, tuple | list) and len(value) == 2 and all(positive(v) for v in value):
        h, w = value
        return h if h == w else (h, w)
    raise ValueError(
        f"image_size must be a positive integer or a pair (H, W) of them, got {value!r}"
    )


#: Caffe / Keras VGG16 convention (the embedded ImageNet VGG16 weights).
CAFFE_BGR = InputConvention("BGR", 255.0, (103.939, 116.779, 123.68), (1.0, 1.0, 1.0))
#: torchvision's ImageNet convention.
TORCHVISION_RGB = InputConvention("RGB", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: RGB in [0, 1], no normalisation: the starting point for a model whose convention is unknown.
PLAIN_RGB = InputConvention("RGB", 1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def _numbers(value: object, name: str, count: int | tuple[int, ...]) -> tuple[float, ...]:
    """Numbers from ``"a,b,c"`` or a sequence, with ``count`` (or one of ``count``) of them."""
    counts = (count,) if isinstance(count, int) else count
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace("x", ",").split(",")]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        parts = [value]
    elif isinstance(value, tuple | list):
        parts = list(value)
    else:
        raise ValueError(f"{name} must be numbers separated by commas, got {value!r}")
    try:
        out = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers separated by commas, got {value!r}") from None
    if len(out) not in counts or not all(math.isfinite(v) for v in out):
        want = " or ".join(str(c) for c in counts)
        raise ValueError(f"{name} must be {want} finite number(s), got {value!r}")
    return out


def convention_from_options(
    size: object = None,
    channels: str | None = None,
    value_range: object = None,
    mean: object = None,
    std: object = None,
    *,
    base: InputConvention | None = None,
) -> InputConvention:
    """An :class:`InputConvention` from the command line's flags, each overriding ``base``.

    Parameters
    ----------
    size : ``"H"``, ``"H,W"``, int or (H, W), optional
        ``--size``: the input size images are resized to.
    channels : ``"RGB"`` or ``"BGR"``, optional
        ``--channels``: the channel order the network takes.
    value_range : ``"1"``, ``"255"`` or a positive number, optional
        ``--range``: the value of white (the ``scale`` of the convention).
    mean, std : ``"a,b,c"``, ``"a"`` or numbers, optional
        ``--mean`` / ``--std``: per channel in the network's channel order, after scaling;
        one number means the same for all three channels.
    base : InputConvention, optional
        The model's own convention, if known; :data:`PLAIN_RGB` (RGB in [0, 1], no
        normalisation, 224) otherwise.

    Returns
    -------
    InputConvention

    Raises
    ------
    ValueError
        Naming the flag and the value that is wrong.

    Examples
    --------
    >>> c = convention_from_options("224,160", "BGR", "255", "103.939,116.779,123.68")
    >>> c.hw, c.channel_order, c.scale, c.std
    ((224, 160), 'BGR', 255.0, (1.0, 1.0, 1.0))
    >>> convention_from_options(mean="0.5", std="0.5").mean
    (0.5, 0.5, 0.5)
    """
    conv = PLAIN_RGB if base is None else base
    if not isinstance(conv, InputConvention):
        raise ValueError(f"base must be an InputConvention, got {type(base).__name__}")
    changes: dict[str, object] = {}
    if size is not None:
        hw = _numbers(size, "size", (1, 2))
        if not all(v == int(v) and v >= 1 for v in hw):
            raise ValueError(f"size must be one or two positive integers H[,W], got {size!r}")
        changes["image_size"] = int(hw[0]) if len(hw) == 1 else (int(hw[0]), int(hw[1]))
    if channels is not None:
        order = str(channels).upper()
        if order not in ("RGB", "BGR"):
            raise ValueError(f"channels must be RGB or BGR, got {channels!r}")
        changes["channel_order"] = order
    if value_range is not None:
        (scale,) = _numbers(value_range, "range", 1)
        if scale <= 0:
            raise ValueError(f"range must be a positive number (1 or 255), got {value_range!r}")
        changes["scale"] = scale
    for name, value in (("mean", mean), ("std", std)):
        if value is not None:
            v = _numbers(value, name, (1, 3))
            v = v * 3 if len(v) == 1 else v
            if name == "std" and any(x <= 0 for x in v):
                raise ValueError(f"std must be positive, got {value!r}")
            changes[name] = v
    fields = {
        "channel_order": conv.channel_order,
        "scale": conv.scale,
        "mean": conv.mean,
        "std": conv.std,
        "image_size": conv.image_size,
    }
    return InputConvention(**{**fields, **changes})
