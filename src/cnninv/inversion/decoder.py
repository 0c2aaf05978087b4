r"""Decoding networks that map a VGG pooled activation back to an image, with the
encoder's pooling switches ("what-where"), and their safetensors files.

Gilbert et al. (2017), §4.5, project activations into image space with "a pretrained
decoding network as in Zhang *et al.* [2016] […] a stacked 'what-where' autoencoder
[Zhao *et al.*, 2016]". Those Caffe decoders cannot be had offline, so cnninv trains its
own (:mod:`cnninv.inversion.training`) in the same style:

* the encoder is the network itself up to ``poolN`` (VGG16's ``features``), run by
  :func:`encode`, which also returns the *switches* of pool1 … poolN
  (``max_pool2d(..., return_indices=True)``: the "where") and the map sizes;
* the decoder mirrors it, one stage per macro layer, from ``poolN`` down to ``pool1``:
  unpool with that pool's switches (``max_unpool2d``), a 3×3 convolution to the stage's
  width, ``convs - 2`` more 3×3 convolutions at that width, a 3×3 convolution to the
  channels of the layer below (3 at the bottom), ReLU between convolutions and between
  stages; the last output is multiplied by ``output_scale`` so that the decoder predicts
  the network's input (e.g. Caffe BGR, 0–255, mean subtracted).

A decoder file (``.safetensors``) holds the weights (float32, or float16 to halve the
file) and, as metadata, the layer, the architecture (channels, widths, convolutions per
stage, scales), the input convention, a fingerprint of the encoder's convolutions up to
the layer, the SHA-256 of the tensors, and the training record (photos, epochs, held-out
error). :func:`load_decoder` refuses a file that is truncated or not a decoder, whose
tensors do not hash to the recorded value, or whose layer, encoder, convention or tensor
shapes do not match, with a ``ValueError`` that says which.

>>> import torch
>>> from torch import nn
>>> features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
...                          nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
>>> enc = encode(features, torch.randn(2, 3, 16, 16), "pool2")
>>> tuple(enc.f.shape), [tuple(s) for s in enc.sizes]
((2, 8, 4, 4), [(16, 16), (8, 8)])
>>> dec = Decoder(pool_channels(features, "pool2"), widths=(4, 4), output_scale=1.0)
>>> tuple(dec(enc.f, enc.switches, enc.sizes).shape)
(2, 3, 16, 16)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnninv._checks import check_positive_int, make_generator
from cnninv.io import atomic_write
from cnninv.models.layers import block_names, pool_number

__all__ = [
    "FILE_DTYPES",
    "FORMAT",
    "Decoder",
    "DecoderInfo",
    "Encoding",
    "decoded_pools",
    "default_widths",
    "encode",
    "encoder_fingerprint",
    "features_of",
    "layer_index",
    "load_decoder",
    "pool_channels",
    "save_decoder",
    "tensors_sha256",
]

#: Value of the ``format`` metadata key of a cnninv decoder file.
FORMAT = "cnninv.decoder"
FORMAT_VERSION = "1"


# --------------------------------------------------------------------------- the encoder
def features_of(model: nn.Module) -> nn.Sequential:
    """The ``features`` Sequential of a VGG-style model (or the model itself if it is one).

    VGG-style: only ``Conv2d`` (stride 1, odd square kernel, padding ``k // 2``), ``ReLU``
    and ``MaxPool2d`` (2×2, stride 2, no padding), so that every pool halves the map and
    its switches can be undone by ``max_unpool2d``.

    Raises
    ------
    ValueError
        If the model has no such ``features`` (e.g. AlexNet, whose pools overlap).
    """
    features = model if isinstance(model, nn.Sequential) else getattr(model, "features", None)
    if not isinstance(features, nn.Sequential) or len(features) == 0:
        raise ValueError(
            f"model of type {type(model).__name__} has no `features` nn.Sequential: decoders "
            "and the deconvnet need a VGG-style network (VGG16)"
        )
    for i, m in enumerate(features):
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size
            ok = (
                m.stride == (1, 1)
                and k[0] == k[1]
                and k[0] % 2 == 1
                and m.padding == (k[0] // 2, k[1] // 2)
                and m.groups == 1
                and m.dilation == (1, 1)
            )
        elif isinstance(m, nn.ReLU):
            ok = True
        elif isinstance(m, nn.MaxPool2d):
            ok = _pair(m.kernel_size) == (2, 2) and _pair(m.stride) == (2, 2)
            ok = ok and _pair(m.padding) == (0, 0) and _pair(m.dilation) == (1, 1)
            ok = ok and not m.ceil_mode
        else:
            ok = False
        if not ok:
            raise ValueError(
                f"features[{i}] ({m!r}) is not VGG-style (3x3-like 'same' convolutions, ReLU, "
                "2x2/2 max pooling): decoders and the deconvnet support VGG16-like networks only"
            )
    return features


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def layer_index(model: nn.Module, layer: str) -> int:
    """Index in ``features`` of layer ``layer`` (``"pool4"``, ``"conv5_1"``, ``"relu3_3"``),
    the layers named by :func:`cnninv.models.layers.block_names`.

    Raises
    ------
    ValueError
        If ``layer`` is not a layer of the network's ``features``.
    """
    names = block_names(features_of(model))
    if not isinstance(layer, str) or layer not in names:
        pools = [n for n in names if n.startswith("pool")]
        raise ValueError(
            f"layer must be one of the network's layers ({pools[0]}…{pools[-1]}, "
            f"convX_Y, reluX_Y), got {layer!r}"
        )
    return names.index(layer)


def decoded_pools(model: nn.Module, layer: str) -> int:
    """How many pools a decoder of ``layer`` undoes: ``N`` of ``poolN``, after checking
    that it is a pooling layer of the network's ``features``."""
    layer_index(model, layer)
    return pool_number(layer)


def pool_channels(model: nn.Module, layer: str) -> list[int]:
    """Channels of the outputs of pool1 … ``layer`` (e.g. ``[64, 128, 256, 512]`` for
    VGG16's pool4)."""
    n = decoded_pools(model, layer)
    channels, current = [], 3
    for m in features_of(model):
        if isinstance(m, nn.Conv2d):
            current = m.out_channels
        elif isinstance(m, nn.MaxPool2d):
            channels.append(current)
            if len(channels) == n:
                break
    return channels


@dataclass
class Encoding:
    """The encoder's output at a layer and the "where" of every pool before it.

    f : the activation at the layer, ``(B, C, h, w)``.
    switches : for each pool passed (pool1 first), the ``max_pool2d`` indices.
    sizes : for each pool passed, the spatial size of its input (for unpooling).
    """

    f: torch.Tensor
    switches: list[torch.Tensor] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)


def encode(model: nn.Module, x: torch.Tensor, layer: str, *, grad: bool = False) -> Encoding:
    """Run ``features`` on ``x`` up to ``layer`` (included), keeping the pooling switches.

    With ``grad=False`` (default) the pass runs under ``torch.no_grad()``.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a batch of images (B, 3, H, W), got {shape}")
    features = features_of(model)
    stop = layer_index(model, layer)
    switches: list[torch.Tensor] = []
    sizes: list[tuple[int, int]] = []
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        h = x
        for i, m in enumerate(features):
            if isinstance(m, nn.MaxPool2d):
                if min(h.shape[-2:]) < 2:
                    raise ValueError(
                        f"the input {tuple(x.shape[-2:])} is too small for {layer}: the map "
                        f"before pool{len(switches) + 1} is {tuple(h.shape[-2:])}"
                    )
                sizes.append((int(h.shape[-2]), int(h.shape[-1])))
                h, idx = F.max_pool2d(h, 2, 2, return_indices=True)
                switches.append(idx)
            else:
                h = m(h)
            if i == stop:
                break
    return Encoding(h, switches, sizes)


def encoder_fingerprint(model: nn.Module, layer: str) -> str:
    """SHA-256 of the convolutions' weights and biases of ``features`` up to ``layer``:
    a decoder trained on one encoder is refused for another (e.g. random filters)."""
    stop = layer_index(model, layer)
    h = hashlib.sha256()
    for i, m in enumerate(features_of(model)):
        if i > stop:
            break
        if isinstance(m, nn.Conv2d):
            for t in (m.weight, m.bias):
                if t is not None:
                    a = t.detach().to("cpu", torch.float32).contiguous()
                    h.update(str(tuple(a.shape)).encode())
                    h.update(a.numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- the decoder
def default_widths(n_pools: int, width: int) -> tuple[int, ...]:
    """Stage widths ``width · 2^(n-1)``, capped at ``8 · width``, for stages 1 … n."""
    check_positive_int(n_pools, "n_pools")
    check_positive_int(width, "width")
    return tuple(min(width * 2**i, 8 * width) for i in range(n_pools))


class Decoder(nn.Module):
    r"""What-where decoder from ``poolN`` to the network's input.

    Parameters
    ----------
    channels : sequence of int
        Channels of the encoder's pool1 … poolN outputs (:func:`pool_channels`).
    widths : sequence of int
        Hidden width of each stage (stage 1 = the one that produces the image).
    output_scale : float
        The output is multiplied by it (the typical magnitude of the network's input:
        255 for Caffe's 0–255 convention), so the weights work at unit scale.
    input_scale : float
        The activation is divided by it (the root-mean-square of the layer's activations
        on training crops), for the same reason.
    kernel_size : int
        Side of the convolutions (odd).
    convs : int
        Convolutions per stage (at least 2: one from the unpooled map to the stage's width,
        one from it to the channels below; more add depth at the stage's resolution).
    out_channels : int
        3 (an image).
    seed : int
        Seed of the initial weights (He-normal, zero biases); no global RNG is touched.

    Notes
    -----
    The activation is first divided by ``input_scale``. Stage :math:`n` (run from
    :math:`N` down to 1):
    :math:`y \leftarrow \mathrm{unpool}_{s_n}(y)`, then :math:`c` = ``convs`` 3×3
    convolutions with a ReLU between two,
    :math:`y \leftarrow \mathrm{conv}_{n,c}(\mathrm{ReLU}(\cdots\mathrm{conv}_{n,1}(y)))`,
    then a ReLU unless :math:`n=1`. The unpooling puts each value at its switch
    :math:`s_n` (the encoder's argmax) and zeros elsewhere (Zhao et al. 2016; Zhang et al.
    2016).
    """

    def __init__(
        self,
        channels: Sequence[int],
        widths: Sequence[int],
        output_scale: float,
        *,
        input_scale: float = 1.0,
        kernel_size: int = 3,
        convs: int = 2,
        out_channels: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__()
        channels = [check_positive_int(int(c), "channels") for c in channels]
        widths = [check_positive_int(int(w), "widths") for w in widths]
        if not channels:
            raise ValueError("channels must name at least one pool")
        if len(widths) != len(channels):
            raise ValueError(
                f"widths must have one entry per pool ({len(channels)}), got {len(widths)}"
            )
        if isinstance(convs, bool) or not isinstance(convs, int) or convs < 2:
            raise ValueError(f"convs must be an integer >= 2, got {convs!r}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
        if not (isinstance(output_scale, int | float) and output_scale > 0):
            raise ValueError(f"output_scale must be positive, got {output_scale!r}")
        if not (isinstance(input_scale, int | float) and input_scale > 0):
            raise ValueError(f"input_scale must be positive, got {input_scale!r}")
        self.channels = tuple(channels)
        self.widths = tuple(widths)
        self.output_scale = float(output_scale)
        self.input_scale = float(input_scale)
        self.kernel_size = kernel_size
        self.convs = convs
        self.out_channels = out_channels
        pad = kernel_size // 2
        stages = []
        for n, (c, w) in enumerate(zip(channels, widths, strict=True)):
            below = out_channels if n == 0 else channels[n - 1]
            layers: list[nn.Module] = [nn.Conv2d(c, w, kernel_size, padding=pad), nn.ReLU()]
            for _ in range(convs - 2):
                layers += [nn.Conv2d(w, w, kernel_size, padding=pad), nn.ReLU()]
            layers.append(nn.Conv2d(w, below, kernel_size, padding=pad))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.reset_parameters(seed)

    @property
    def n_pools(self) -> int:
        return len(self.channels)

    def reset_parameters(self, seed: int = 0) -> None:
        gen = make_generator(seed)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    w = torch.empty(m.weight.shape, dtype=m.weight.dtype)
                    nn.init.kaiming_normal_(w, nonlinearity="relu", generator=gen)
                    m.weight.copy_(w)
                    m.bias.zero_()

    def architecture(self) -> dict[str, Any]:
        """What :meth:`from_architecture` needs to rebuild it (stored in the file)."""
        return {
            "channels": list(self.channels),
            "widths": list(self.widths),
            "output_scale": self.output_scale,
            "input_scale": self.input_scale,
            "kernel_size": self.kernel_size,
            "convs": self.convs,
            "out_channels": self.out_channels,
        }

    @classmethod
    def from_architecture(cls, arch: dict[str, Any]) -> Decoder:
        try:
            return cls(
                arch["channels"],
                arch["widths"],
                float(arch["output_scale"]),
                input_scale=float(arch.get("input_scale", 1.0)),
                kernel_size=int(arch.get("kernel_size", 3)),
                convs=int(arch.get("convs", 2)),
                out_channels=int(arch.get("out_channels", 3)),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"bad decoder architecture {arch!r}: {exc}") from None

    def forward(
        self,
        f: torch.Tensor,
        switches: Sequence[torch.Tensor],
        sizes: Sequence[Sequence[int]],
    ) -> torch.Tensor:
        """Image (network input space) from the pooled activation ``f`` and the switches
        and sizes of pool1 … poolN (:class:`Encoding`'s fields)."""
        n = self.n_pools
        if len(switches) != n or len(sizes) != n:
            raise ValueError(
                f"this decoder needs the switches and sizes of {n} pools, got "
                f"{len(switches)} and {len(sizes)}"
            )
        if f.dim() != 4 or f.shape[1] != self.channels[-1]:
            raise ValueError(
                f"f must have shape (B, {self.channels[-1]}, h, w) for this decoder, "
                f"got {tuple(f.shape)}"
            )
        if tuple(switches[-1].shape) != tuple(f.shape):
            raise ValueError(
                f"f {tuple(f.shape)} and the last switches {tuple(switches[-1].shape)} differ"
            )
        y = f / self.input_scale
        for i in reversed(range(n)):
            y = F.max_unpool2d(y, switches[i], 2, 2, output_size=tuple(sizes[i]))
            y = self.stages[i](y)
            if i > 0:
                y = F.relu(y)
        return y * self.output_scale


# --------------------------------------------------------------------------- files
@dataclass
class DecoderInfo:
    """The metadata of a decoder file.

    layer : ``"poolN"``.
    architecture : :meth:`Decoder.architecture`.
    convention : the encoder's input convention (``dataclasses.asdict`` of it).
    encoder : ``{"name", "weights", "fingerprint"}``: the network whose switches and
        activations the decoder was trained on (fingerprint: :func:`encoder_fingerprint`).
    training : how it was trained (images, held-out images, epochs, crop, held-out error…).
    """

    layer: str
    architecture: dict[str, Any]
    convention: dict[str, Any]
    encoder: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "layer": self.layer,
            "architecture": json.dumps(self.architecture),
            "convention": json.dumps(self.convention),
            "encoder": json.dumps(self.encoder),
            "training": json.dumps(self.training),
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str] | None, path: Path) -> DecoderInfo:
        meta = meta or {}
        if meta.get("format") != FORMAT:
            raise ValueError(
                f"{path} is not a cnninv decoder file (metadata 'format' is "
                f"{meta.get('format')!r}, expected {FORMAT!r})"
            )
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{path}: decoder format version {meta.get('format_version')!r} is not "
                f"supported (expected {FORMAT_VERSION})"
            )
        try:
            return cls(
                layer=meta["layer"],
                architecture=json.loads(meta["architecture"]),
                convention=json.loads(meta["convention"]),
                encoder=json.loads(meta["encoder"]),
                training=json.loads(meta.get("training", "{}")),
            )
        except (KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: unreadable decoder metadata ({exc})") from None


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors of a state dict: names, dtypes, shapes and bytes, in name
    order (what a decoder file records and :func:`load_decoder` checks)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


#: The dtypes a decoder file may store its weights in.
FILE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def save_decoder(
    decoder: Decoder, info: DecoderInfo, path: str | Path, *, dtype: str = "float32"
) -> Path:
    """Write ``decoder``'s weights (``dtype``: ``"float32"`` or ``"float16"``) and ``info``
    to a ``.safetensors`` file, atomically, with the SHA-256 of the tensors as metadata."""
    from safetensors.torch import save_file

    if dtype not in FILE_DTYPES:
        raise ValueError(f"dtype must be one of {tuple(FILE_DTYPES)}, got {dtype!r}")
    if info.architecture != decoder.architecture():
        raise ValueError("info.architecture does not describe this decoder")
    state = {
        k: v.detach().to("cpu", FILE_DTYPES[dtype]).contiguous()
        for k, v in decoder.state_dict().items()
    }
    meta = {**info.to_metadata(), "dtype": dtype, "tensors_sha256": tensors_sha256(state)}
    return atomic_write(path, lambda p: save_file(state, str(p), metadata=meta))


def load_decoder(
    path: str | Path,
    *,
    layer: str | None = None,
    model: nn.Module | None = None,
    convention: Any = None,
    device: str | torch.device = "cpu",
) -> tuple[Decoder, DecoderInfo]:
    """Read a decoder file and check that it fits.

    Parameters
    ----------
    path : the ``.safetensors`` file.
    layer : the layer it must decode (``"pool4"``); None accepts any.
    model : the encoder it will be used with: its pool channels and the fingerprint of its
        convolutions up to the layer must be those the decoder was trained on.
    convention : the encoder's :class:`~cnninv.data.convention.InputConvention`, to compare.
    device : where the decoder goes.

    Raises
    ------
    ValueError
        Missing, truncated or unreadable file, not a cnninv decoder, tensors that do not
        hash to the recorded SHA-256, trained for another layer, another encoder or
        convention, or tensors missing / of the wrong shape.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"decoder file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata()
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises several types for a bad file
        raise ValueError(f"{path} is not a readable safetensors file ({exc})") from None
    info = DecoderInfo.from_metadata(meta, path)
    recorded = (meta or {}).get("tensors_sha256")
    if recorded is not None and recorded != tensors_sha256(tensors):
        raise ValueError(
            f"decoder file {path}: its tensors do not hash to the SHA-256 recorded in it (the "
            f"file was altered or damaged); retrain it with `cnninv train-decoder --layer "
            f"{info.layer}`"
        )
    if layer is not None and info.layer != layer:
        raise ValueError(
            f"decoder file {path} was trained for {info.layer}, not {layer}: train one with "
            f"`cnninv train-decoder --layer {layer}`"
        )
    decoder = Decoder.from_architecture(info.architecture)
    try:
        n = pool_number(info.layer)
    except ValueError:
        n = -1
    if decoder.n_pools != n:
        raise ValueError(
            f"decoder file {path}: layer {info.layer} but an architecture for "
            f"{decoder.n_pools} pools"
        )
    if model is not None:
        expected = pool_channels(model, info.layer)
        if list(decoder.channels) != expected:
            raise ValueError(
                f"decoder file {path} expects pool channels {list(decoder.channels)}, the "
                f"network has {expected}"
            )
        fp = encoder_fingerprint(model, info.layer)
        if info.encoder.get("fingerprint") != fp:
            raise ValueError(
                f"decoder file {path} was trained on another encoder "
                f"({info.encoder.get('name')}, {info.encoder.get('weights')}, fingerprint "
                f"{str(info.encoder.get('fingerprint'))[:12]}…) than this network's "
                f"convolutions up to {info.layer} (fingerprint {fp[:12]}…)"
            )
    if convention is not None:
        wanted = json.loads(json.dumps(dataclasses.asdict(convention)))
        if info.convention != wanted:
            raise ValueError(
                f"decoder file {path} was trained with input convention {info.convention}, "
                f"not {wanted}"
            )
    expected_state = decoder.state_dict()
    missing = sorted(set(expected_state) - set(tensors))
    extra = sorted(set(tensors) - set(expected_state))
    wrong = [
        f"{k}: {tuple(tensors[k].shape)} instead of {tuple(v.shape)}"
        for k, v in expected_state.items()
        if k in tensors and tuple(tensors[k].shape) != tuple(v.shape)
    ]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing}")
        if extra:
            parts.append(f"unexpected tensors {extra}")
        if wrong:
            parts.append("wrong shapes: " + "; ".join(wrong))
        raise ValueError(
            f"decoder file {path} does not match its {info.layer} architecture: " + ", ".join(parts)
        )
    decoder.load_state_dict({k: t.to(torch.float32) for k, t in tensors.items()})
    return decoder.to(device).eval(), info
