r"""Layer names: the one module that knows them.

Gilbert et al. (2017) name VGGNet's layers ``conv(b, c)`` and ``pool(b)``; here they are
``conv1_1`` … ``conv5_3``, ``relu1_1`` … (the ReLU after each convolution: Table 2 counts
a "conv" layer at its ReLU), ``pool1`` … ``pool5``, and ``fc6``–``fc8``; AlexNet's are
``conv1`` … ``conv5``, ``pool1``, ``pool2``, ``pool5``. This module maps them to the
qualified names of ``named_modules()`` (``"features.28"``), derives the same block naming
for any VGG-style stack (:func:`block_names`), and parses ``"poolN"``
(:func:`pool_number`). The maps of VGG16 and AlexNet are data of their classes
(:mod:`cnninv.models.architectures`); a torchvision VGG16/AlexNet is recognised by its
module structure.

>>> from cnninv.models.architectures import build_model
>>> model = build_model("vgg16")
>>> named_layer(model, "conv5_2")
Conv2d(512, 512, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
>>> qualified_name(model, "relu5_3"), qualified_name(model, "pool5")
('features.29', 'features.30')
>>> layer_names(model)[:4]
['conv1_1', 'relu1_1', 'conv1_2', 'relu1_2']
>>> block_names(["conv", "relu", "conv", "relu", "pool", "conv", "relu"])
['conv1_1', 'relu1_1', 'conv1_2', 'relu1_2', 'pool1', 'conv2_1', 'relu2_1']
>>> pool_number("pool4"), activation_name("conv5_1")
(4, 'relu5_1')
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "activation_name",
    "block_names",
    "conv_layer_names",
    "layer_map",
    "layer_names",
    "named_layer",
    "named_layers",
    "next_conv",
    "pool_conv_pairs",
    "pool_number",
    "qualified_name",
    "register_architecture",
    "sparsity_layers",
]

_POOL = re.compile(r"^pool([1-9][0-9]*)$")


def pool_number(name: str) -> int:
    """``N`` of a pooling layer's name ``"poolN"`` (1-based).

    Raises
    ------
    ValueError
        If ``name`` is not of the form ``poolN`` with ``N >= 1``.
    """
    m = _POOL.match(name) if isinstance(name, str) else None
    if m is None:
        raise ValueError(f"layer must be a pooling layer pool1, pool2, …, got {name!r}")
    return int(m.group(1))


def activation_name(conv_name: str) -> str:
    """The name of the ReLU after convolution ``conv_name`` (``conv5_1`` -> ``relu5_1``)."""
    if not isinstance(conv_name, str) or not conv_name.startswith("conv"):
        raise ValueError(f"conv_name must be a convolution's name (convX…), got {conv_name!r}")
    return "relu" + conv_name[len("conv") :]


def block_names(kinds: Sequence[str] | nn.Sequential) -> list[str]:
    """VGG's block naming of a stack of layers: ``conv{b}_{c}``, ``relu{b}_{c}`` (the ReLU
    after ``conv{b}_{c}``) and ``pool{b}``, the block ``b`` ending at each pool.

    ``kinds`` is a list of ``"conv"``, ``"relu"``, ``"pool"``, or an ``nn.Sequential`` of
    ``Conv2d``, ``ReLU`` and ``MaxPool2d`` modules.
    """
    if isinstance(kinds, nn.Sequential):
        kinds = [_kind(m) for m in kinds]
    names, block, conv = [], 1, 1
    for kind in kinds:
        if kind == "pool":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        elif kind == "conv":
            names.append(f"conv{block}_{conv}")
        elif kind == "relu":
            names.append(f"relu{block}_{conv}")
            conv += 1
        else:
            raise ValueError(f"kinds must be 'conv', 'relu' or 'pool', got {kind!r}")
    return names


def _kind(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.MaxPool2d):
        return "pool"
    raise ValueError(f"{type(module).__name__} is not a layer of a VGG-style stack")


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


#: Architectures whose paper names a model of the same module structure gets (filled by
#: :func:`register_architecture`; the structures are computed on first use).
_REFERENCE_CLASSES: list[type[nn.Module]] = []
_REFERENCE_STRUCTURES: dict[tuple, dict[str, str]] = {}


def register_architecture(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: a model of ``cls``'s module structure (e.g. torchvision's VGG16)
    gets ``cls.layer_map``'s paper names."""
    _REFERENCE_CLASSES.append(cls)
    _REFERENCE_STRUCTURES.clear()
    return cls


def _present(model: nn.Module, mapping: dict[str, str]) -> dict[str, str]:
    """The entries of ``mapping`` whose module exists (the classifier may be left out)."""
    names = {n for n, _ in model.named_modules()}
    return {k: v for k, v in mapping.items() if v in names}


def layer_map(model: nn.Module) -> dict[str, str]:
    """Paper name -> qualified module name of ``model``, in forward order: from its class's
    ``layer_map``, or (for e.g. a torchvision model) from a module structure identical to
    VGG16's or AlexNet's.

    Raises
    ------
    ValueError
        If the model has no paper names.
    """
    mapping = getattr(model, "layer_map", None)
    if isinstance(mapping, dict):
        return _present(model, mapping)
    if not _REFERENCE_STRUCTURES:
        with torch.device("meta"):  # shapes only, no memory, no init cost
            for cls in _REFERENCE_CLASSES:
                _REFERENCE_STRUCTURES[_structure(cls())] = cls.layer_map
    structure = _structure(model)
    found = _REFERENCE_STRUCTURES.get(structure) if structure else None
    if found is not None:
        return _present(model, found)
    stack = model if isinstance(model, nn.Sequential) else getattr(model, "features", None)
    if isinstance(stack, nn.Sequential) and len(stack):
        prefix = "" if stack is model else "features."
        try:
            return {n: f"{prefix}{i}" for i, n in enumerate(block_names(stack))}
        except ValueError:
            pass
    raise ValueError(
        f"model of type {type(model).__name__} has no paper layer names: only VGG16, AlexNet "
        "(ours or torchvision's) and VGG-style stacks of Conv2d, ReLU and MaxPool2d do; use "
        "qualified names from named_modules()"
    )


def layer_names(model: nn.Module) -> list[str]:
    """The paper's layer names of ``model`` (VGG16 or AlexNet) in forward order."""
    return list(layer_map(model))


def conv_layer_names(model: nn.Module) -> list[str]:
    """The convolution layers' paper names (``conv1_1`` … ``conv5_3`` for VGG16)."""
    return [n for n in layer_map(model) if n.startswith("conv")]


def qualified_name(model: nn.Module, name: str) -> str:
    """The ``named_modules()`` name (e.g. ``"features.28"``) of paper layer ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not a layer of ``model``.
    """
    mapping = layer_map(model)
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

    >>> from cnninv.models.architectures import build_model
    >>> sparsity_layers(build_model("alexnet"))[:3]
    [('conv1', 'relu1'), ('pool1', 'pool1'), ('conv2', 'relu2')]
    """
    out = []
    for n in layer_map(model):
        if n.startswith("conv"):
            out.append((n, activation_name(n)))
        elif n.startswith("pool"):
            out.append((n, n))
    return out


def next_conv(model: nn.Module, layer: str) -> tuple[str, nn.Module, nn.Module]:
    """The first convolution after pooling layer ``layer`` and the ReLU after it, as
    ``(conv name, conv module, ReLU module)`` (VGG16: ``pool4`` -> ``conv5_1``, ``relu5_1``).

    Raises
    ------
    ValueError
        If ``layer`` is not a pooling layer of the model or no convolution follows it
        (VGG16's pool5: the classifier does).
    """
    pool_number(layer)
    names = layer_names(model)
    if layer not in names:
        pools = [n for n in names if n.startswith("pool")]
        raise ValueError(f"layer {layer!r} is not a pooling layer of this network ({pools})")
    conv = next((n for n in names[names.index(layer) + 1 :] if n.startswith("conv")), None)
    if conv is None:
        raise ValueError(
            f"no convolution follows {layer} in the network's features (the classifier does): "
            "IHT needs the next convolution; use a pooling layer before the last convolution"
        )
    return conv, named_layer(model, conv), named_layer(model, activation_name(conv))


def pool_conv_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """Each pooling layer paired with the first convolution after it, in forward order
    (``("pool1", "conv2_1")`` … in VGG16; pool5 has none and is left out)."""
    names = layer_names(model)
    pairs = []
    for i, name in enumerate(names):
        if name.startswith("pool"):
            nxt = next((n for n in names[i + 1 :] if n.startswith("conv")), None)
            if nxt is not None:
                pairs.append((name, nxt))
    return pairs
