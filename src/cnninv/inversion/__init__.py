"""Back to the image: what-where decoders trained offline, and four inversion methods
(IHT + decoder, decoder, Mahendran & Vedaldi's optimisation, Zeiler & Fergus's
deconvnet), for §4.5, Figure 4, Table 4 (image space), Figure 5 of Gilbert et al., and
the switch experiment.

* :mod:`~cnninv.inversion.decoder` — the encoder with its pooling switches
  (:func:`encode`), the :class:`Decoder`, and its safetensors files
  (:func:`save_decoder`, :func:`load_decoder`);
* :mod:`~cnninv.inversion.crops` — the training crops, streamed by DataLoader workers;
* :mod:`~cnninv.inversion.training` — training with checkpoints, devices, mixed precision
  and DDP (:func:`train_decoder`), the cache (:func:`get_decoder`, :func:`get_decoders`);
  the photos are those of :mod:`cnninv.data.photos`;
* :mod:`~cnninv.inversion.shipping` — the decoders shipped with cnninv and their manifest;
* :mod:`~cnninv.inversion.methods` — :func:`invert`, Table 4's activations and
  reconstructions, the switch conditions, and :func:`image_metrics`.
"""

from cnninv.inversion.decoder import (
    Decoder,
    DecoderInfo,
    Encoding,
    decoded_pools,
    encode,
    encoder_fingerprint,
    layer_index,
    load_decoder,
    pool_channels,
    save_decoder,
)
from cnninv.inversion.methods import (
    IMAGE_ERROR_DEFINITION,
    METHODS,
    RECONSTRUCTIONS,
    SWITCH_CONDITIONS,
    VARIANTS,
    Inversion,
    OptimizeOptions,
    activation_stats,
    deconvnet,
    iht_activation,
    image_metrics,
    invert,
    optimize_image,
    png_base64,
    random_activation,
    switch_information,
    table4_activations,
    table4_reconstructions,
)
from cnninv.inversion.training import (
    QUICK_TRAINING,
    TrainConfig,
    TrainResult,
    cache_dir,
    decoder_path,
    get_decoder,
    get_decoders,
    train_decoder,
)

__all__ = [
    "IMAGE_ERROR_DEFINITION",
    "METHODS",
    "QUICK_TRAINING",
    "RECONSTRUCTIONS",
    "SWITCH_CONDITIONS",
    "VARIANTS",
    "Decoder",
    "DecoderInfo",
    "Encoding",
    "Inversion",
    "OptimizeOptions",
    "TrainConfig",
    "TrainResult",
    "activation_stats",
    "cache_dir",
    "decoded_pools",
    "decoder_path",
    "deconvnet",
    "encode",
    "encoder_fingerprint",
    "get_decoder",
    "get_decoders",
    "iht_activation",
    "image_metrics",
    "invert",
    "layer_index",
    "load_decoder",
    "optimize_image",
    "png_base64",
    "pool_channels",
    "random_activation",
    "save_decoder",
    "switch_information",
    "table4_activations",
    "table4_reconstructions",
    "train_decoder",
]
