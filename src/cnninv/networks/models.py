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

>>> model = build_model("vgg16")
>>> named_layer(model, "conv5_2")
Conv2d(512, 512, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
>>> qualified_name(model, "relu5_3"), qualified_name(model, "pool5")
('features.29', 'features.30')
>>> layer_names(model)[:4]
['conv1_1', 'relu1_1', 'conv1_2', 'relu1_2']
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "ALEXNET_LAYERS",
    "ARCHITECTURES",
    "PAPER_TABLE2_VGG16",
    "VGG16",
    "VGG16_LAYERS",
    "AlexNet",
    "build_model",
    "conv_layer_names",
    "layer_names",
    "named_layer",
    "named_layers",
    "qualified_name",
    "sparsity_layers",
]

# (out_channels per conv, "M" for a max pool): VGG configuration D.
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
    512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


def _vgg16_layer_map() -> dict[str, str]:
    names: dict[str, str] = {}
    idx, block, conv = 0, 1, 1
    for v in _VGG16_CFG:
        if v == "M":
            names[f"pool{block}"] = f"features.{idx}"
            idx += 1
            block, conv = block + 1, 1
        else:
            names[f"conv{block}_{conv}"] = f"features.{idx}"
            names[f"relu{block}_{conv}"] = f"features.{idx + 1}"
            idx += 2
            conv += 1
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

#: Gilbert et al. (2017), Table 2: percentage of non-zeros of VGGNet's activations on
#: the ILSVRC 2012 validation set, "conv" layers counted after their ReLU.
PAPER_TABLE2_VGG16: dict[str, float] = {
    "conv1_1": 49.1, "conv1_2": 69.7, "pool1": 80.8,
    "conv2_1": 67.4, "conv2_2": 49.7, "pool2": 70.7,
    "conv3_1": 53.4, "conv3_2": 51.9, "conv3_3": 28.7, "pool3": 45.9,
    "conv4_1": 35.6, "conv4_2": 29.6, "conv4_3": 12.6, "pool4": 23.1,
    "conv5_1": 23.9, "conv5_2": 20.6, "conv5_3": 7.3, "pool5": 13.1,
}  # fmt: skip


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

    Use :func:`cnninv.networks.load_network` for learned or seeded Gaussian weights.

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


def _structure(module: nn.Module) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Types and conv/linear shapes of the ``features`` and ``classifier`` children."""
    out = []
    for part in ("features", "classifier"):
        seq = getattr(module, part, None)
        if not isinstance(seq, nn.Sequential):
            return ()
        for child in seq:
            shape = tuple(child.weight.shape) if isinstance(child, nn.Conv2d | nn.Linear) else ()
            # the number of classes (fc8's outputs) may differ
            if isinstance(child, nn.Linear) and child is seq[-1]:
                shape = shape[1:]
            out.append((type(child).__name__, shape))
    return tuple(out)


_REFERENCE_STRUCTURES: dict[tuple, dict[str, str]] = {}


def _present(model: nn.Module, mapping: dict[str, str]) -> dict[str, str]:
    """The entries of ``mapping`` whose module exists (the classifier may be left out)."""
    names = {n for n, _ in model.named_modules()}
    return {k: v for k, v in mapping.items() if v in names}


def _layer_map(model: nn.Module) -> dict[str, str]:
    """The paper-name map of ``model``: from its class, or (for e.g. a torchvision model)
    from a module structure identical to VGG16's or AlexNet's."""
    mapping = getattr(model, "layer_map", None)
    if isinstance(mapping, dict):
        return _present(model, mapping)
    if not _REFERENCE_STRUCTURES:
        with torch.device("meta"):  # shapes only, no memory, no init cost
            for cls in ARCHITECTURES.values():
                _REFERENCE_STRUCTURES[_structure(cls())] = cls.layer_map
    structure = _structure(model)
    found = _REFERENCE_STRUCTURES.get(structure) if structure else None
    if found is None:
        raise ValueError(
            f"model of type {type(model).__name__} has no paper layer names: only VGG16 and "
            "AlexNet (ours or torchvision's) do; use qualified names from named_modules()"
        )
    return _present(model, found)


def layer_names(model: nn.Module) -> list[str]:
    """The paper's layer names of ``model`` (VGG16 or AlexNet) in forward order."""
    return list(_layer_map(model))


def conv_layer_names(model: nn.Module) -> list[str]:
    """The convolution layers' paper names (``conv1_1`` … ``conv5_3`` for VGG16)."""
    return [n for n in _layer_map(model) if n.startswith("conv")]


def qualified_name(model: nn.Module, name: str) -> str:
    """The ``named_modules()`` name (e.g. ``"features.28"``) of paper layer ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not a layer of ``model``.
    """
    mapping = _layer_map(model)
    if name not in mapping:
        raise ValueError(f"name {name!r} is not a layer of this network; known: {list(mapping)}")
    return mapping[name]


def named_layer(model: nn.Module, name: str) -> nn.Module:
    """The module of paper layer ``name`` (``"conv5_2"`` -> its ``nn.Conv2d``,
    ``"relu5_2"`` -> the ReLU after it, ``"pool4"`` -> the ``nn.MaxPool2d``)."""
    return model.get_submodule(qualified_name(model, name))


def named_layers(model: nn.Module, names: Sequence[str] | None = None) -> dict[str, nn.Module]:
    """Paper name -> module for ``names`` (all layers, in forward order, when None)."""
    if names is None:
        names = layer_names(model)
    return {n: named_layer(model, n) for n in names}


def sparsity_layers(model: nn.Module) -> list[tuple[str, str]]:
    """Table 2's layers as ``(label, layer)`` pairs in forward order: each convolution
    labelled by its name but measured at the ReLU after it, then each pooling layer.

    >>> sparsity_layers(build_model("alexnet"))[:3]
    [('conv1', 'relu1'), ('pool1', 'pool1'), ('conv2', 'relu2')]
    """
    out = []
    for n in _layer_map(model):
        if n.startswith("conv"):
            out.append((n, "relu" + n[len("conv") :]))
        elif n.startswith("pool"):
            out.append((n, n))
    return out
