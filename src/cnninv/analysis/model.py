r"""The paper's analyses, per convolution, for any CNN: :func:`analyze_model`.

For every convolution that :func:`cnninv.models.discovery.discover` finds (or those
named), on the user's inputs:

* shapes, stride, the activation and pooling that follow, and the paper's assumptions
  that hold or fail for the layer, in plain sentences (:func:`assumptions`);
* the % of non-zero activations after the activation and after the pooling (Table 2);
* the coherence of the filters, without and with shifts, beside Gaussian filters of the
  same shape (Table 3);
* the model-RIP ratios :math:`\|\mathbf W^Tz\|/\|z\|` on synthetic model-sparse codes with
  the layer's measured sparsity (Figure 3a) and on Algorithm 2 codes recovered from the
  layer's real input activations (Figure 3b/c), with the fit error beside them; learned
  beside Gaussian filters;
* the empirical :math:`\delta_k`, :math:`\delta_{2k}` (lower bounds: maxima over samples)
  and Theorem 3.3's bound at them;
* the reconstruction error of the real input activation by IHT at every iteration up to
  ``iht_iters`` (Table 4, activation space), learned beside Gaussian filters;
* optionally (``"delta"``, not run by default: it is the costliest), :math:`\delta_k` and
  :math:`\delta_{2k}` bracketed from both sides (:func:`cnninv.theory.delta_bracket`:
  lower bounds attained by explicit supports, coherence and Babel upper bounds) and
  Theorem 3.3's bound at each end, for the learned filters.

The layer's :math:`\mathbf W` is its convolution with a following batch norm folded in,
filters scaled to unit norm (as §4.4 does); the bias is an offset, not part of
:math:`\mathbf W`, and is left out, as the paper does. The model-sparse blocks are the
layer's own max-pooling regions when it has non-overlapping max pooling, else each entry
is its own block (plain k-sparsity, e.g. ReLU-only sparsity), and the result says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from cnninv._checks import check_memory, check_positive_int, make_generator
from cnninv.analysis.measures import filter_coherence
from cnninv.analysis.reconstruction import k_for_fraction
from cnninv.metrics import relative_error, rescale_to
from cnninv.models.discovery import ConvLayer, Discovery, discover
from cnninv.operators import ConvOperator
from cnninv.recovery import algorithm2, iht, lam_max
from cnninv.theory import (
    bracket_summary,
    delta_bracket,
    empirical_delta,
    model_rip_ratios,
    sample_model_sparse,
    theorem33_bound,
)

__all__ = [
    "ANALYSES",
    "DEFAULT_ANALYSES",
    "ModelAnalysis",
    "analyze_model",
    "assumptions",
    "blocks_of",
]

#: The analyses :func:`analyze_model` can run on each layer.
ANALYSES = ("density", "coherence", "rip", "iht", "algorithm2", "delta")
#: Those it runs unless told: every one but the bracketed δ (the costliest).
DEFAULT_ANALYSES = ANALYSES[:5]

#: Activations that produce exact zeros (sparsity).
_SPARSIFYING = {"relu", "relu6", "threshold", "clamp_min"}


@dataclass
class ModelAnalysis:
    """The result of :func:`analyze_model`: ``layers`` maps each convolution's name to its
    analysis (a JSON-ready dict), in forward order; ``config`` the settings; ``model`` the
    model's description and provenance given by the caller; ``notes`` what the discovery
    could not describe."""

    layers: dict[str, dict[str, Any]]
    config: dict[str, Any]
    model: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": "analyze",
            "title": "Invertibility analysis of every convolution (Gilbert et al. 2017, §3-4)",
            "model": self.model,
            "config": self.config,
            "layers": self.layers,
            "notes": self.notes,
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def to_frame(self):
        """One row per layer as a ``pandas.DataFrame`` (pandas is optional): the scalar
        columns, ``rip_ratio`` and ``rip_ratio_gaussian`` as their median, and the IHT
        errors at 1, 5 and 20 iterations."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ValueError("to_frame() needs pandas: pip install pandas") from exc
        rows = []
        for name, r in self.layers.items():
            row = {"layer": name}
            for key in ("kind", "stride", "activation", "density_percent", "coherence",
                        "coherence_gaussian", "delta_lower", "theorem33_bound"):  # fmt: skip
                v = r.get(key)
                row[key] = tuple(v) if isinstance(v, list) else v
            row["pool"] = None if r.get("pool") is None else r["pool"]["kind"]
            for key in ("rip_ratio", "rip_ratio_gaussian"):
                row[f"{key}_p50"] = (r.get(key) or {}).get("p50")
            errs = r.get("iht_error_by_iter") or []
            for it in (1, 5, 20):
                row[f"iht_error_{it}"] = errs[it - 1] if len(errs) >= it else None
            row["assumptions_failing"] = sum(
                1 for a in r.get("assumptions", []) if a["holds"] is False
            )
            rows.append(row)
        return pd.DataFrame(rows).set_index("layer")


# --------------------------------------------------------------------------- assumptions
def blocks_of(layer: ConvLayer) -> tuple[int | tuple[int, ...], str]:
    """The model-sparse block structure used for ``layer`` and why: its own max-pooling
    regions when they partition the map (non-overlapping max pooling), else one entry
    per block (plain k-sparsity)."""
    pool = layer.pool
    if pool is not None and pool.kind == "max" and not pool.global_ and not pool.overlapping:
        return tuple(pool.kernel), "the layer's own max-pooling regions"
    return 1, "every entry its own block (k-sparse without block structure)"


def _x(sizes) -> str:
    return "×".join(map(str, sizes))


def _sentence(holds: bool | None, text: str) -> dict[str, Any]:
    return {"holds": holds, "text": text}


def assumptions(layer: ConvLayer) -> list[dict[str, Any]]:
    """The paper's assumptions for ``layer``, each ``{"holds": True|False|None, "text"}``
    (None: holds with a caveat said in the text)."""
    out = []
    kind = f"{layer.ndim}-d" if layer.singleton_axis is None else "1-d (a 2-d one wide)"
    if layer.transposed:
        out.append(_sentence(False, "a transposed convolution: not a layer x ↦ 𝕄(Wx); skipped"))
        return out
    conv = (
        f"W is a {kind} convolution (K={layer.out_channels} filters of size "
        f"{_x(layer.kernel_size)} over M={layer.in_channels} channels)"
    )
    extras = []
    if any(s > 1 for s in layer.stride):
        extras.append(f"stride t={_x(layer.stride)} (the paper's t: W subsamples)")
    if any(d > 1 for d in layer.dilation):
        extras.append(f"dilation {_x(layer.dilation)} (filters with holes; still a structured W)")
    if layer.groups > 1:
        extras.append(
            f"groups={layer.groups}: W is block-diagonal"
            + (" (depthwise)" if layer.groups == layer.in_channels else "")
        )
    out.append(_sentence(True, conv + ("; " + ", ".join(extras) if extras else "")))
    if layer.pre_pad is not None:
        name, pads = layer.pre_pad
        out.append(
            _sentence(
                None,
                f"{name} {pads} is applied before the convolution: W acts on the padded input "
                f"{tuple(layer.in_shape)} (the padding is a separate linear map)",
            )
        )
    if layer.batch_norm is not None:
        out.append(
            _sentence(
                True,
                "batch norm folded into W and b (W' = γ/σ·W, b' = γ/σ·(b − μ) + β, "
                f"eps={layer.batch_norm['eps']}): an affine layer, as the paper's",
            )
        )
    out.append(
        _sentence(
            None,
            "the bias is an offset, not part of W: the analysis takes h = Wx (bias left "
            "out, as the paper does)"
            if layer.bias is not None
            else "no bias: h = Wx exactly",
        )
    )
    act = layer.activation
    if act in _SPARSIFYING:
        out.append(_sentence(True, f"{act}: sparsifies (exact zeros), as the paper's ReLU"))
    elif act is None:
        out.append(
            _sentence(False, "no activation: h is not sparse; 𝕄 keeps the k largest entries")
        )
    else:
        out.append(
            _sentence(
                False,
                f"{act} does not produce zeros: the code is not sparse and the paper's "
                "model-sparse assumption fails; k is measured from exact zeros (all blocks "
                "when none), the ratios and IHT are computed as for the paper's layers",
            )
        )
    pool = layer.pool
    _, why = blocks_of(layer)
    if pool is None:
        out.append(
            _sentence(
                False,
                "no pooling after the convolution: no block structure (ReLU-only sparsity); "
                f"blocks used: {why}",
            )
        )
    elif pool.kind == "max" and pool.global_:
        out.append(
            _sentence(False, f"global max pooling: one value per channel; blocks used: {why}")
        )
    elif pool.kind == "max" and not pool.overlapping:
        ceil = " (ceil mode: partial border regions are blocks too)" if pool.ceil_mode else ""
        out.append(
            _sentence(
                True,
                f"non-overlapping max pooling {_x(pool.kernel)}: the "
                f"model-sparse projection 𝕄 with these blocks{ceil}",
            )
        )
    elif pool.kind == "max":
        out.append(
            _sentence(
                False,
                f"overlapping max pooling (kernel {_x(pool.kernel)}, stride "
                f"{_x(pool.stride)}"
                f"{', ceil mode' if pool.ceil_mode else ''}): not a projection onto "
                f"block-sparse codes; blocks used: {why}",
            )
        )
    else:
        out.append(
            _sentence(
                False,
                f"{'global ' if pool.global_ else ''}average pooling is linear, not a "
                f"model-sparse projection; blocks used: {why}",
            )
        )
    if layer.residual:
        out.append(
            _sentence(
                False,
                "the output joins a residual sum: the layer is not x ↦ 𝕄(Wx); the analysis "
                "covers the convolution branch alone",
            )
        )
    elif layer.branches:
        out.append(_sentence(None, "the output feeds several branches; each is analysed apart"))
    return out


# --------------------------------------------------------------------------- activations
class _Tap(TorchDispatchMode):
    """Hands selected operations' inputs or outputs to callbacks during a forward pass, and
    checks that the pass runs the operations of the recorded one."""

    def __init__(self, signature: list[str], taps: dict[int, list[Callable]]) -> None:
        super().__init__()
        self.signature, self.taps, self.i = signature, taps, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        i = self.i
        self.i += 1
        if i < len(self.signature) and func.overloadpacket.__name__ != self.signature[i]:
            raise ValueError(
                "the model's forward pass runs other operations on other inputs (operation "
                f"{i}: {func.overloadpacket.__name__} instead of {self.signature[i]}); the "
                "analysis needs one graph for every input"
            )
        for cb in self.taps.get(i, ()):
            cb(args, out)
        return out


@dataclass
class _Collected:
    inputs: list[torch.Tensor] = field(default_factory=list)
    kept: int = 0
    act_pct: list[float] = field(default_factory=list)
    pool_pct: list[float] = field(default_factory=list)


def _percent_per_sample(t: torch.Tensor) -> list[float]:
    flat = t.detach().reshape(t.shape[0], -1)
    return (100.0 * (flat != 0).sum(1).double() / flat.shape[1]).tolist()


def _collect(
    model: nn.Module,
    inputs: torch.Tensor,
    found: Discovery,
    layers: list[ConvLayer],
    *,
    keep: int,
    batch_size: int,
    progress: bool,
) -> dict[str, _Collected]:
    """Per layer: the first ``keep`` input activations and the per-sample densities after
    the activation and after the pooling, over all ``inputs``."""
    got = {layer.name: _Collected() for layer in layers}
    taps: dict[int, list[Callable]] = {}

    def add(index: int | None, cb: Callable) -> None:
        if index is not None:
            taps.setdefault(index, []).append(cb)

    for layer in layers:
        c = got[layer.name]

        def grab_input(args, out, c=c):
            if c.kept < keep:
                x = args[0][: keep - c.kept].detach().to("cpu", copy=True)
                c.inputs.append(x)
                c.kept += x.shape[0]

        def act(args, out, c=c):
            c.act_pct += _percent_per_sample(out[0] if isinstance(out, tuple | list) else out)

        def pooled(args, out, c=c):
            c.pool_pct += _percent_per_sample(out[0] if isinstance(out, tuple | list) else out)

        add(layer.op_index, grab_input)
        add(layer.activation_op if layer.activation_op is not None else layer.op_index, act)
        add(layer.pool_op, pooled)
    chunks = list(torch.split(inputs, batch_size))
    steps = chunks
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(chunks, desc="analyse: activations", leave=False, dynamic_ncols=True)
    for chunk in steps:
        tap = _Tap(found.signature(), taps)
        with torch.no_grad(), tap:
            model(chunk)
    return got


# --------------------------------------------------------------------------- per layer
def _summary(values: torch.Tensor) -> dict[str, float]:
    v = values.detach().double().flatten().cpu()
    q = torch.quantile(v, torch.tensor([0.01, 0.5, 0.99], dtype=torch.float64))
    return {"p01": float(q[0]), "p50": float(q[1]), "p99": float(q[2]), "n": int(v.numel())}


def _expand_groups(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """A grouped filter bank ``(K, M/g, …)`` as the full ``(K, M, …)`` bank (zeros outside
    each filter's group): the rows of the block-diagonal W."""
    if groups == 1:
        return weight
    K, per = weight.shape[:2]
    full = weight.new_zeros((K, per * groups, *weight.shape[2:]))
    out_per = K // groups
    for g in range(groups):
        full[g * out_per : (g + 1) * out_per, g * per : (g + 1) * per] = weight[
            g * out_per : (g + 1) * out_per
        ]
    return full


def _chunked(total: int, bytes_per_item: int, budget: int = 2**30) -> list[int]:
    per = max(1, budget // max(bytes_per_item, 1))
    sizes = [per] * (total // per)
    if total % per:
        sizes.append(total % per)
    return sizes


def _rip(
    W: ConvOperator, k: int, pool, samples: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ratios ‖Wᵀz‖/‖z‖ for model-k-sparse and model-2k-sparse codes (z1 + z2)."""
    item = 4 * math.prod(W.out_shape) + 4 * math.prod(W.in_shape)
    r1, r2 = [], []
    dev = W.weight.device
    for b in _chunked(samples, 3 * item):
        z = sample_model_sparse(b, W.out_shape, k, pool, generator=gen, device=dev)
        r1.append(model_rip_ratios(W, z).cpu())
        z2 = sample_model_sparse(b, W.out_shape, k, pool, generator=gen, device=dev).add_(z)
        del z
        r2.append(model_rip_ratios(W, z2).cpu())
    return torch.cat(r1), torch.cat(r2)


def _iht_errors(
    W: ConvOperator, f: torch.Tensor, k: int, pool, iters: int
) -> tuple[list[float], float]:
    """Mean relative error (rescaled to ‖f‖, as Table 4) of normalised IHT after each of
    ``iters`` iterations, and of the paper's one step (step 1, the feed-forward layer)."""
    per_iter: list[torch.Tensor] = []

    def record(_it, z, _stat):
        per_iter.append(relative_error(rescale_to(W.T(z).contiguous(), f), f))

    iht(W, f, k, pool=pool, max_iter=iters, step="normalized", callback=record)
    while len(per_iter) < iters:  # converged early: the estimate no longer changes
        per_iter.append(per_iter[-1])
    one = iht(W, f, k, pool=pool, max_iter=1)
    one_err = relative_error(rescale_to(one.x_hat.contiguous(), f), f)
    return [float(e.mean()) for e in per_iter], float(one_err.mean())


def _algorithm2(
    W: ConvOperator, x: torch.Tensor, pool, lam_fraction: float, max_iter: int
) -> dict[str, Any]:
    x = x / x.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *([1] * (x.dim() - 1)))
    lam = lam_fraction * float(lam_max(W, x).median())
    if not lam > 0:
        return {"note": "λ_max is 0 (W x = 0): no code to recover"}
    res = algorithm2(W, x, lam, pool, variant="abs", max_iter=max_iter, tol=1e-4)
    nonzero = res.z.flatten(1).abs().sum(1) > 0
    if not bool(nonzero.any()):
        return {"note": "Algorithm 2 returned z = 0 for every input at this λ", "lam": lam}
    ratios = model_rip_ratios(W, res.z[nonzero])
    fit = (x - res.x_hat).flatten(1).norm(dim=1)
    return {
        **_summary(ratios),
        "fit_error": float(fit.mean()),
        "code_density": float((res.z != 0).double().mean()),
        "lam": lam,
        "lam_fraction": lam_fraction,
    }


def _analyse_layer(
    layer: ConvLayer,
    index: int,
    col: _Collected,
    cfg: dict[str, Any],
    gen: torch.Generator,
    device: torch.device,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        **layer.summary(),
        "stride": list(layer.stride),
        "assumptions": assumptions(layer),
    }
    if layer.transposed:
        return out
    act_pct = sum(col.act_pct) / len(col.act_pct) if col.act_pct else None
    pool_pct = sum(col.pool_pct) / len(col.pool_pct) if col.pool_pct else None
    out["density_percent"] = act_pct
    out["density_after_pool_percent"] = pool_pct
    wanted = cfg["analyses"]
    if "coherence" in wanted:
        weight = _expand_groups(layer.weight.detach().cpu(), layer.groups)
        stride = layer.stride[0] if len(set(layer.stride)) == 1 else 1
        c = filter_coherence(weight, stride=stride, seed=cfg["seed"] + index)
        out["coherence"] = {"noshift": c["learned_noshift"], "shift": c["learned_shift"]}
        out["coherence_gaussian"] = {"noshift": c["random_noshift"], "shift": c["random_shift"]}
        if len(set(layer.stride)) > 1:
            out["coherence_note"] = "shift coherence over every shift (anisotropic stride)"
    if not {"rip", "iht", "algorithm2", "delta"} & set(wanted):
        return out
    W = layer.operator().to(device)
    try:
        W = W.unit_norm_filters()
    except ValueError:
        out["note"] = "a filter is all zero: W is used as it is, not unit-normalised"
    # Gaussian filters of the layer's shape (groups included), rows of unit norm
    G = W.gaussian_like(unit_norm_rows=True, generator=gen)
    pool, why = blocks_of(layer)
    out["blocks"] = {"pool": pool if isinstance(pool, int) else list(pool), "why": why}
    fraction = (act_pct or 0.0) / 100.0
    k = k_for_fraction(max(fraction, 1e-6), W.out_shape, pool)
    out["k"] = k
    out["k_fraction"] = fraction
    if "rip" in wanted:
        learned, learned2 = _rip(W, k, pool, cfg["samples"], gen)
        gauss, _ = _rip(G, k, pool, cfg["samples"], gen)
        out["rip_ratio"] = _summary(learned)
        out["rip_ratio_gaussian"] = _summary(gauss)
        d_k = empirical_delta(learned)
        d_2k = max(empirical_delta(learned2), d_k)
        out["delta_lower"] = d_k
        out["delta_2k_lower"] = d_2k
        out["delta_note"] = "largest deviation over the sampled codes: a lower bound on δ"
        out["theorem33_bound"] = theorem33_bound(d_k, d_2k) if d_2k < 1 else None
    if "delta" in wanted:
        effort = dict(
            samples=cfg["delta_samples"],
            starts=2,
            sweeps=cfg["delta_iters"],
            tpm_iters=cfg["delta_iters"],
            lanczos_steps=cfg["delta_iters"],
            seed=cfg["seed"] + index,
        )
        out["delta"] = bracket_summary(
            delta_bracket(W, k, pool, order=1, **effort),
            delta_bracket(W, k, pool, order=2, **effort),
            W.out_shape,
        )
    x = torch.cat(col.inputs).to(device=device, dtype=W.weight.dtype) if col.inputs else None
    if x is not None and x.shape[1:] == tuple(W.in_shape):
        usable = x.flatten(1).norm(dim=1) > 0
        x = x[usable]
    else:
        x = None
    if x is None or x.shape[0] == 0:
        out["iht_note"] = "no non-zero input activation was captured"
        return out
    if "iht" in wanted:
        errs, one = _iht_errors(W, x, k, pool, cfg["iht_iters"])
        errs_g, one_g = _iht_errors(G, x, k, pool, cfg["iht_iters"])
        out["iht_error_by_iter"] = errs
        out["iht_error_by_iter_gaussian"] = errs_g
        out["iht_error_one_step"] = one
        out["iht_error_one_step_gaussian"] = one_g
        out["iht_note"] = (
            f"{x.shape[0]} input activation(s); one step = the paper's feed-forward layer "
            "(step 1); by_iter = normalised IHT; every estimate rescaled to ‖f‖"
        )
    if "algorithm2" in wanted:
        xa = x[: cfg["alg2_samples"]]
        lam, iters = cfg["lam_fraction"], cfg["alg2_iters"]
        out["rip_ratio_algorithm2"] = _algorithm2(W, xa, pool, lam, iters)
        out["rip_ratio_algorithm2_gaussian"] = _algorithm2(G, xa, pool, lam, iters)
    return out


# --------------------------------------------------------------------------- entry point
def analyze_model(
    model: nn.Module,
    inputs: torch.Tensor,
    layers: Sequence[str] | None = None,
    *,
    samples: int = 100,
    iht_iters: int = 20,
    max_activations: int = 8,
    alg2_samples: int = 4,
    alg2_iters: int = 100,
    lam_fraction: float = 0.1,
    batch_size: int = 4,
    analyses: Sequence[str] = DEFAULT_ANALYSES,
    delta_samples: int = 16,
    delta_iters: int = 20,
    seed: int = 0,
    device: str | torch.device = "cpu",
    model_info: dict[str, Any] | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> ModelAnalysis:
    """Analyse every convolution of ``model`` (or those named in ``layers``) on ``inputs``
    (a batch ``(N, …)`` as the model's forward takes it, already preprocessed).

    Parameters
    ----------
    samples : synthetic model-sparse codes per layer for the model-RIP ratios.
    iht_iters : IHT iterations recorded (the paper's Table 4 reports 1).
    max_activations : real input activations per layer used by IHT (the first ones).
    alg2_samples, alg2_iters, lam_fraction : Algorithm 2 on that many of them, with
        :math:`\\lambda` = ``lam_fraction`` × the median :math:`\\lambda_{\\max}`.
    batch_size : inputs per forward pass.
    analyses : which of :data:`ANALYSES` to run (the layer's structure and assumptions are
        always reported); by default :data:`DEFAULT_ANALYSES`, every one but ``"delta"``.
    delta_samples, delta_iters : the ``"delta"`` analysis' random supports, and its search
        effort (swap sweeps, truncated power iterations, Lanczos steps).

    Returns
    -------
    ModelAnalysis
        ``result.layers[name]`` holds ``kind``, ``in_shape``, ``out_shape``, ``stride``,
        ``activation``, ``pool``, ``density_percent``, ``coherence``,
        ``coherence_gaussian``, ``rip_ratio`` and ``rip_ratio_gaussian`` (``p01``, ``p50``,
        ``p99``), ``delta_lower``, ``theorem33_bound``, ``iht_error_by_iter``, and
        ``assumptions``; ``result.to_frame()`` one row per layer.

    Raises
    ------
    ValueError
        Inputs the model cannot run, a model without convolutions, an unknown layer name,
        a bad parameter.
    """
    started = time.perf_counter()
    if not isinstance(model, nn.Module) and not callable(model):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2 or inputs.shape[0] == 0:
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must be a non-empty batch (N, ...), got {shape}")
    if not inputs.is_floating_point() or not bool(torch.isfinite(inputs).all()):
        raise ValueError("inputs must be finite floating-point values")
    for name, v in (("samples", samples), ("iht_iters", iht_iters), ("batch_size", batch_size),
                    ("max_activations", max_activations), ("alg2_samples", alg2_samples),
                    ("alg2_iters", alg2_iters), ("delta_samples", delta_samples),
                    ("delta_iters", delta_iters)):  # fmt: skip
        check_positive_int(v, name)
    if not (isinstance(lam_fraction, int | float) and 0 < lam_fraction < 1):
        raise ValueError(f"lam_fraction must be in (0, 1), got {lam_fraction!r}")
    analyses = tuple(analyses) if not isinstance(analyses, str) else (analyses,)
    unknown = [a for a in analyses if a not in ANALYSES]
    if unknown or not analyses:
        raise ValueError(f"analyses must be among {ANALYSES}, got {list(analyses)}")
    from cnninv._checks import resolve_device

    dev = resolve_device(device)
    if isinstance(model, nn.Module):
        model = model.to(dev).eval()
    inputs = inputs.to(dev)
    found = discover(model, inputs[:1])
    per_input = sum(4 * math.prod(shape) for op in found.ops for shape in op.out_shapes)
    check_memory(
        per_input * (batch_size + max_activations) + 4 * inputs[0].numel() * len(inputs),
        f"analysing {len(inputs)} inputs of shape {tuple(inputs.shape[1:])}",
    )
    chosen = found.layers
    if layers:
        wanted = [s.strip() for s in layers if s and s.strip()]
        chosen = [found.layer(n) for n in wanted]
    if log:
        log(f"[cnninv] analyse: {len(chosen)} of {len(found.layers)} convolution(s)")
    collected = _collect(
        model, inputs, found, chosen, keep=max_activations, batch_size=batch_size,
        progress=progress,
    )  # fmt: skip
    cfg = {
        "samples": samples,
        "iht_iters": iht_iters,
        "max_activations": max_activations,
        "alg2_samples": alg2_samples,
        "alg2_iters": alg2_iters,
        "lam_fraction": lam_fraction,
        "batch_size": batch_size,
        "delta_samples": delta_samples,
        "delta_iters": delta_iters,
        "analyses": list(analyses),
        "seed": seed,
        "device": str(dev),
        "n_inputs": int(inputs.shape[0]),
        "input_shape": list(inputs.shape[1:]),
        "layers": [layer.name for layer in chosen],
    }
    results: dict[str, dict[str, Any]] = {}
    order = {layer.name: i for i, layer in enumerate(found.layers)}
    steps = chosen
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(chosen, desc="analyse: layers", leave=False, dynamic_ncols=True)
    for layer in steps:
        gen = make_generator(seed + 1000 * (order[layer.name] + 1), None, dev)
        t0 = time.perf_counter()
        results[layer.name] = _analyse_layer(
            layer, order[layer.name], collected[layer.name], cfg, gen, dev
        )
        results[layer.name]["seconds"] = round(time.perf_counter() - t0, 3)
        if log:
            log(f"[cnninv] analyse: {layer.name} ({results[layer.name]['seconds']:.1f} s)")
    return ModelAnalysis(
        results, cfg, dict(model_info or {}), list(found.notes), time.perf_counter() - started
    )
