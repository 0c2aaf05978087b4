"""Back to the image: what-where decoders trained offline, and four inversion methods
(IHT + decoder, decoder, Mahendran & Vedaldi's optimisation, Zeiler & Fergus's
deconvnet), for §4.5, Figure 4, Table 4 (image space) and Figure 5 of Gilbert et al.

* :mod:`~cnninv.inversion.decoder` — the encoder with its pooling switches
  (:func:`encode`), the :class:`Decoder`, and its safetensors files
  (:func:`save_decoder`, :func:`load_decoder`);
* :mod:`~cnninv.inversion.training` — the photos and their held-out split, training
  with checkpoints (:func:`train_decoder`), the cache (:func:`get_decoder`);
* :mod:`~cnninv.inversion.methods` — :func:`invert` and :func:`image_metrics`.
"""

from cnninv.inversion.decoder import (
    Decoder,
    DecoderInfo,
    Encoding,
    encode,
    encoder_fingerprint,
    load_decoder,
    pool_channels,
    save_decoder,
    vgg_layer_names,
)
from cnninv.inversion.methods import (
    FILTERS,
    METHODS,
    Inversion,
    OptimizeOptions,
    deconvnet,
    iht_activation,
    image_metrics,
    invert,
    random_activation,
)
from cnninv.inversion.training import (
    HELD_OUT_RULE,
    QUICK_TRAINING,
    PhotoSplit,
    TrainConfig,
    TrainResult,
    cache_dir,
    decoder_path,
    get_decoder,
    held_out_photos,
    photo_split,
    train_decoder,
)

__all__ = [
    "FILTERS",
    "HELD_OUT_RULE",
    "METHODS",
    "QUICK_TRAINING",
    "Decoder",
    "DecoderInfo",
    "Encoding",
    "Inversion",
    "OptimizeOptions",
    "PhotoSplit",
    "TrainConfig",
    "TrainResult",
    "cache_dir",
    "decoder_path",
    "deconvnet",
    "encode",
    "encoder_fingerprint",
    "get_decoder",
    "held_out_photos",
    "iht_activation",
    "image_metrics",
    "invert",
    "load_decoder",
    "photo_split",
    "pool_channels",
    "random_activation",
    "save_decoder",
    "train_decoder",
    "vgg_layer_names",
]
