"""Real inputs: photos, their preprocessing for a network (input conventions), the photo
sets the decoders are trained and tested on, audio signals for 1-d networks, and arrays
given as they are."""

from cnninv.data.arrays import inputs_kind, load_array
from cnninv.data.audio import AUDIO_SUFFIXES, Signals, frame_signals, list_audio, load_signals
from cnninv.data.convention import (
    CAFFE_BGR,
    PLAIN_RGB,
    TORCHVISION_RGB,
    InputConvention,
    convention_from_options,
)
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
    "AUDIO_SUFFIXES",
    "CAFFE_BGR",
    "IMAGE_SUFFIXES",
    "PLAIN_RGB",
    "TORCHVISION_RGB",
    "InputConvention",
    "Signals",
    "convention_from_options",
    "default_images",
    "frame_signals",
    "imagenet_label",
    "inputs_kind",
    "list_audio",
    "list_images",
    "load_array",
    "load_images",
    "load_signals",
    "read_photos",
    "to_display",
]
