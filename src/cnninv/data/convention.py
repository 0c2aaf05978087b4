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

__all__ = ["CAFFE_BGR", "TORCHVISION_RGB", "InputConvention"]


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
    image_size : int
        Side of the square input the network was trained at.
    """

    channel_order: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    image_size: int = 224

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
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int):
            raise ValueError(f"image_size must be a positive integer, got {self.image_size!r}")
        if self.image_size < 1:
            raise ValueError(f"image_size must be a positive integer, got {self.image_size!r}")

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


#: Caffe / Keras VGG16 convention (the embedded ImageNet VGG16 weights).
CAFFE_BGR = InputConvention("BGR", 255.0, (103.939, 116.779, 123.68), (1.0, 1.0, 1.0))
#: torchvision's ImageNet convention.
TORCHVISION_RGB = InputConvention("RGB", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
