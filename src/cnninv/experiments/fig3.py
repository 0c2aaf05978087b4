r"""Figure 3 (§4.4): the 2-d model-RIP of a real layer's filters.

Histograms of :math:`\|\mathbf W^Tz\|/\|z\|` for conv5_2 of VGG16 (filters normalised to
unit norm, :math:`K=M=512`, 3×3, 2×2 pooling blocks) and for Gaussian filters of the same
size: (a) synthetic model-sparse :math:`z` with the density of conv5_1's activations,
(b) and (c) :math:`z` recovered by Algorithm 2 from real conv5_1 activations before and
after ReLU. We use the 14×14 maps VGG16 has at 224×224 input (the paper used 15×15).

Beyond the paper, :func:`lambda_sweep`: Algorithm 2's codes at several λ (``sweep_lambdas``
× λ_max, on the first ``sweep_images`` photos), learned and Gaussian filters, before and
after ReLU: the median ratio, the fit error and the density of z at each, since the ratios
of (b) and (c) depend on λ.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from cnninv._checks import make_generator
from cnninv.analysis import k_for_fraction
from cnninv.experiments import paper
from cnninv.experiments._common import batch_sizes, check_config, environment, progress_bar, summary
from cnninv.experiments._inputs import load_inputs_for
from cnninv.models import activation_name, capture, conv_operator, qualified_name
from cnninv.operators import ConvOperator
from cnninv.recovery import algorithm2, lam_max
from cnninv.theory import empirical_delta, model_rip_ratios, sample_model_sparse

__all__ = ["Config", "lambda_sweep", "run"]

_DEFAULT_LAYERS = {"vgg16": ("conv5_2", "conv5_1"), "alexnet": ("conv5", "conv4")}


@dataclass
class Config:
    model: str = "vgg16"
    weights: str = "imagenet"
    layer: str = ""  # the filters W ("" = conv5_2 for VGG16, conv5 for AlexNet)
    input_layer: str = ""  # whose activations x = W^T z are explained ("" = the conv before)
    samples: int = 1000
    pool: int = 2
    k_fraction: float = 0.0  # 0: the measured density of input_layer's ReLU output
    images: str = "default"
    max_images: int = 8
    lam_fraction: float = 0.1  # lambda = lam_fraction * lambda_max (z = 0 above it)
    max_iter: int = 100
    tol: float = 1e-4
    batch: int = 50
    # the λ sweep (beyond the paper); an empty tuple skips it
    sweep_lambdas: tuple[float, ...] = (0.005, 0.01, 0.03, 0.1, 0.2, 0.5)
    sweep_images: int = 1
    sweep_max_iter: int = 200
    seed: int = 0
    device: str = "cpu"
    quick: bool = False

    def __post_init__(self) -> None:
        check_config(self, ("samples", "pool", "max_iter", "batch"))
        check_config(self, ("sweep_images", "sweep_max_iter"))
        if isinstance(self.sweep_lambdas, str):
            self.sweep_lambdas = tuple(v for v in self.sweep_lambdas.split(",") if v.strip())
        try:
            self.sweep_lambdas = tuple(float(v) for v in self.sweep_lambdas)
        except (TypeError, ValueError):
            raise ValueError(f"sweep_lambdas must be numbers, got {self.sweep_lambdas!r}") from None
        if not all(0 < v < 1 for v in self.sweep_lambdas):
            raise ValueError(f"sweep_lambdas must lie in (0, 1), got {self.sweep_lambdas}")
        if not 0 <= self.k_fraction <= 1:
            raise ValueError(f"k_fraction must be in [0, 1], got {self.k_fraction}")
        if not 0 < self.lam_fraction < 1:
            raise ValueError(f"lam_fraction must be in (0, 1), got {self.lam_fraction}")


def _algorithm2_ratios(
    W: ConvOperator, x: torch.Tensor, cfg: Config, relu: bool, lipschitz: float
) -> dict:
    x = x / x.flatten(1).norm(dim=1).view(-1, 1, 1, 1)  # the ratios are scale-free
    lam = cfg.lam_fraction * float(lam_max(W, x).median())
    res = algorithm2(
        W, x, lam, cfg.pool, variant="abs", max_iter=cfg.max_iter, tol=cfg.tol,
        lipschitz=lipschitz,
    )  # fmt: skip
    z = res.z
    fit = (x - res.x_hat).flatten(1).norm(dim=1)
    return {
        "ratios": model_rip_ratios(W, z),
        "fit_error": summary(fit),
        "code_density": float((z != 0).double().mean()),
        "lam": lam,
        "input": "after ReLU" if relu else "before ReLU",
        "solver_iterations": [res.init.n_iter, res.restricted.n_iter],
    }


def lambda_sweep(
    W: ConvOperator,
    Wr: ConvOperator,
    before: torch.Tensor,
    after: torch.Tensor,
    cfg: Config,
    progress: bool = False,
) -> list[dict]:
    """Algorithm 2 at each λ of ``cfg.sweep_lambdas`` (× the median λ_max), for the learned
    (``W``) and Gaussian (``Wr``) filters, before and after ReLU, on the first
    ``cfg.sweep_images`` activations: median ‖Wᵀz‖/‖z‖, median fit ‖x − Wᵀz‖/‖x‖, density
    of z, and the solver's iterations (``cfg.sweep_max_iter`` at most per step). The λ
    are taken largest first, each step 1 warm-started from the previous λ's solution."""
    rows = []
    steps = [
        (name, op, tag, x[: cfg.sweep_images])
        for name, op in (("learned", W), ("random", Wr))
        for tag, x in (("before", before), ("after", after))
    ]
    for name, op, tag, x in progress_bar(steps, enabled=progress, desc="fig3 λ sweep"):
        lipschitz = 2.0 * 1.02 * op.norm_sq(n_iter=50)
        x = x / x.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        lmax = float(lam_max(op, x).median())
        z0 = None  # a λ path, largest first: each step 1 warm-starts from the previous one
        for ratio in sorted(cfg.sweep_lambdas, reverse=True):
            res = algorithm2(
                op, x, ratio * lmax, cfg.pool, variant="abs", max_iter=cfg.sweep_max_iter,
                tol=cfg.tol, lipschitz=lipschitz, z0=z0,
            )  # fmt: skip
            z0 = res.z_init
            nonzero = res.z.flatten(1).abs().sum(1) > 0
            ratios = model_rip_ratios(op, res.z[nonzero]) if bool(nonzero.any()) else None
            fit = (x - res.x_hat).flatten(1).norm(dim=1)
            rows.append({
                "lambda_ratio": ratio,
                "filters": name,
                "relu": tag,
                "median_ratio": None if ratios is None else float(ratios.median()),
                "fit_error": float(fit.median()),
                "density": float((res.z != 0).double().mean()),
                "lam": ratio * lmax,
                "iterations": [res.init.n_iter, res.restricted.n_iter],
                "converged": res.init.stop_reason == "converged"
                and res.restricted.stop_reason == "converged",
                "images": int(x.shape[0]),
            })  # fmt: skip
    return rows


def run(config: Config, progress: bool = False) -> dict:
    started = time.perf_counter()
    inputs = load_inputs_for(config)
    net, dev = inputs.net, inputs.images.device
    default = _DEFAULT_LAYERS.get(net.name, ("", ""))
    layer = config.layer or default[0]
    input_layer = config.input_layer or default[1]
    if not layer or not input_layer:
        raise ValueError("layer and input_layer must be given for this network")
    W = conv_operator(net.model, layer).to(dev).unit_norm_filters()
    gen = make_generator(config.seed, None, dev)
    Wr = ConvOperator.gaussian(
        W.K, W.M, W.kernel_size, W.input_size, W.stride, W.padding,
        unit_norm_rows=True, generator=gen, device=dev,
    )  # fmt: skip
    relu_name = activation_name(input_layer)
    acts = capture(
        net.model,
        inputs.images,
        [qualified_name(net.model, input_layer), qualified_name(net.model, relu_name)],
        batch_size=4,
    )
    before, after = (acts[qualified_name(net.model, n)] for n in (input_layer, relu_name))
    density = float((after != 0).double().mean())
    fraction = config.k_fraction or density
    k = k_for_fraction(fraction, W.out_shape, config.pool)

    synth = {"learned": [], "random": []}
    sizes = batch_sizes(config.samples, config.batch)
    for b in progress_bar(sizes, enabled=progress, desc="fig3 synthetic"):
        z = sample_model_sparse(b, W.out_shape, k, config.pool, generator=gen, device=dev)
        synth["learned"].append(model_rip_ratios(W, z))
        synth["random"].append(model_rip_ratios(Wr, z))
    hist = {}
    for name, op in (("learned", W), ("random", Wr)):
        ratios = torch.cat(synth[name]).cpu()
        hist[f"synthetic_{name}"] = {"ratios": ratios}
        lipschitz = 2.0 * 1.02 * op.norm_sq(n_iter=100)  # FISTA's L, shared by both inputs
        for tag, x in (("before_relu", before), ("after_relu", after)):
            hist[f"{tag}_{name}"] = _algorithm2_ratios(
                op, x, config, tag == "after_relu", lipschitz
            )
    out = {}
    for key, h in hist.items():
        r = h.pop("ratios")
        out[key] = {**summary(r), "empirical_delta": empirical_delta(r), "samples": r, **h}
    return {
        "experiment": "fig3",
        "model": net.name,
        "weights": net.weights,
        "weights_source": net.source,
        "layer": layer,
        "input_layer": input_layer,
        "map_size": list(W.input_size),
        "map_size_note": f"{W.input_size[0]}x{W.input_size[1]} maps (VGG16 at 224x224); "
        "the paper used D = 15",
        "k": k,
        "k_fraction": fraction,
        "measured_density_of_input_layer": density,
        "images": inputs.names,
        "histograms": out,
        "paper": paper.FIG3,
        "lambda_sweep": lambda_sweep(W, Wr, before, after, config, progress)
        if config.sweep_lambdas
        else [],
        **environment(config, started),
    }
