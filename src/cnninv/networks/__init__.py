"""VGG16 and AlexNet with the paper's layer names, their weights, and hooks on activations.

>>> from cnninv.networks import load_network, capture
>>> net = load_network("vgg16", "random", seed=0)
>>> net.name, net.weights
('vgg16', 'random')
"""

from cnninv.networks.activations import (
    capture,
    conv_layer,
    conv_operator,
    layer_input_size,
    nonzero_percent,
)
from cnninv.networks.models import (
    ALEXNET_LAYERS,
    ARCHITECTURES,
    PAPER_TABLE2_VGG16,
    VGG16,
    VGG16_LAYERS,
    AlexNet,
    build_model,
    conv_layer_names,
    layer_names,
    named_layer,
    named_layers,
    qualified_name,
    sparsity_layers,
)
from cnninv.networks.weights import (
    CAFFE_BGR,
    TORCHVISION_RGB,
    InputConvention,
    LoadedNetwork,
    embedded_vgg16_path,
    load_network,
    read_weights,
)

__all__ = [
    "ALEXNET_LAYERS",
    "ARCHITECTURES",
    "CAFFE_BGR",
    "PAPER_TABLE2_VGG16",
    "TORCHVISION_RGB",
    "VGG16",
    "VGG16_LAYERS",
    "AlexNet",
    "InputConvention",
    "LoadedNetwork",
    "build_model",
    "capture",
    "conv_layer",
    "conv_layer_names",
    "conv_operator",
    "embedded_vgg16_path",
    "layer_input_size",
    "layer_names",
    "load_network",
    "named_layer",
    "named_layers",
    "nonzero_percent",
    "qualified_name",
    "read_weights",
    "sparsity_layers",
]
