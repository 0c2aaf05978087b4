r"""Decoders for any model: a learned map from the activation of one layer back to the
model's input, for networks that are not VGG-style (a user's module, an ONNX graph, a 1-d
audio net), where the what-where decoders of :mod:`cnninv.inversion.decoder` (which
unpool with VGG's switches) do not apply.

:class:`ActivationDecoder` takes the activation :math:`\phi(x)` of a layer (any shape
``(C, *S)`` with one or two spatial axes) and returns an input of the model's shape
``(C_in, *S_in)``: a 3-tap convolution, then stages that double the spatial size (nearest
neighbour) until the input's size is reached, each followed by ``convs`` 3-tap convolutions
with ReLU, then a 3-tap convolution to the input's channels. Widths halve from stage to
stage (``width`` at the last one, at most ``max_width``). The activation is divided by its
RMS on the training inputs and the output scaled by theirs (and shifted by their mean per
channel), both kept as buffers, so training starts near the right scale.

:func:`train_any_decoder` fits one with the pixel (sample) L2 loss of Zhang et al. (2016),
Adam with a cosine decay, on inputs already in the model's input space, with optional
random flips along the last axis (photos); it measures the validation error
:math:`\|\hat x - x\|/\|x\|` before and after. :func:`save_any_decoder` writes a
``.safetensors`` file (atomically) with the layer, the architecture, the training record and
a SHA-256 of the model's state dict (:func:`model_fingerprint`); :func:`load_any_decoder`
refuses a file for another layer or other weights, by name.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnninv._checks import check_positive_int, make_generator
from cnninv.inversion.generic import activation
from cnninv.io import atomic_write
from cnninv.metrics import relative_error

__all__ = [
    "KIND",
    "ActivationDecoder",
    "AnyDecoderConfig",
    "any_decoder_path",
    "load_any_decoder",
    "model_fingerprint",
    "save_any_decoder",
    "train_any_decoder",
]

#: The ``kind`` in the metadata of a decoder file of this module.
KIND = "cnninv-any-decoder"


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes and bytes): a decoder trained
    on one model's activations is refused for another's."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        if not isinstance(t, torch.Tensor):
            continue
        a = t.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{name}|{a.dtype}|{tuple(t.shape)}|".encode())
        if a.numel():
            h.update(a.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _sizes(src: tuple[int, ...], dst: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The spatial sizes of the stages: doubling each axis that is smaller than the
    input's, capped at it, until every axis has reached it."""
    cur, sizes = list(src), []
    while any(c < d for c, d in zip(cur, dst, strict=True)):
        cur = [min(d, 2 * c) if c < d else c for c, d in zip(cur, dst, strict=True)]
        sizes.append(tuple(cur))
    return sizes or [tuple(src)]


class ActivationDecoder(nn.Module):
    """Activation ``(B, in_channels, *in_size)`` -> input ``(B, out_channels, *out_size)``
    (see the module's docstring)."""

    def __init__(
        self,
        in_channels: int,
        in_size: tuple[int, ...],
        out_channels: int,
        out_size: tuple[int, ...],
        *,
        width: int = 32,
        convs: int = 2,
        max_width: int = 256,
    ) -> None:
        super().__init__()
        in_size, out_size = tuple(int(s) for s in in_size), tuple(int(s) for s in out_size)
        if len(in_size) != len(out_size) or len(in_size) not in (1, 2):
            raise ValueError(
                f"the activation and the input must have the same number (1 or 2) of spatial "
                f"axes, got {in_size} and {out_size}"
            )
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("width", width), ("convs", convs), ("max_width", max_width)):  # fmt: skip
            check_positive_int(v, name)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size, self.out_size = in_size, out_size
        self.width, self.convs, self.max_width = width, convs, max_width
        conv = nn.Conv1d if len(out_size) == 1 else nn.Conv2d
        self.sizes = _sizes(in_size, out_size)
        n = len(self.sizes)
        widths = [min(max_width, width * 2 ** (n - i)) for i in range(n + 1)]
        self.head = conv(in_channels, widths[0], 3, padding=1)
        self.stages = nn.ModuleList()
        for i in range(1, n + 1):
            layers: list[nn.Module] = []
            c = widths[i - 1]
            for _ in range(convs):
                layers += [conv(c, widths[i], 3, padding=1), nn.ReLU()]
                c = widths[i]
            self.stages.append(nn.Sequential(*layers))
        self.tail = conv(widths[-1], out_channels, 3, padding=1)
        self.register_buffer("input_scale", torch.ones(()))
        self.register_buffer("output_scale", torch.ones(()))
        self.register_buffer("output_mean", torch.zeros(out_channels))

    def architecture(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "in_size": list(self.in_size),
            "out_channels": self.out_channels,
            "out_size": list(self.out_size),
            "width": self.width,
            "convs": self.convs,
            "max_width": self.max_width,
        }

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        want = (self.in_channels, *self.in_size)
        if f.dim() != len(want) + 1 or tuple(f.shape[1:]) != want:
            raise ValueError(
                f"this decoder takes activations of shape (B, {', '.join(map(str, want))}), "
                f"got {tuple(f.shape)}"
            )
        h = F.relu(self.head(f / self.input_scale))
        for size, stage in zip(self.sizes, self.stages, strict=True):
            if tuple(h.shape[2:]) != size:
                h = F.interpolate(h, size=size, mode="nearest")
            h = stage(h)
        x = self.tail(h)
        if tuple(x.shape[2:]) != self.out_size:
            x = F.interpolate(x, size=self.out_size, mode="nearest")
        shape = (1, -1) + (1,) * len(self.out_size)
        return x * self.output_scale + self.output_mean.view(shape)


@dataclass
class AnyDecoderConfig:
    """How :func:`train_any_decoder` trains: ``steps`` of ``batch`` inputs, Adam at ``lr``
    with a cosine decay to 0, ``width`` and ``convs`` of :class:`ActivationDecoder`,
    random flips of the last axis (``flips``, for photos), the seed of the draws."""

    steps: int = 2000
    batch: int = 8
    lr: float = 1e-3
    width: int = 32
    convs: int = 2
    flips: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "width", "convs"):
            check_positive_int(getattr(self, name), name)
        if self.steps > 10**7 or self.batch > 4096 or self.width > 1024 or self.convs > 16:
            raise ValueError("steps <= 1e7, batch <= 4096, width <= 1024, convs <= 16")
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not isinstance(self.flips, bool):
            raise ValueError(f"flips must be true or false, got {self.flips!r}")


def _encode(feats, x: torch.Tensor, batch: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([feats(x[s : s + batch]) for s in range(0, x.shape[0], batch)])


def _mean_error(decoder: ActivationDecoder, feats, x: torch.Tensor, batch: int) -> float:
    was = decoder.training
    decoder.eval()
    errs: list[float] = []
    with torch.no_grad():
        for s in range(0, x.shape[0], batch):
            xb = x[s : s + batch]
            errs += relative_error(decoder(feats(xb)), xb).tolist()
    decoder.train(was)
    return sum(errs) / len(errs)


def train_any_decoder(
    model: nn.Module,
    layer: str,
    x_train: torch.Tensor,
    x_val: torch.Tensor,
    config: AnyDecoderConfig | None = None,
    *,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[ActivationDecoder, dict[str, Any]]:
    """Train an :class:`ActivationDecoder` from the output of ``layer`` (a qualified module
    name) of ``model`` back to its inputs, on ``x_train`` (inputs in the model's input
    space, ``(N, C, *S)``), measured on ``x_val``. The model is frozen and left as it was.

    Returns the decoder (on the inputs' device, in eval mode) and its training record
    (``validation_error_before`` and ``validation_error``: mean relative error on
    ``x_val`` before and after training; seconds; sizes).

    Raises
    ------
    ValueError
        Empty or non-finite inputs, a layer the inputs do not reach, a layer whose output
        is not ``(N, C, *S)`` with the inputs' number of spatial axes.
    """
    config = config or AnyDecoderConfig()
    for name, x in (("x_train", x_train), ("x_val", x_val)):
        if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4) or x.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty (N, C, L) or (N, C, H, W) tensor")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} holds a non-finite value (NaN or inf)")
    if tuple(x_train.shape[1:]) != tuple(x_val.shape[1:]):
        raise ValueError(
            f"x_train and x_val differ in shape: {tuple(x_train.shape)} vs {tuple(x_val.shape)}"
        )
    feats = activation(model, layer)
    was_training = model.training
    model.eval()
    try:
        f_all = _encode(feats, x_train, config.batch)
        if f_all.dim() != x_train.dim():
            raise ValueError(
                f"layer {layer!r} gives activations of shape {tuple(f_all.shape[1:])}: a "
                f"decoder needs (C, …) with as many spatial axes as the input "
                f"{tuple(x_train.shape[1:])}"
            )
        dev = x_train.device
        with torch.random.fork_rng(devices=[]):  # the initial weights, from the seed alone
            torch.manual_seed(config.seed)
            decoder = ActivationDecoder(
                f_all.shape[1], tuple(f_all.shape[2:]), x_train.shape[1],
                tuple(x_train.shape[2:]), width=config.width, convs=config.convs,
            ).to(dev)  # fmt: skip
        dims = [0, *range(2, x_train.dim())]
        decoder.input_scale.fill_(float(f_all.pow(2).mean().sqrt().clamp_min(1e-12)))
        decoder.output_mean.copy_(x_train.mean(dim=dims))
        centred = x_train - decoder.output_mean.view(1, -1, *([1] * (x_train.dim() - 2)))
        decoder.output_scale.fill_(float(centred.pow(2).mean().sqrt().clamp_min(1e-12)))
        del f_all, centred
        before = _mean_error(decoder, feats, x_val, config.batch)
        gen = make_generator(config.seed, None, dev)
        opt = torch.optim.Adam(decoder.parameters(), lr=config.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, config.steps) / config.steps))
        )
        scale2 = float(decoder.output_scale) ** 2
        steps = range(config.steps)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc=f"decoder {layer}", leave=False, dynamic_ncols=True)
        started = time.perf_counter()
        every = max(1, config.steps // 10)
        loss_value = float("nan")
        decoder.train()
        for step in steps:
            idx = torch.randint(0, x_train.shape[0], (config.batch,), generator=gen, device=dev)
            xb = x_train[idx]
            if config.flips:
                flip = torch.rand(config.batch, generator=gen, device=dev) < 0.5
                xb = torch.where(flip.view(-1, *([1] * (xb.dim() - 1))), xb.flip(-1), xb)
            with torch.no_grad():
                fb = feats(xb)
            loss = (decoder(fb) - xb).pow(2).mean() / scale2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise ValueError(
                    f"the decoder's loss became non-finite at step {step + 1}: lower lr "
                    f"(now {config.lr})"
                )
            if log is not None and ((step + 1) % every == 0 or step + 1 == config.steps):
                log(
                    f"[cnninv] decoder {layer}: step {step + 1}/{config.steps}, "
                    f"loss {loss_value:.4g}"
                )
        seconds = time.perf_counter() - started
        after = _mean_error(decoder, feats, x_val, config.batch)
    finally:
        model.train(was_training)
    decoder.eval()
    record = {
        **asdict(config),
        "layer": layer,
        "train_inputs": int(x_train.shape[0]),
        "validation_inputs": int(x_val.shape[0]),
        "input_shape": list(x_train.shape[1:]),
        "final_loss": loss_value,
        "validation_error_before": before,
        "validation_error": after,
        "train_seconds": round(seconds, 3),
        "device": str(x_train.device),
    }
    return decoder, record


def any_decoder_path(cache: Path, model: nn.Module, layer: str) -> Path:
    """Where the decoder of ``layer`` of ``model`` (by its weights' fingerprint) is kept in
    the cache folder ``cache`` (``CACHE/decoders/any/``)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", layer)
    return Path(cache) / "decoders" / "any" / f"{model_fingerprint(model)[:16]}-{safe}.safetensors"


def save_any_decoder(
    decoder: ActivationDecoder,
    path: str | Path,
    *,
    model: nn.Module,
    layer: str,
    training: dict[str, Any],
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write ``decoder`` to a ``.safetensors`` file, atomically, with what
    :func:`load_any_decoder` checks (layer, the model's fingerprint, the architecture) and
    the training record and provenance."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in decoder.state_dict().items()}
    meta = {
        "kind": KIND,
        "layer": layer,
        "model_fingerprint": model_fingerprint(model),
        "architecture": json.dumps(decoder.architecture()),
        "training": json.dumps(training),
        "provenance": json.dumps(provenance or {}, default=str),
    }
    return atomic_write(path, lambda p: save_file(state, str(p), metadata=meta))


def load_any_decoder(
    path: str | Path,
    *,
    model: nn.Module | None = None,
    layer: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[ActivationDecoder, dict[str, Any]]:
    """Read a decoder file of :func:`save_any_decoder`; with ``model`` and ``layer``, check
    that it was trained for them. Returns the decoder (eval mode) and its metadata
    (``layer``, ``model_fingerprint``, ``architecture``, ``training``, ``provenance``).

    Raises
    ------
    ValueError
        A missing, unreadable or truncated file, a file of another kind, or one trained for
        another layer or other weights.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"decoder file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            state = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"decoder file {path} cannot be read ({exc})") from None
    if meta.get("kind") != KIND:
        raise ValueError(
            f"{path} is not a decoder of cnninv train-decoder --model (kind "
            f"{meta.get('kind')!r}); VGG16's decoders are used with paper layers (pool1…)"
        )
    info = {
        "layer": meta.get("layer"),
        "model_fingerprint": meta.get("model_fingerprint"),
        **{k: json.loads(meta.get(k, "{}")) for k in ("architecture", "training", "provenance")},
    }
    if layer is not None and info["layer"] != layer:
        raise ValueError(f"decoder {path} was trained for layer {info['layer']!r}, not {layer!r}")
    if model is not None and info["model_fingerprint"] != model_fingerprint(model):
        raise ValueError(
            f"decoder {path} was trained on another model's activations (weights fingerprint "
            f"{str(info['model_fingerprint'])[:12]}…, this model's "
            f"{model_fingerprint(model)[:12]}…): retrain it for these weights"
        )
    arch = info["architecture"]
    decoder = ActivationDecoder(
        arch["in_channels"], tuple(arch["in_size"]), arch["out_channels"],
        tuple(arch["out_size"]), width=arch["width"], convs=arch["convs"],
        max_width=arch["max_width"],
    )  # fmt: skip
    try:
        decoder.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"decoder file {path} does not match its architecture ({exc})") from None
    return decoder.to(device).eval(), info
