r"""Four ways back from a layer's activation to the image, behind one function
(:func:`invert`), and the image-space measures of how close they come
(:func:`image_metrics`).

``"decoder"``
    The trained what-where decoder of ``poolN`` (:mod:`cnninv.inversion.decoder`) applied to
    the original activation :math:`f` with the encoder's switches.
``"iht"``
    The paper's reconstruction (§4.5): :math:`\hat f = \mathbf W^T\mathbb M(\mathbf Wf, k)`
    with :math:`\mathbf W` the next convolution conv(N+1)_1 (its learned filters, unit norm,
    or Gaussian filters of the same size), ``k`` from the density of relu(N+1)_1 on the same
    images, 1 iteration (more: normalised IHT), rescaled to :math:`\|f\|`; then into image
    space through the ``poolN`` decoder (:func:`cnninv.analysis.reconstruct_activation`).
``"optimize"``
    Gradient-based inversion after Mahendran & Vedaldi (CVPR 2015): the image
    :math:`x = Bu` minimising
    :math:`\|\Phi(Bu)-\Phi_0\|^2/\|\Phi_0\|^2 + \lambda_\alpha N_\alpha(u) + \lambda_{TV}N_{TV}(u)`
    with :math:`N_\alpha(u)=\sum|u|^\alpha/(HW)` and
    :math:`N_{TV}(u)=\sum((\partial_h u)^2+(\partial_v u)^2)^{\beta/2}/(HW\,(1/6.5)^\beta)`
    (M&V's normalisation: :math:`B` = 80 grey levels, :math:`V = B/6.5`), :math:`\alpha=6`,
    :math:`\beta=2`; Adam on :math:`u` from small seeded noise, the learning rate decayed
    linearly to 0, the image kept inside the valid pixel range after every step. Weights
    and iterations: :class:`OptimizeOptions`.
``"deconvnet"``
    Zeiler & Fergus (2014): back through the network with the encoder's pooling switches
    (unpooling), a ReLU at every ReLU, and each convolution's transpose with the same
    filters (no bias); no training. Its output has no meaningful scale, so it is rescaled
    to :math:`\|x\|` (input space), as §4.5 rescales activations to :math:`\|f\|`.

Every method returns the image in the network's input space (:class:`Inversion`).
"""

from __future__ import annotations

import base64
import io
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnninv._checks import check_positive_int, make_generator
from cnninv.analysis import FILTERS, next_layer, reconstruct_activation
from cnninv.inversion.decoder import (
    Decoder,
    Encoding,
    decoded_pools,
    encode,
    features_of,
    layer_index,
)
from cnninv.metrics import relative_error, rescale_to
from cnninv.models import next_conv

__all__ = [
    "IMAGE_ERROR_DEFINITION",
    "METHODS",
    "RECONSTRUCTIONS",
    "SWITCH_CONDITIONS",
    "VARIANTS",
    "Inversion",
    "OptimizeOptions",
    "activation_stats",
    "decode",
    "deconvnet",
    "first_non_finite",
    "iht_activation",
    "image_metrics",
    "invert",
    "optimize_image",
    "png_base64",
    "random_activation",
    "random_switches",
    "switch_information",
    "switch_objective",
    "table4_activations",
    "table4_reconstructions",
    "topleft_switches",
]

METHODS = ("iht", "decoder", "optimize", "deconvnet")

#: The four decoded images of Table 4 (image space) and Figures 4–5, in order.
RECONSTRUCTIONS = ("original_activation", "iht_learned", "iht_random", "random_activations")

#: Variants of Table 4's rows (not the paper's protocol; reported as extra, labelled rows):
#: the IHT reconstructions projected onto :math:`a \ge 0` (the decoder never saw a negative
#: activation) and the random activations' absolute values, each rescaled to :math:`\|f\|`.
VARIANTS = ("iht_learned_nonneg", "iht_random_nonneg", "random_activations_nonneg")

#: The image-space error of :func:`image_metrics` (``relative_error``).
IMAGE_ERROR_DEFINITION = (
    "||x_hat - x|| / ||x||, x the original photo and x_hat its reconstruction (in Table 4 "
    "and Figures 4-5 the decoder's output), both in the network's input space (VGG16: BGR, "
    "0-255, Caffe mean subtracted), per photo, then the mean over photos"
)


@dataclass
class Inversion:
    """An inversion: ``x_hat`` (network input space, the shape of ``x``), the method, the
    layer, the wall time in seconds (for the whole batch) and details (``info``)."""

    x_hat: torch.Tensor
    method: str
    layer: str
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizeOptions:
    """Settings of the ``"optimize"`` method (Mahendran & Vedaldi 2015).

    iters : Adam iterations (M&V ran a few hundred).
    lr : Adam's initial learning rate on :math:`u = x/B` (decayed linearly to 0).
    alpha, alpha_weight : the :math:`\\alpha`-norm prior (α = 6 as in M&V).
    beta, tv_weight : the total-variation prior :math:`V^\\beta` (β = 2 as in M&V).
        The weights are ours (M&V tune theirs per layer): on a held-out photo at 112 px
        and 200 iterations, TV weight 0.005 gave the lowest image error at pool2 among
        0.001 / 0.005 / 0.02 / 0.05, and was within 0.03 of the best at pool4.
    B : the pixel range, in 0–255 grey levels (M&V: 80); converted to the convention.
    init_std : standard deviation of the starting noise, in units of ``B``.
    """

    iters: int = 200
    lr: float = 0.05
    alpha: float = 6.0
    alpha_weight: float = 1e-5
    beta: float = 2.0
    tv_weight: float = 0.005
    B: float = 80.0
    init_std: float = 0.1

    def __post_init__(self) -> None:
        check_positive_int(self.iters, "iters")
        for name in ("lr", "alpha", "beta", "B"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        for name in ("alpha_weight", "tv_weight", "init_std"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a non-negative number, got {v!r}")


# --------------------------------------------------------------------------- helpers


def random_activation(f: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gaussian random activations rescaled to :math:`\\|f\\|` per sample (Table 4's
    baseline, Figure 4(e))."""
    noise = torch.randn(f.shape, generator=generator, device=f.device, dtype=f.dtype)
    return rescale_to(noise, f)


def _check_images(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a batch of images (B, 3, H, W), got {shape}")


def iht_activation(
    model: nn.Module,
    f: torch.Tensor,
    layer: str,
    *,
    k: int | None = None,
    filters: str = "learned",
    iters: int = 1,
    pool: int = 2,
    variant: str = "abs",
    normalize_filters: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """IHT reconstruction of the pooled activation ``f`` of ``layer`` through the next
    convolution (Table 4's :math:`\\hat f`, rescaled to :math:`\\|f\\|`).

    ``k``: blocks kept; None measures it on ``f`` itself: the density of the next
    convolution's ReLU output (Table 2's quantity) times the number of blocks.
    ``filters``: ``"learned"`` (the network's, unit-normalised when ``normalize_filters``)
    or ``"random"`` (Gaussian filters of the same size drawn from ``generator``).

    Returns ``(f_hat, info)`` with ``info`` holding ``k``, the density, the next
    convolution's name and the activation-space errors :math:`\\|\\hat f-f\\|/\\|f\\|`.
    """
    if filters not in FILTERS:
        raise ValueError(f"filters must be one of {FILTERS}, got {filters!r}")
    check_positive_int(iters, "iters")
    nxt = next_layer(model, layer, f, unit_norm=normalize_filters, pool=pool)
    W = nxt.operator(filters, generator)
    conv_name, density = nxt.conv_name, nxt.density
    if k is None:
        k = nxt.k
    f_hat, err = reconstruct_activation(W, f, k, pool=pool, variant=variant, iters=iters)
    info = {
        "next_conv": conv_name,
        "filters": filters,
        "k": k,
        "density": density,
        "iters": iters,
        "activation_errors": err.tolist(),
    }
    return f_hat, info


def first_non_finite(model: nn.Module, x: torch.Tensor, layer: str) -> str | None:
    """The first layer of ``features`` (up to ``layer``) whose output on ``x`` holds NaN or
    inf, by name (``conv1_1``), or None when every activation is finite."""
    from cnninv.models.layers import block_names

    features = features_of(model)
    names = block_names(features)
    stop = layer_index(model, layer)
    h = x
    with torch.no_grad():
        if not bool(torch.isfinite(h).all()):
            return "the input"
        for i, m in enumerate(features):
            h = m(h)
            if not bool(torch.isfinite(h).all()):
                return names[i]
            if i == stop:
                break
    return None


def decode(decoder: Decoder, enc: Encoding, f: torch.Tensor | None = None) -> torch.Tensor:
    """``decoder`` applied to ``f`` (default: the encoder's own activation) with the
    encoder's switches."""
    with torch.no_grad():
        return decoder(enc.f if f is None else f, enc.switches, enc.sizes)


def table4_activations(
    model: nn.Module,
    enc: Encoding,
    layer: str,
    *,
    k: int,
    generator: torch.Generator,
    iters: int = 1,
    pool: int = 2,
    variant: str = "abs",
    normalize_filters: bool = True,
    variants: bool = False,
) -> tuple[dict[str, torch.Tensor], dict[str, list[float]]]:
    r"""The activations that Table 4 (image space) decodes, for the encoding ``enc`` of a
    batch of photos: ``{name: activation}`` for :data:`RECONSTRUCTIONS` — the original
    :math:`f`, the IHT reconstructions :math:`\hat f = \mathbf W^T\mathbb M(\mathbf Wf, k)`
    with learned and with Gaussian filters, and Gaussian random activations (all rescaled
    to :math:`\|f\|`) — and, with ``variants``, the rows of :data:`VARIANTS` (each
    computed from the same draws, so the paper's rows do not change); and the
    activation-space errors :math:`\|a - f\|/\|f\|` of every row but the first."""
    f = enc.f
    acts = {"original_activation": f}
    for row, filters in (("iht_learned", "learned"), ("iht_random", "random")):
        acts[row], _ = iht_activation(
            model, f, layer, k=k, filters=filters, iters=iters, pool=pool, variant=variant,
            normalize_filters=normalize_filters, generator=generator,
        )  # fmt: skip
    acts["random_activations"] = random_activation(f, generator)
    if variants:
        for row in ("iht_learned", "iht_random", "random_activations"):
            a = acts[row]
            acts[f"{row}_nonneg"] = rescale_to(a.abs() if row == "random_activations" else
                                               a.clamp_min(0.0), f)  # fmt: skip
    act_err = {row: relative_error(a, f).tolist() for row, a in acts.items() if a is not f}
    return acts, act_err


def activation_stats(a: torch.Tensor, f: torch.Tensor) -> dict[str, list[float]]:
    r"""What an activation ``a`` looks like to a decoder trained on activations ``f``
    (per sample): the fraction of negative entries (``f`` has none), the share of
    :math:`\|a\|` in its negative part, the cosine of ``a`` and ``f``, the cosine of their
    per-channel means (the low-frequency content a decoder turns into colour and
    brightness), and the high-frequency ratio
    :math:`\|\partial_v a\|^2/\|a\|^2` (1 for spatially white noise, small for smooth
    maps; ``f``'s own is reported beside it)."""
    cos = F.cosine_similarity(a.flatten(1), f.flatten(1), dim=1)
    chan = F.cosine_similarity(a.mean((2, 3)), f.mean((2, 3)), dim=1)

    def hf(t: torch.Tensor) -> torch.Tensor:
        d = t[..., 1:, :] - t[..., :-1, :]
        return d.flatten(1).pow(2).sum(1) / t.flatten(1).pow(2).sum(1).clamp_min(1e-30)

    norm = a.flatten(1).norm(dim=1).clamp_min(1e-30)
    return {
        "negative_fraction": (a < 0).flatten(1).float().mean(1).tolist(),
        "negative_norm_share": (a.clamp(max=0).flatten(1).norm(dim=1) / norm).tolist(),
        "cosine_with_f": cos.tolist(),
        "channel_mean_cosine": chan.tolist(),
        "high_frequency_ratio": hf(a).tolist(),
        "high_frequency_ratio_of_f": hf(f).tolist(),
    }


def table4_reconstructions(
    model: nn.Module, x: torch.Tensor, layer: str, decoder: Decoder, **settings: Any
) -> tuple[dict[str, torch.Tensor], dict[str, list[float]]]:
    r"""The decoded images of Table 4 / Figures 4–5 for a batch of photos ``x``:
    ``{name: x_hat}`` for :data:`RECONSTRUCTIONS` (and :data:`VARIANTS` with
    ``variants=True``) — the decoder on each activation of :func:`table4_activations`
    (``settings``: its keyword arguments, ``k`` and ``generator`` among them), all decoded
    with the photo's own switches — and the activation-space errors of all rows but the
    first."""
    enc = encode(model, x, layer)
    acts, act_err = table4_activations(model, enc, layer, **settings)
    return {row: decode(decoder, enc, a) for row, a in acts.items()}, act_err


def deconvnet(model: nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """Zeiler & Fergus's deconvnet from ``layer`` back to the input (not rescaled):
    unpool with the switches, ReLU, transposed convolutions with the same filters."""
    features = features_of(model)
    stop = layer_index(model, layer)
    enc = encode(model, x, layer)
    y = enc.f
    n_pool = len(enc.switches)
    with torch.no_grad():
        for i in range(stop, -1, -1):
            m = features[i]
            if isinstance(m, nn.MaxPool2d):
                n_pool -= 1
                y = F.max_unpool2d(y, enc.switches[n_pool], 2, 2, output_size=enc.sizes[n_pool])
            elif isinstance(m, nn.ReLU):
                y = F.relu(y)
            else:
                y = F.conv_transpose2d(y, m.weight, padding=m.padding)
    return y


def _pixel_box(convention, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel bounds of the network input for RGB images in [0, 1]."""
    lo = convention.to_input(torch.zeros(3, 1, 1, dtype=like.dtype))
    hi = convention.to_input(torch.ones(3, 1, 1, dtype=like.dtype))
    return torch.minimum(lo, hi).to(like.device), torch.maximum(lo, hi).to(like.device)


def _total_variation(u: torch.Tensor, beta: float) -> torch.Tensor:
    """:math:`\\sum((\\partial_h u)^2+(\\partial_v u)^2)^{\\beta/2}` per sample over the last two
    axes of an image; over the one axis longer than 1 of a signal ``(B, C, L)`` or
    ``(B, C, L, 1)``."""
    if u.dim() >= 4 and u.shape[-1] > 1 and u.shape[-2] > 1:
        dh = u[..., 1:, :-1] - u[..., :-1, :-1]
        dw = u[..., :-1, 1:] - u[..., :-1, :-1]
        tv = (dh.pow(2) + dw.pow(2)).clamp_min(1e-12).pow(beta / 2)
    else:
        axis = next((a for a in range(u.dim() - 1, 0, -1) if u.shape[a] > 1), u.dim() - 1)
        d = u.diff(dim=axis)
        tv = d.pow(2).clamp_min(1e-12).pow(beta / 2)
    return tv.flatten(1).sum(1)


def _prepool_maps(model: nn.Module, x: torch.Tensor, layer: str) -> list[torch.Tensor]:
    """The input of every pool up to ``layer`` (the pools of ``features``, pool1 first),
    with gradients."""
    features = features_of(model)
    stop = layer_index(model, layer)
    maps, h = [], x
    for i, m in enumerate(features):
        if i > stop:
            break
        if isinstance(m, nn.MaxPool2d):
            maps.append(h)
            h = F.max_pool2d(h, 2, 2)
        else:
            h = m(h)
    return maps


def _at_switches(h: torch.Tensor, switches: torch.Tensor) -> torch.Tensor:
    """The entries of the pre-pool map ``h`` at the switches (pooled shape)."""
    return h.flatten(2).gather(2, switches.flatten(2)).view_as(switches)


def switch_objective(
    maps: list[torch.Tensor], values: torch.Tensor, switches: list[torch.Tensor]
) -> torch.Tensor:
    r"""Per sample: how far an image's pre-pool maps :math:`h_1, …, h_N` are from having
    their block maxima at ``switches`` and, at pool N, the values ``values`` there:

    .. math::
        \frac{\|h_N[s_N] - v\|^2}{\|v\|^2}
        + \sum_{p=1}^{N} \frac{\|\mathrm{ReLU}(h_p - \mathrm{up}(h_p[s_p]))\|^2}
                              {\|h_p[s_p]\|^2}

    (``up``: each block's switch value copied over its 2×2 block), 0 exactly when every
    switch is its block's maximum and the values match: the information of
    ``(values, switches)``, as the what-where decoder receives it."""
    v_norm = values.flatten(1).pow(2).sum(1).clamp_min(1e-12)
    at_n = _at_switches(maps[-1], switches[-1])
    total = (at_n - values).flatten(1).pow(2).sum(1) / v_norm
    for h, sw in zip(maps, switches, strict=True):
        at = _at_switches(h, sw)
        up = F.interpolate(at, size=h.shape[-2:], mode="nearest")
        excess = (h - up).clamp_min(0.0).flatten(1).pow(2).sum(1)
        total = total + excess / at.flatten(1).pow(2).sum(1).clamp_min(1e-12)
    return total


def optimize_image(
    model: nn.Module,
    target: torch.Tensor,
    layer: str,
    convention,
    image_shape: tuple[int, ...],
    *,
    options: OptimizeOptions | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    features: Callable[[torch.Tensor], torch.Tensor] | None = None,
    switches: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    r"""Mahendran & Vedaldi's inversion of ``target`` (the activations at ``layer``).

    With ``switches`` (the switches of every pool up to ``layer``, a ``poolN`` layer) the
    data term is :func:`switch_objective` instead of
    :math:`\|\Phi(x)-\Phi_0\|^2/\|\Phi_0\|^2`: the image must also put each block's
    maximum at its switch, the information the what-where decoder is given.

    ``features`` maps an input to the activation to match (differentiably); by default
    the VGG-style encoder up to ``layer``. With ``convention`` None (signals, arrays) the
    input is not boxed to a pixel range and its scale unit ``B`` is 1.

    Returns the input (network input space) and ``{"objective": [...], "feature_error":
    [...]}`` per iteration (the square root of the data term, mean over the batch).
    """
    opts = options or OptimizeOptions()
    dev = target.device
    gen = generator if generator is not None else make_generator(0, None, dev)
    if switches is not None and features is not None:
        raise ValueError("give switches (a VGG-style poolN) or features, not both")
    if switches is not None and len(switches) != decoded_pools(model, layer):
        raise ValueError(
            f"switches must hold one tensor per pool up to {layer}, got {len(switches)}"
        )
    if features is None:

        def features(u: torch.Tensor) -> torch.Tensor:
            return encode(model, u, layer, grad=True).f

    if convention is not None:
        # B grey levels in the network's units (Caffe: 80; torchvision: 80/255/std)
        B = opts.B / 255.0 * float(convention.scale) / (sum(convention.std) / 3.0)
        lo, hi = _pixel_box(convention, target)
        lo, hi = lo / B, hi / B
    else:
        B, lo, hi = 1.0, None, None
    u = torch.randn(image_shape, generator=gen, device=dev) * opts.init_std
    if lo is not None:
        u = u.clamp(lo, hi)
    u.requires_grad_(True)
    opt = torch.optim.Adam([u], lr=opts.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 - i / opts.iters)
    t_norm = target.flatten(1).pow(2).sum(1).clamp_min(1e-12)
    hw = math.prod(image_shape[1:]) / (image_shape[1] if len(image_shape) > 2 else 1)
    history: dict[str, list[float]] = {"objective": [], "feature_error": []}
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    steps = range(opts.iters)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=f"optimize {layer}", leave=False, dynamic_ncols=True)
    try:
        for _ in steps:
            if switches is None:
                phi = features(u * B)
                data = (phi - target).flatten(1).pow(2).sum(1) / t_norm
            else:
                data = switch_objective(_prepool_maps(model, u * B, layer), target, switches)
            r_alpha = u.abs().pow(opts.alpha).flatten(1).sum(1) / hw
            r_tv = _total_variation(u, opts.beta) / hw * 6.5**opts.beta
            loss = (data + opts.alpha_weight * r_alpha + opts.tv_weight * r_tv).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if lo is not None:
                with torch.no_grad():
                    u.copy_(torch.max(torch.min(u, hi), lo))
            history["objective"].append(loss.item() / image_shape[0])
            history["feature_error"].append(float(data.detach().sqrt().mean()))
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
    return (u.detach() * B), history


# --------------------------------------------------------------------------- switches
#: What the switch experiment gives a decoder (or the optimisation), in order.
SWITCH_CONDITIONS = ("values_and_switches", "switches_only", "values_only", "neither")


def topleft_switches(
    switches: list[torch.Tensor], sizes: list[tuple[int, int]]
) -> list[torch.Tensor]:
    """Switches that point at the top-left entry of every 2×2 block (naive unpooling),
    shaped like ``switches``."""
    out = []
    for sw, (_, w) in zip(switches, sizes, strict=True):
        ph, pw = sw.shape[-2:]
        r = torch.arange(ph, device=sw.device).view(ph, 1)
        c = torch.arange(pw, device=sw.device).view(1, pw)
        out.append((2 * r * w + 2 * c).expand_as(sw).contiguous())
    return out


def random_switches(
    switches: list[torch.Tensor], sizes: list[tuple[int, int]], generator: torch.Generator
) -> list[torch.Tensor]:
    """Switches drawn uniformly inside each 2×2 block, shaped like ``switches``."""
    out = []
    for base, sw, (_, w) in zip(topleft_switches(switches, sizes), switches, sizes, strict=True):
        off = torch.randint(4, sw.shape, generator=generator, device=sw.device)
        out.append(base + (off // 2) * w + off % 2)
    return out


def switch_information(
    enc: Encoding, condition: str, generator: torch.Generator
) -> tuple[torch.Tensor, list[torch.Tensor], str]:
    r"""The values and switches a decoder is given under ``condition``
    (:data:`SWITCH_CONDITIONS`), and a note on what they are:

    * ``values_and_switches``: :math:`f` and the encoder's switches;
    * ``switches_only``: every pooled unit set to the layer's mean magnitude on the photo
      (one number), the encoder's switches;
    * ``values_only``: :math:`f`, switches at every block's top-left (naive unpooling);
    * ``neither``: :math:`|g|`, :math:`g` Gaussian, rescaled to :math:`\|f\|`; switches
      drawn uniformly in each block, at every pool.
    """
    f = enc.f
    if condition == "values_and_switches":
        return f, enc.switches, "f and the encoder's switches"
    if condition == "switches_only":
        mean = f.abs().flatten(1).mean(1).view(-1, 1, 1, 1)
        return (
            mean.expand_as(f).contiguous(),
            enc.switches,
            ("every unit = the layer's mean magnitude on the photo; the encoder's switches"),
        )
    if condition == "values_only":
        return (
            f,
            topleft_switches(enc.switches, enc.sizes),
            ("f; every switch at its block's top-left (naive unpooling)"),
        )
    if condition == "neither":
        noise = torch.randn(f.shape, generator=generator, device=f.device, dtype=f.dtype)
        return (
            rescale_to(noise.abs(), f),
            random_switches(enc.switches, enc.sizes, generator),
            ("|Gaussian| rescaled to ||f||; switches uniform in each block"),
        )
    raise ValueError(f"condition must be one of {SWITCH_CONDITIONS}, got {condition!r}")


# --------------------------------------------------------------------------- invert
def invert(
    net,
    x: torch.Tensor,
    layer: str,
    method: str,
    *,
    decoder: Decoder | None = None,
    iters: int | None = None,
    filters: str = "learned",
    k: int | None = None,
    pool: int = 2,
    variant: str = "abs",
    normalize_filters: bool = True,
    optimize: OptimizeOptions | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Inversion:
    """Reconstruct the images ``x`` from their activations at ``layer`` by ``method``.

    Parameters
    ----------
    net : LoadedNetwork
        The network (VGG-style ``features``) and its input convention.
    x : Tensor (B, 3, H, W)
        The images, preprocessed for ``net`` (the activations are computed from them).
    layer : str
        ``pool1`` … ``pool5`` for every method; ``convX_Y`` / ``reluX_Y`` for ``optimize``
        and ``deconvnet``. ``iht`` needs ``pool1`` … ``pool4`` (a convolution must follow).
    method : one of :data:`METHODS`.
    decoder : the ``layer`` decoder (``"decoder"`` and ``"iht"``).
    iters : IHT iterations (default 1, the paper's) or Adam iterations for ``optimize``
        (default ``optimize.iters``, 200).
    filters : ``"learned"`` or ``"random"`` (``iht``).
    k, pool, variant, normalize_filters : IHT's settings (:func:`iht_activation`).
    optimize : :class:`OptimizeOptions`.
    seed : seeds the random filters and the starting noise of ``optimize``.

    Raises
    ------
    ValueError
        Unknown method or layer, a method that does not apply to the layer, a missing or
        mismatched decoder.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _check_images(x)
    if iters is not None:
        check_positive_int(iters, "iters")
    model = net.model
    layer_index(model, layer)
    gen = make_generator(seed, None, x.device)
    info: dict[str, Any] = {}
    if method in ("decoder", "iht"):
        n = decoded_pools(model, layer)
        if decoder is None:
            raise ValueError(
                f"method {method!r} needs the {layer} decoder: train one with "
                f"`cnninv train-decoder --layer {layer}` (or get_decoder())"
            )
        if not isinstance(decoder, Decoder) or decoder.n_pools != n:
            raise ValueError(
                f"the decoder given decodes pool{getattr(decoder, 'n_pools', '?')}, not {layer}"
            )
        if method == "iht":
            next_conv(model, layer)
    started = time.perf_counter()
    if method == "decoder":
        enc = encode(model, x, layer)
        x_hat = decode(decoder, enc)
    elif method == "iht":
        enc = encode(model, x, layer)
        f_hat, info = iht_activation(
            model, enc.f, layer, k=k, filters=filters, iters=iters or 1, pool=pool,
            variant=variant, normalize_filters=normalize_filters, generator=gen,
        )  # fmt: skip
        x_hat = decode(decoder, enc, f_hat)
    elif method == "optimize":
        opts = optimize or OptimizeOptions()
        if iters is not None:
            opts = OptimizeOptions(**{**asdict(opts), "iters": iters})
        target = encode(model, x, layer).f
        x_hat, history = optimize_image(
            model, target, layer, net.convention, tuple(x.shape), options=opts,
            generator=gen, progress=progress,
        )  # fmt: skip
        info = {
            "options": asdict(opts),
            "final_feature_error": history["feature_error"][-1],
            "feature_error_by_iter": history["feature_error"],
        }
    else:
        x_hat = rescale_to(deconvnet(model, x, layer), x)
        info = {"rescaled_to": "||x|| (input space), per image"}
    seconds = time.perf_counter() - started
    if not bool(torch.isfinite(x_hat).all()):
        where = first_non_finite(model, x, layer)
        raise ValueError(
            f"method {method!r} gave a non-finite image (NaN or inf): "
            + (
                f"the activations are already non-finite at {where} (weights or inputs too "
                "large for float32?)"
                if where is not None
                else "the activations are finite, the reconstruction overflows"
            )
        )
    return Inversion(x_hat.detach(), method, layer, seconds, info)


# --------------------------------------------------------------------------- measures
def _rgb(x: torch.Tensor, convention) -> torch.Tensor:
    return convention.to_rgb(x.detach().float().cpu()).clamp(0.0, 1.0)


def image_metrics(x_hat: torch.Tensor, x: torch.Tensor, convention) -> dict[str, list[float]]:
    """Per image: ``relative_error`` :math:`\\|\\hat x-x\\|/\\|x\\|` in the network's input
    space (for VGG16: BGR, 0–255, mean subtracted), ``rgb_relative_error`` the same on
    RGB in [0, 1] (``x_hat`` clipped), ``psnr`` (dB) and ``ssim`` (scikit-image,
    ``data_range=1``, ``channel_axis``) on RGB in [0, 1]."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    if x_hat.shape != x.shape:
        raise ValueError(f"x_hat {tuple(x_hat.shape)} and x {tuple(x.shape)} differ in shape")
    rel = relative_error(x_hat.detach().float().cpu(), x.detach().float().cpu())
    a, b = _rgb(x_hat, convention), _rgb(x, convention)
    rgb_rel = relative_error(a, b)
    a_np = a.permute(0, 2, 3, 1).numpy().astype("float64")
    b_np = b.permute(0, 2, 3, 1).numpy().astype("float64")
    psnr, ssim = [], []
    for i in range(a_np.shape[0]):
        with np.errstate(divide="ignore"):  # identical images: PSNR = inf
            psnr.append(float(peak_signal_noise_ratio(b_np[i], a_np[i], data_range=1.0)))
        ssim.append(float(structural_similarity(b_np[i], a_np[i], channel_axis=-1, data_range=1.0)))
    return {
        "relative_error": rel.tolist(),
        "rgb_relative_error": rgb_rel.tolist(),
        "psnr": psnr,
        "ssim": ssim,
    }


def png_base64(x: torch.Tensor, convention, size: int | None = None) -> str:
    """One image (network input ``(3, H, W)``) as a base64 PNG of RGB, optionally resized
    to ``size``×``size``, for JSON results that carry their pictures."""
    from PIL import Image

    rgb = _rgb(x.unsqueeze(0), convention)[0].permute(1, 2, 0).numpy()
    img = Image.fromarray((rgb * 255.0 + 0.5).astype("uint8"))
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")
