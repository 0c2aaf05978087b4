r"""What input a model takes: its first convolution, the layout of signals it wants, and a
check of inputs against it that says what the model wants when they do not fit.

A 1-d network takes a mono signal ``(N, L)`` in one of several layouts: ``(N, 1, L)`` for a
``Conv1d`` first layer, ``(N, 1, L, 1)`` or ``(N, 1, 1, L)`` for a 2-d network written with
``(k, 1)`` or ``(1, k)`` kernels (CREPE), or ``(N, L)`` itself when ``forward`` reshapes
(CREPE's ``forward`` does ``x[:, None, :, None]``). :func:`signal_layout` ranks these by
the first convolution's weight shape and confirms the first that a forward pass on one
example accepts.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(1, 4, (9, 1)), nn.ReLU(), nn.MaxPool2d((2, 1)))
>>> layout = signal_layout(net, torch.randn(3, 64))
>>> layout.layout, tuple(layout.apply(torch.randn(3, 64)).shape)
('(N, 1, L, 1)', (3, 1, 64, 1))
>>> guess_input_kind(net), wanted_input(net)
('signal', '(N, 1, H, W) with H ≥ 9, W ≥ 1 (first convolution 0: Conv2d, weight (4, 1, 9, 1))')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "SignalLayout",
    "check_inputs",
    "conv_type",
    "first_conv",
    "guess_input_kind",
    "signal_layout",
    "wanted_input",
]

_CONV_TYPES = ("Conv1d", "Conv2d", "Conv3d")


def conv_type(module: nn.Module) -> str | None:
    """``"Conv1d"``, ``"Conv2d"`` or ``"Conv3d"`` for a convolution module (a TorchScript
    one too, by its original class name), else None."""
    for cls, name in ((nn.Conv1d, "Conv1d"), (nn.Conv2d, "Conv2d"), (nn.Conv3d, "Conv3d")):
        if isinstance(module, cls):
            return name
    original = getattr(module, "original_name", None)  # torch.jit.RecursiveScriptModule
    if original in _CONV_TYPES and isinstance(getattr(module, "weight", None), torch.Tensor):
        return original
    return None


def first_conv(model: nn.Module) -> tuple[str, nn.Module] | None:
    """The first convolution of ``model`` in ``named_modules()`` order (the order the
    modules were registered, which is forward order for the usual models), or None."""
    for name, module in model.named_modules():
        if conv_type(module) is not None:
            return name, module
    return None


def _declared_kind(shape: Sequence[int | None]) -> str | None:
    rank = len(shape)
    if rank == 2:
        return "signal"
    if rank == 3 and (shape[1] == 1 or shape[2] == 1):
        return "signal"
    if rank == 4 and (shape[1] in (1, 3) or shape[3] in (1, 3)):
        return "image"
    return None


def guess_input_kind(model: nn.Module, input_shape: Sequence[int | None] | None = None) -> str:
    """``"image"``, ``"signal"`` or ``"array"``: a guess of what the model takes.

    From the input shape the file declares when there is one (``(N, L)`` or ``(N, L, 1)``:
    signal; ``(N, 3, H, W)`` or ``(N, H, W, 3)``: image), else from the first convolution:
    a ``Conv1d``, or a ``Conv2d`` with one input channel and ``(k, 1)`` / ``(1, k)`` kernels
    (k > 1), takes signals; a ``Conv2d`` with 1 or 3 input channels, images; anything
    else, an array given as it is.
    """
    if input_shape is not None:
        kind = _declared_kind(input_shape)
        if kind is not None:
            return kind
    found = first_conv(model)
    if found is None:
        return "array"
    _, conv = found
    w = conv.weight
    if conv_type(conv) == "Conv1d":
        return "signal"
    if conv_type(conv) == "Conv2d":
        kh, kw = w.shape[2:]
        if w.shape[1] == 1 and (kh == 1) != (kw == 1):
            return "signal"
        if w.shape[1] in (1, 3):
            return "image"
    return "array"


def wanted_input(model: nn.Module, input_shape: Sequence[int | None] | None = None) -> str:
    """In words, the input the model wants: the shape the file declares, or the one its
    first convolution takes (``"(N, 3, H, W) with H ≥ 3, W ≥ 3 (first convolution …)"``)."""
    parts = []
    if input_shape is not None:
        dims = ", ".join("N" if i == 0 and d is None else "?" if d is None else str(d)
                         for i, d in enumerate(input_shape))  # fmt: skip
        parts.append(f"({dims}) (declared by the file)")
    found = first_conv(model)
    if found is not None:
        name, conv = found
        w = conv.weight
        kind = conv_type(conv)
        k = [int(v) for v in w.shape[2:]]
        cin = int(w.shape[1]) * int(getattr(conv, "groups", 1))
        if kind == "Conv1d":
            shape = f"(N, {cin}, L) with L ≥ {k[0]}"
        elif kind == "Conv2d":
            shape = f"(N, {cin}, H, W) with H ≥ {k[0]}, W ≥ {k[1]}"
        else:
            shape = f"(N, {cin}, D, H, W)"
        parts.append(f"{shape} (first convolution {name}: {kind}, weight {tuple(w.shape)})")
    return "; ".join(parts) if parts else "unknown (the model has no convolution module)"


@dataclass(frozen=True)
class SignalLayout:
    """How a batch of mono signals ``(N, L)`` becomes the model's input.

    Attributes
    ----------
    layout : str
        ``"(N, 1, L)"``, ``"(N, 1, L, 1)"``, ``"(N, 1, 1, L)"`` or ``"(N, L)"``.
    """

    layout: str

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` of shape ``(N, L)`` in this layout."""
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"signals must have shape (N, L), got {shape}")
        return _LAYOUTS[self.layout](x)


_LAYOUTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "(N, 1, L)": lambda x: x[:, None, :],
    "(N, 1, L, 1)": lambda x: x[:, None, :, None],
    "(N, 1, 1, L)": lambda x: x[:, None, None, :],
    "(N, L)": lambda x: x,
}


def _ranked_layouts(model: nn.Module) -> list[str]:
    found = first_conv(model)
    if found is None:
        return ["(N, L)", "(N, 1, L)", "(N, 1, L, 1)", "(N, 1, 1, L)"]
    conv = found[1]
    kind, shape = conv_type(conv), tuple(conv.weight.shape)
    if kind == "Conv1d":
        return ["(N, 1, L)", "(N, L)"]
    if kind == "Conv2d" and shape[3] == 1 and shape[2] > 1:
        return ["(N, 1, L, 1)", "(N, L)", "(N, 1, 1, L)"]
    if kind == "Conv2d" and shape[2] == 1 and shape[3] > 1:
        return ["(N, 1, 1, L)", "(N, L)", "(N, 1, L, 1)"]
    return ["(N, L)", "(N, 1, L)", "(N, 1, L, 1)", "(N, 1, 1, L)"]


def _try_forward(model: nn.Module, x: torch.Tensor) -> str | None:
    """None if ``model(x)`` runs, else the error in one line."""
    try:
        with torch.no_grad():
            model(x)
    except Exception as exc:  # whatever the model raises on an input it does not take
        text = " ".join(str(exc).split())
        return f"{type(exc).__name__}: {text[:200]}"
    return None


def _device_of(model: nn.Module) -> torch.device:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def signal_layout(model: nn.Module, signals: torch.Tensor) -> SignalLayout:
    """The layout in which ``model`` takes mono signals, confirmed by a forward pass.

    Parameters
    ----------
    model : nn.Module
        In eval mode (TorchScript and converted ONNX models too).
    signals : Tensor of shape ``(N, L)``
        Only the first is run through the model.

    Returns
    -------
    SignalLayout

    Raises
    ------
    ValueError
        If no layout works: listing each layout tried with the model's error, and what the
        model wants (:func:`wanted_input`).
    """
    if not isinstance(signals, torch.Tensor) or signals.dim() != 2 or signals.shape[0] == 0:
        shape = tuple(signals.shape) if isinstance(signals, torch.Tensor) else type(signals)
        raise ValueError(f"signals must have shape (N, L) with N ≥ 1, got {shape}")
    one = signals[:1].to(_device_of(model))
    tried = []
    for layout in _ranked_layouts(model):
        error = _try_forward(model, _LAYOUTS[layout](one))
        if error is None:
            return SignalLayout(layout)
        tried.append(f"{layout}: {error}")
    raise ValueError(
        f"the model takes signals of length {signals.shape[1]} in none of the layouts tried "
        f"({'; '.join(tried)}); the model wants {wanted_input(model)}"
    )


def check_inputs(
    model: nn.Module,
    x: torch.Tensor,
    *,
    input_shape: Sequence[int | None] | None = None,
) -> None:
    """Check that ``model`` takes the batch ``x``: the shape the file declares (when it
    does), then a forward pass on the first example.

    Raises
    ------
    ValueError
        ``"inputs of shape … do not fit the model: …; the model wants …"``.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"inputs must be a batch (N, …) with N ≥ 1, got {shape}")
    problem = None
    if input_shape is not None:
        dims = tuple(input_shape)
        if len(dims) != x.dim() or any(
            d is not None and i > 0 and d != s
            for i, (d, s) in enumerate(zip(dims, x.shape, strict=False))
        ):
            problem = "not the shape the file declares"
    if problem is None:
        problem = _try_forward(model, x[:1].to(_device_of(model)))
    if problem is not None:
        raise ValueError(
            f"inputs of shape {tuple(x.shape)} do not fit the model: {problem}; the model "
            f"wants {wanted_input(model, input_shape)}"
        )
