"""Networks: VGG16 and AlexNet with the paper's layer names, their weights, and the
activations of any model.

* :mod:`~cnninv.models.architectures` — VGG16 and AlexNet (torchvision's state-dict keys);
* :mod:`~cnninv.models.layers` — layer names (paper name <-> ``named_modules()`` name);
* :mod:`~cnninv.models.weights` — learned weights from files, or seeded Gaussian filters;
* :mod:`~cnninv.models.activations` — activations of any ``nn.Module`` at named layers,
  and a conv layer as the operator :math:`\\mathbf W`;
* :mod:`~cnninv.models.loaders` — the model a user brings (``package.module:callable``,
  TorchScript, ONNX through onnx2torch, Keras ``.h5``) as a torch module, with provenance;
* :mod:`~cnninv.models.keras` — Keras HDF5 files (Keras 2 and 3 layouts), VGG-style
  networks built from them;
* :mod:`~cnninv.models.inputs` — the input a model takes (signal layouts, input checks).

>>> from cnninv.models import load_network
>>> net = load_network("vgg16", "random", seed=0)
>>> net.name, net.weights
('vgg16', 'random')
"""

from cnninv.models.activations import (
    capture,
    conv_layer,
    conv_operator,
    layer_input_size,
    nonzero_percent,
)
from cnninv.models.architectures import (
    ALEXNET_LAYERS,
    ARCHITECTURES,
    VGG16,
    VGG16_LAYERS,
    AlexNet,
    build_model,
)
from cnninv.models.inputs import (
    SignalLayout,
    check_inputs,
    first_conv,
    guess_input_kind,
    signal_layout,
    wanted_input,
)
from cnninv.models.keras import KerasFile, KerasNetwork, build_vgg, read_keras
from cnninv.models.layers import (
    activation_name,
    block_names,
    conv_layer_names,
    layer_map,
    layer_names,
    named_layer,
    named_layers,
    next_conv,
    pool_conv_pairs,
    pool_number,
    qualified_name,
    sparsity_layers,
)
from cnninv.models.loaders import KINDS, LoadedModel, file_sha256, load_model, parse_model_args
from cnninv.models.weights import (
    LoadedNetwork,
    embedded_vgg16_path,
    is_torchscript,
    is_weights_file,
    load_network,
    read_state_dict,
    read_weights,
)

__all__ = [
    "ALEXNET_LAYERS",
    "ARCHITECTURES",
    "KINDS",
    "VGG16",
    "VGG16_LAYERS",
    "AlexNet",
    "KerasFile",
    "KerasNetwork",
    "LoadedModel",
    "LoadedNetwork",
    "SignalLayout",
    "activation_name",
    "block_names",
    "build_model",
    "build_vgg",
    "capture",
    "check_inputs",
    "conv_layer",
    "conv_layer_names",
    "conv_operator",
    "embedded_vgg16_path",
    "file_sha256",
    "first_conv",
    "guess_input_kind",
    "is_torchscript",
    "is_weights_file",
    "layer_input_size",
    "layer_map",
    "layer_names",
    "load_model",
    "load_network",
    "named_layer",
    "named_layers",
    "next_conv",
    "nonzero_percent",
    "parse_model_args",
    "pool_conv_pairs",
    "pool_number",
    "qualified_name",
    "read_keras",
    "read_state_dict",
    "read_weights",
    "signal_layout",
    "sparsity_layers",
    "wanted_input",
]
