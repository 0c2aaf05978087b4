r"""Back to the input for any model a user brings (a Python ``nn.Module``: a
``package.module:callable``, an ONNX graph converted to torch, a Keras VGG), at any layer
named by its qualified module name:

``"optimize"``
    Mahendran & Vedaldi's optimisation (:func:`~cnninv.inversion.methods.optimize_image`)
    matching the layer's output, with the same priors; no training.
``"deconvnet"``
    Zeiler & Fergus's deconvnet through autograd: the backward pass from the layer's output
    to the input, every ReLU's backward replaced by a ReLU of the signal (their rule), max
    pooling undone with its switches, each convolution by its transpose; rescaled to
    :math:`\|x\|`.
``"decoder"``
    A decoder trained for the model and layer (:mod:`cnninv.inversion.any_decoder`,
    ``cnninv train-decoder --model SPEC --layer NAME``), one forward pass.
``"iht"``
    The paper's reconstruction through a convolution (``layer`` names it): its input
    activation :math:`f`, :math:`\hat f = \mathbf W^T\mathbb M(\mathbf W f, k)` with the
    layer's unit-norm filters (or Gaussian ones), ``k`` from the density of its activation
    output, rescaled to :math:`\|f\|`; then back to the input without a decoder, by the
    optimisation matching :math:`\hat f` at that point (the decoder-free image-space
    inversion).

TorchScript archives cannot be inverted (their layers cannot be hooked and their
operations run below autograd's reach): load the Python model or an ONNX export.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from cnninv._checks import check_positive_int, make_generator
from cnninv.analysis import FILTERS, blocks_of, k_for_fraction, reconstruct_activation
from cnninv.inversion.methods import Inversion, OptimizeOptions, optimize_image
from cnninv.metrics import rescale_to
from cnninv.models.discovery import discover

__all__ = ["GENERIC_METHODS", "activation", "deconvnet_any", "invert_any"]

#: The methods that work for any (Python) model ("decoder" needs a decoder trained for it).
GENERIC_METHODS = ("iht", "optimize", "deconvnet", "decoder")


class _Stop(Exception):
    """Raised by a hook to end the forward pass once the activation is in hand."""


def _module(model: nn.Module, layer: str) -> nn.Module:
    if isinstance(model, torch.jit.ScriptModule):
        raise ValueError(
            "a TorchScript archive cannot be inverted: its layers cannot be hooked; load the "
            "Python model (package.module:callable) or an ONNX export instead"
        )
    modules = dict(model.named_modules())
    if not isinstance(layer, str) or layer not in modules or layer == "":
        leaves = [n for n, m in modules.items() if n and not list(m.children())]
        raise ValueError(
            f"layer {layer!r} is not a module of the model; its layers: "
            f"{', '.join(leaves[:30])}{'…' if len(leaves) > 30 else ''}"
        )
    return modules[layer]


def activation(
    model: nn.Module, layer: str, *, of: str = "output"
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function ``x -> the output (or, ``of="input"``, the input) of module ``layer````,
    differentiable, that stops the forward pass there."""
    module = _module(model, layer)
    if of not in ("output", "input"):
        raise ValueError(f"of must be 'output' or 'input', got {of!r}")

    def run(x: torch.Tensor) -> torch.Tensor:
        got: list[torch.Tensor] = []

        def grab(value):
            t = value[0] if isinstance(value, tuple | list) else value
            if not isinstance(t, torch.Tensor):
                raise ValueError(f"layer {layer!r} does not take or give a single tensor")
            got.append(t)
            raise _Stop

        if of == "output":
            handle = module.register_forward_hook(lambda _m, _i, out: grab(out))
        else:
            handle = module.register_forward_pre_hook(lambda _m, inp: grab(inp))
        try:
            model(x)
        except _Stop:
            pass
        finally:
            handle.remove()
        if not got:
            raise ValueError(f"layer {layer!r} was not reached by the forward pass")
        return got[0]

    return run


class _DeconvReLU(torch.autograd.Function):
    """ReLU forward; the deconvnet's backward: a ReLU of the signal coming back."""

    @staticmethod
    def forward(ctx, x):
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp_min(0)


_RELUS = frozenset(
    {torch.relu, F.relu, torch.relu_, F.relu_, torch.Tensor.relu, torch.Tensor.relu_}
)


class _DeconvRule(TorchFunctionMode):
    """Every ReLU of the forward pass (module or functional) becomes :class:`_DeconvReLU`."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _RELUS:
            return _DeconvReLU.apply(args[0])
        return func(*args, **(kwargs or {}))


def deconvnet_any(model: nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """Zeiler & Fergus's deconvnet from the output of ``layer`` back to the input (not
    rescaled): autograd's backward pass of :math:`\\tfrac12\\|\\phi(x)\\|^2` with the
    deconvnet ReLU rule (so every convolution is undone by its transpose, every max pool
    by unpooling with its switches)."""
    feats = activation(model, layer)
    xi = x.detach().clone().requires_grad_(True)
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        with torch.enable_grad(), _DeconvRule():
            f = feats(xi)
            (back,) = torch.autograd.grad(f, xi, grad_outputs=f.detach())
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
    return back


def invert_any(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    method: str,
    *,
    convention=None,
    iters: int | None = None,
    filters: str = "learned",
    k: int | None = None,
    optimize: OptimizeOptions | None = None,
    seed: int = 0,
    progress: bool = False,
    decoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Inversion:
    """Reconstruct the inputs ``x`` (already in the model's input space) from their
    activations at ``layer`` by ``method`` (one of :data:`GENERIC_METHODS`).

    Raises
    ------
    ValueError
        An unknown method or layer, ``iht`` at a layer that is not a convolution, a
        TorchScript model, a non-finite reconstruction.
    """
    if method not in GENERIC_METHODS:
        raise ValueError(f"method must be one of {GENERIC_METHODS} for this model, got {method!r}")
    if method == "decoder" and decoder is None:
        raise ValueError(
            f"method 'decoder' needs a decoder trained for this model and layer {layer!r}: "
            f"cnninv train-decoder --model SPEC --layer {layer}"
        )
    if filters not in FILTERS:
        raise ValueError(f"filters must be one of {FILTERS}, got {filters!r}")
    if iters is not None:
        check_positive_int(iters, "iters")
    module = _module(model, layer)
    opts = optimize or OptimizeOptions()
    if method in ("optimize", "iht") and iters is not None:
        opts = OptimizeOptions(**{**asdict(opts), "iters": iters})
    gen = make_generator(seed, None, x.device)
    info: dict[str, Any] = {}
    started = time.perf_counter()
    if method == "decoder":
        with torch.no_grad():
            x_hat = decoder(activation(model, layer)(x))
        if tuple(x_hat.shape) != tuple(x.shape):
            raise ValueError(
                f"the decoder gives {tuple(x_hat.shape)} for inputs of shape {tuple(x.shape)}"
            )
        info = {"decoded_by": "a decoder trained for this model and layer"}
    elif method == "deconvnet":
        x_hat = rescale_to(deconvnet_any(model, x, layer), x)
        info = {"rescaled_to": "||x|| (input space), per input"}
    elif method == "optimize":
        feats = activation(model, layer)
        with torch.no_grad():
            target = feats(x)
        x_hat, history = optimize_image(
            model, target, layer, convention, tuple(x.shape), options=opts, generator=gen,
            progress=progress, features=feats,
        )  # fmt: skip
        info = {"options": asdict(opts), "final_feature_error": history["feature_error"][-1]}
    else:
        if not isinstance(module, nn.Conv1d | nn.Conv2d):
            raise ValueError(
                f"method 'iht' reconstructs the input of a convolution: layer {layer!r} is a "
                f"{type(module).__name__}; name a convolution (cnninv analyze lists them)"
            )
        conv = next((c for c in discover(model, x[:1]).layers if c.name == layer), None)
        if conv is None:
            raise ValueError(f"convolution {layer!r} was not run by the forward pass")
        feats = activation(model, layer, of="input")
        with torch.no_grad():
            f = feats(x)
            density = float((_activated(model, layer, x) != 0).double().mean())
        W = conv.operator().to(x.device)
        if conv.pre_pad is not None or tuple(f.shape[1:]) != tuple(W.in_shape):
            raise ValueError(
                f"the input of {layer} is padded by a separate operation before the "
                "convolution: iht cannot rebuild it; use optimize or deconvnet"
            )
        W = W.unit_norm_filters()
        if filters == "random":
            W = W.gaussian_like(unit_norm_rows=True, generator=gen)
        pool, why = blocks_of(conv)
        if k is None:
            k = k_for_fraction(max(density, 1e-6), W.out_shape, pool)
        f_hat, err = reconstruct_activation(W, f, k, pool=pool)
        x_hat, history = optimize_image(
            model, f_hat, layer, convention, tuple(x.shape), options=opts, generator=gen,
            progress=progress, features=feats,
        )  # fmt: skip
        info = {
            "k": k,
            "density": density,
            "blocks": why,
            "filters": filters,
            "activation_errors": err.tolist(),
            "decoded_by": "optimisation matching f_hat at the input of the convolution",
            "final_feature_error": history["feature_error"][-1],
        }
    seconds = time.perf_counter() - started
    if not bool(torch.isfinite(x_hat).all()):
        raise ValueError(
            f"method {method!r} gave a non-finite reconstruction (NaN or inf): the model's "
            "activations or weights overflow float32"
        )
    return Inversion(x_hat.detach(), method, layer, seconds, info)


def _activated(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """The activation after convolution ``layer`` (its ReLU's output, when one follows),
    from the dispatcher record: where the density that sets ``k`` is measured."""
    found = discover(model, x)
    conv = next(c for c in found.layers if c.name == layer)
    index = conv.activation_op if conv.activation_op is not None else conv.op_index
    return found.ops[index].outputs[0]
