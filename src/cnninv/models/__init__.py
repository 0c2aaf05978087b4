"""Networks: VGG16 and AlexNet with the paper's layer names, their weights, and the
activations of any model.

* :mod:`~cnninv.models.architectures` — VGG16 and AlexNet (torchvision's state-dict keys);
* :mod:`~cnninv.models.layers` — layer names (paper name <-> ``named_modules()`` name);
* :mod:`~cnninv.models.weights` — learned weights from files, or seeded Gaussian filters;
* :mod:`~cnninv.models.activations` — activations of any ``nn.Module`` at named layers,
  and a conv layer as the operator :math:`\\mathbf W`.

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
from cnninv.models.weights import (
    LoadedNetwork,
    embedded_vgg16_path,
    is_weights_file,
    load_network,
    read_weights,
)

__all__ = [
    "ALEXNET_LAYERS",
    "ARCHITECTURES",
    "VGG16",
    "VGG16_LAYERS",
    "AlexNet",
    "LoadedNetwork",
    "activation_name",
    "block_names",
    "build_model",
    "capture",
    "conv_layer",
    "conv_layer_names",
    "conv_operator",
    "embedded_vgg16_path",
    "is_weights_file",
    "layer_input_size",
    "layer_map",
    "layer_names",
    "load_network",
    "named_layer",
    "named_layers",
    "next_conv",
    "nonzero_percent",
    "pool_conv_pairs",
    "pool_number",
    "qualified_name",
    "read_weights",
    "sparsity_layers",
]
