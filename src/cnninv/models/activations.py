r"""Activations of any ``nn.Module`` at named layers, and conv layers as operators.

:func:`capture` runs a forward pass with forward hooks on the requested modules and
returns their outputs; the hooks are removed before it returns, whatever happens. Layers
are named by the paper's names for VGG16 and AlexNet (``"relu5_3"``, ``"pool4"``; see
:mod:`cnninv.models.layers`) or, for any model, by the qualified names of
``named_modules()`` (``"features.29"``), or given as modules.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2))
>>> acts = capture(net, torch.randn(2, 3, 10, 10), ["1", "2"])
>>> {k: tuple(v.shape) for k, v in acts.items()}
{'1': (2, 4, 8, 8), '2': (2, 4, 4, 4)}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from cnninv._checks import check_positive_int
from cnninv.models.layers import layer_map, named_layer
from cnninv.operators import ConvOperator

__all__ = ["capture", "conv_layer", "conv_operator", "layer_input_size", "nonzero_percent"]


class _StopForward(Exception):
    """Raised by the last hook to skip the rest of the forward pass."""


def _resolve(
    model: nn.Module, layers: Mapping[str, nn.Module] | Sequence[str] | str
) -> dict[str, nn.Module]:
    if isinstance(layers, str):
        layers = [layers]
    if isinstance(layers, Mapping):
        out = dict(layers)
        for key, module in out.items():
            if not isinstance(module, nn.Module):
                raise ValueError(f"layers[{key!r}] must be an nn.Module, got {type(module)}")
        known = {id(m) for m in model.modules()}
        for key, module in out.items():
            if id(module) not in known:
                raise ValueError(f"layers[{key!r}] is not a submodule of model")
        return out
    try:
        paper = layer_map(model)
    except ValueError:
        paper = {}
    modules = dict(model.named_modules())
    out = {}
    for name in layers:
        if not isinstance(name, str):
            raise ValueError(f"layers must hold names (str), got {name!r}")
        if name in paper:
            out[name] = named_layer(model, name)
        elif name in modules and name != "":
            out[name] = modules[name]
        else:
            hint = f" paper names: {list(paper)};" if paper else ""
            raise ValueError(
                f"layer {name!r} is not in the model;{hint} qualified names are those of "
                "model.named_modules()"
            )
    if not out:
        raise ValueError("layers must name at least one layer")
    return out


def capture(
    model: nn.Module,
    x: torch.Tensor,
    layers: Mapping[str, nn.Module] | Sequence[str] | str,
    *,
    batch_size: int | None = None,
    stop_early: bool = True,
    to_cpu: bool = False,
) -> dict[str, torch.Tensor]:
    """The outputs of ``layers`` when ``model`` runs on ``x``, under ``torch.no_grad()``.

    Parameters
    ----------
    model : nn.Module
        Any module; it is run as is (call ``model.eval()`` first for dropout / batch norm).
    x : Tensor
        The input batch, already on the model's device.
    layers : list of names, or dict name -> module
        Paper names (VGG16 / AlexNet) or ``named_modules()`` names; or modules of
        ``model`` under names of your choice. A module called several times gives the
        output of its last call before the pass ends (or stops, see ``stop_early``).
    batch_size : int, optional
        Run ``x`` in chunks of this many items and concatenate (along dim 0).
    stop_early : bool
        Stop the forward pass once every requested layer has produced its output, so the
        rest of the network (e.g. the classifier) is not computed.
    to_cpu : bool
        Move each captured chunk to the CPU (to keep GPU memory for the forward pass).

    Returns
    -------
    dict
        ``{name: tensor}`` in the order of ``layers``; each a detached copy, so that a
        later in-place operation (``ReLU(inplace=True)``) does not change it.

    Raises
    ------
    ValueError
        Unknown layer names, an empty list, a bad ``batch_size``, or a layer that the
        forward pass never reached.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a tensor, got {type(x).__name__}")
    targets = _resolve(model, layers)
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    chunks = [x] if batch_size is None or x.dim() == 0 else list(torch.split(x, batch_size))
    results: dict[str, list[torch.Tensor]] = {name: [] for name in targets}

    seen: dict[str, torch.Tensor] = {}

    def make_hook(name: str):
        def hook(_module: nn.Module, _inp: object, out: object) -> None:
            if not isinstance(out, torch.Tensor):
                raise ValueError(f"layer {name!r} does not output a single tensor")
            t = out.detach().clone()
            seen[name] = t.cpu() if to_cpu else t
            if stop_early and len(seen) == len(targets):
                raise _StopForward

        return hook

    handles = [m.register_forward_hook(make_hook(n)) for n, m in targets.items()]
    try:
        for chunk in chunks:
            seen.clear()
            try:
                with torch.no_grad():
                    model(chunk)
            except _StopForward:
                pass
            missing = [n for n in targets if n not in seen]
            if missing:
                raise ValueError(f"layers {missing} were not reached by the forward pass")
            for n in targets:
                results[n].append(seen[n])
    finally:
        for h in handles:
            h.remove()
    return {n: (v[0] if len(v) == 1 else torch.cat(v)) for n, v in results.items()}


def nonzero_percent(t: torch.Tensor) -> float:
    """Percentage of non-zero entries of ``t`` (Table 2's measure of sparsity)."""
    if t.numel() == 0:
        raise ValueError("t must not be empty")
    return 100.0 * float(torch.count_nonzero(t)) / t.numel()


def conv_layer(model: nn.Module, name: str) -> nn.Conv2d:
    """The ``nn.Conv2d`` of convolution ``name`` (paper or ``named_modules()`` name).

    Its ``weight``, ``stride`` and ``padding`` define the operator :math:`\\mathbf W`;
    :func:`conv_operator` builds it.

    Raises
    ------
    ValueError
        If ``name`` is unknown or not a convolution.
    """
    module = _resolve(model, [name])[name]
    if not isinstance(module, nn.Conv2d):
        raise ValueError(f"layer {name!r} is a {type(module).__name__}, not a Conv2d")
    return module


def layer_input_size(model: nn.Module, name: str, image_size: int = 224) -> tuple[int, int]:
    """Spatial size ``(H, W)`` of the input of layer ``name`` for a square ``image_size``
    input with 3 channels (found by a forward pass on the meta device; no compute)."""
    check_positive_int(image_size, "image_size")
    module = _resolve(model, [name])[name]
    sizes: list[tuple[int, int]] = []

    def hook(_m: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
        sizes.append(tuple(inp[0].shape[-2:]))
        raise _StopForward

    probe = torch.empty(1, 3, image_size, image_size, device="meta")
    handle = module.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            _run_meta(model, probe)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not sizes:
        raise ValueError(f"layer {name!r} was not reached by the forward pass")
    return sizes[0]


def _run_meta(model: nn.Module, probe: torch.Tensor) -> None:
    """Run ``model`` on a meta tensor: parameters are swapped for meta copies only for
    the duration of the call, so no arithmetic is done and the model is left unchanged."""
    from torch.func import functional_call

    params = {k: torch.empty_like(v, device="meta") for k, v in model.named_parameters()}
    buffers = {k: torch.empty_like(v, device="meta") for k, v in model.named_buffers()}
    functional_call(model, {**params, **buffers}, (probe,))


def conv_operator(model: nn.Module, name: str, image_size: int = 224) -> ConvOperator:
    """:math:`\\mathbf W` of convolution ``name`` at the input size it has when the network
    sees a square ``image_size`` image (e.g. ``conv5_2`` of VGG16 at 224: 14×14)."""
    conv = conv_layer(model, name)
    return ConvOperator.from_conv(conv, layer_input_size(model, name, image_size))
