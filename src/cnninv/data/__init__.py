"""Real images: the default ImageNet photos, preprocessing for a network and back."""

from cnninv.data.images import (
    IMAGE_SUFFIXES,
    default_images,
    imagenet_label,
    load_images,
    to_display,
)

__all__ = ["IMAGE_SUFFIXES", "default_images", "imagenet_label", "load_images", "to_display"]
