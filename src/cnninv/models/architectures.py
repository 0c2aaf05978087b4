r"""VGG16 and AlexNet with torchvision's state-dict keys and the paper's layer names.

Both networks are written out here (torchvision is not a dependency) with the module
structure of ``torchvision.models.vgg16`` and ``torchvision.models.alexnet``, so a state
dict saved from torchvision (``features.0.weight``, …, ``classifier.6.bias``) loads with
``load_state_dict`` unchanged.

Gilbert et al. (2017) name the layers of VGGNet ``conv(b, c)`` and ``pool(b)``; here they
are ``conv1_1`` … ``conv5_3`` and ``pool1`` … ``pool5``, and AlexNet's are ``conv1`` …
``conv5``, ``pool1``, ``pool2``, ``pool5``. Every convolution is followed by a ReLU named
after it (``relu5_3`` after ``conv5_3``): the activation that Table 2 counts as a "conv"
layer is the output of that ReLU, while the output of the ``Conv2d`` module itself is the
pre-activation :math:`\mathbf W x + b`. The fully connected layers are ``fc6``, ``fc7``,
``fc8`` with ``relu6``, ``relu7``.

The layer names themselves (paper name <-> ``named_modules()`` name) are handled by
:mod:`cnninv.models.layers`.

>>> model = build_model("vgg16")
>>> model.features[28]
Conv2d(512, 512, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
"""

from __future__ import annotations

import torch
from torch import nn

from cnninv.models.layers import block_names, register_architecture

__all__ = ["ALEXNET_LAYERS", "ARCHITECTURES", "VGG16", "VGG16_LAYERS", "AlexNet", "build_model"]

# (out_channels per conv, "M" for a max pool): VGG configuration D.
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
    512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


def _vgg16_layer_map() -> dict[str, str]:
    kinds = []
    for v in _VGG16_CFG:
        kinds += ["pool"] if v == "M" else ["conv", "relu"]
    names = {name: f"features.{i}" for i, name in enumerate(block_names(kinds))}
    names.update(
        {
            "fc6": "classifier.0",
            "relu6": "classifier.1",
            "fc7": "classifier.3",
            "relu7": "classifier.4",
            "fc8": "classifier.6",
        }
    )
    return names


#: Paper name -> qualified module name (as in ``named_modules()``) for :class:`VGG16`,
#: in forward order.
VGG16_LAYERS: dict[str, str] = _vgg16_layer_map()

#: Paper name -> qualified module name for :class:`AlexNet`, in forward order.
ALEXNET_LAYERS: dict[str, str] = {
    "conv1": "features.0",
    "relu1": "features.1",
    "pool1": "features.2",
    "conv2": "features.3",
    "relu2": "features.4",
    "pool2": "features.5",
    "conv3": "features.6",
    "relu3": "features.7",
    "conv4": "features.8",
    "relu4": "features.9",
    "conv5": "features.10",
    "relu5": "features.11",
    "pool5": "features.12",
    "fc6": "classifier.1",
    "relu6": "classifier.2",
    "fc7": "classifier.4",
    "relu7": "classifier.5",
    "fc8": "classifier.6",
}


@register_architecture
class VGG16(nn.Module):
    """VGG16 (Simonyan and Zisserman 2015, configuration D), module layout of torchvision.

    ``features`` holds the 13 convolutions (3×3, padding 1) each followed by a ReLU and
    the 5 max pools (2×2, stride 2); ``avgpool`` is ``AdaptiveAvgPool2d((7, 7))`` (the
    identity at 224×224 input); ``classifier`` is fc6, fc7, fc8 with ReLU and dropout.

    Parameters
    ----------
    num_classes : int
        Outputs of fc8.
    dropout : float
        Dropout probability of the classifier (inactive in ``eval()`` mode).
    """

    layer_map = VGG16_LAYERS

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1), nn.ReLU()]
                in_ch = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))


@register_architecture
class AlexNet(nn.Module):
    """AlexNet in torchvision's single-tower variant (64, 192, 384, 256, 256 filters).

    ``features``: conv1 11×11 stride 4 padding 2, pool1 3×3 stride 2, conv2 5×5 padding 2,
    pool2, conv3–conv5 3×3 padding 1, pool5; ``avgpool`` is ``AdaptiveAvgPool2d((6, 6))``;
    ``classifier`` is fc6, fc7, fc8 with dropout before fc6 and fc7.

    Parameters
    ----------
    num_classes : int
        Outputs of fc8.
    dropout : float
        Dropout probability of the classifier (inactive in ``eval()`` mode).
    """

    layer_map = ALEXNET_LAYERS

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))


#: Architecture name -> class.
ARCHITECTURES: dict[str, type[nn.Module]] = {"vgg16": VGG16, "alexnet": AlexNet}


def build_model(name: str, num_classes: int = 1000) -> nn.Module:
    """A freshly initialised (PyTorch default init) ``"vgg16"`` or ``"alexnet"``.

    Use :func:`cnninv.models.load_network` for learned or seeded Gaussian weights.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`ARCHITECTURES` or ``num_classes`` is not positive.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in ARCHITECTURES:
        raise ValueError(f"name must be one of {sorted(ARCHITECTURES)}, got {name!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return ARCHITECTURES[key](num_classes=num_classes)
