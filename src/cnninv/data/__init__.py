"""Real inputs: photos, their preprocessing for a network (input conventions), and the
photo sets the decoders are trained and tested on."""

from cnninv.data.convention import CAFFE_BGR, TORCHVISION_RGB, InputConvention
from cnninv.data.images import (
    IMAGE_SUFFIXES,
    default_images,
    imagenet_label,
    list_images,
    load_images,
    read_photos,
    to_display,
)

__all__ = [
    "CAFFE_BGR",
    "IMAGE_SUFFIXES",
    "TORCHVISION_RGB",
    "InputConvention",
    "default_images",
    "imagenet_label",
    "list_images",
    "load_images",
    "read_photos",
    "to_display",
]
