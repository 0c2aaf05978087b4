r"""Beyond the paper: :math:`\delta_k` and :math:`\delta_{2k}` of :math:`\mathbf W^T`
bracketed from both sides, for the layers of Figures 2 and 3 and every layer of VGG16.

The paper estimates the model-RIP constants only from random codes (Figures 2, 3), which
gives lower bounds, and weak ones: :math:`\delta_k` is a supremum over
:math:`n^k\binom Kk` supports. Here, per operator (:func:`cnninv.theory.delta_bracket`):

* lower bounds attained by explicit supports: random supports (exact eigenvalues, or
  Lanczos Ritz values on large layers) and an adversarial search (greedy growth, swaps,
  truncated power method) from the worst of them; the worst support is returned;
* upper bounds: Gershgorin with the coherence of the admissible pairs, and the block-aware
  Babel (cumulative coherence) sum, both exact;
* Theorem 3.3's bound at the lower and at the upper ends.

Operators: Figure 2's Gaussian :math:`\mathbf W` (built exactly as ``fig2`` builds it,
same seed), Figure 3's conv5_2 of VGG16 with unit-norm filters and the Gaussian filters
``fig3`` draws beside it (14×14 maps, 2×2 blocks, :math:`k` from the measured density of
conv5_1 after ReLU, as ``fig3``), and every convolution of VGG16 analysed by
:func:`cnninv.analysis.analyze_model` (its ``"delta"`` analysis) on photos resized to
``layers_image_size`` so that the whole network is affordable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from cnninv._checks import make_generator
from cnninv.analysis import analyze_model, k_for_fraction
from cnninv.experiments._common import check_config, environment, progress_bar
from cnninv.experiments._inputs import load_inputs
from cnninv.models import activation_name, capture, conv_operator, layer_map, qualified_name
from cnninv.operators import ConvOperator, LinearOperator
from cnninv.sparsity import Pool
from cnninv.theory import bracket_summary, delta_bracket

__all__ = ["PAPER", "QUICK", "Config", "run"]

#: What the paper says of δ_k (read from its text; it prints no value).
PAPER = {
    "fig2": "the histograms of ‖Wᵀz‖/‖z‖ are tightly centred around 1, suggesting that Wᵀ "
    "satisfies the model-RIP (§4.2)",
    "fig3": "(a) satisfies (1) with a short tail roughly bounded by δ_k < 1; (b), (c) the "
    "range bound δ_k is roughly less than 0.05 (§4.4)",
    "coherence": "the coherence is a proxy for the value of the model-RIP parameter δ_k "
    "(which we can only estimate computationally) (§4.4)",
}

#: ``--quick``: a few random supports, short searches, three VGG16 layers at 32×32.
QUICK: dict[str, Any] = {
    "fig2_samples": 300,
    "fig2_starts": 2,
    "fig2_sweeps": 20,
    "max_images": 2,
    "fig3_samples": 2,
    "fig3_starts": 1,
    "fig3_iters": 6,
    "layers": "conv1_2,conv3_1,conv5_1",
    "layers_image_size": 32,
    "layers_samples": 2,
    "layers_iters": 6,
}


@dataclass
class Config:
    # Figure 2's W (fig2's defaults)
    ell: int = 5
    M: int = 32
    K: int = 96
    D: int = 32
    k: int = 10
    stride: int = 1
    unit_norm_rows: bool = False
    fig2_samples: int = 2000
    fig2_starts: int = 4
    fig2_sweeps: int = 50
    # Figure 3's layer (fig3's defaults); fig3=False skips it
    fig3: bool = True
    model: str = "vgg16"
    weights: str = "imagenet"
    layer: str = "conv5_2"
    input_layer: str = "conv5_1"
    pool: int = 2
    k_fraction: float = 0.0  # 0: the measured density of input_layer after ReLU
    images: str = "default"
    max_images: int = 8
    fig3_samples: int = 8
    fig3_starts: int = 2
    fig3_iters: int = 20
    # every layer of the model, on photos at a small size ("none": skip)
    layers: str = "all"
    layers_image_size: int = 64
    layers_samples: int = 8
    layers_iters: int = 12
    seed: int = 0
    device: str = "cpu"
    quick: bool = False

    def __post_init__(self) -> None:
        check_config(
            self,
            ("ell", "M", "K", "D", "k", "stride", "fig2_samples", "fig2_starts",
             "fig2_sweeps", "pool", "max_images", "fig3_samples", "fig3_starts", "fig3_iters",
             "layers_image_size", "layers_samples", "layers_iters"),
        )  # fmt: skip
        if self.k > self.K:
            raise ValueError(f"k={self.k} exceeds the number of blocks K={self.K}")
        if self.ell > self.D or (self.D - self.ell) % self.stride:
            raise ValueError(
                f"ell={self.ell}, D={self.D}, stride={self.stride} give no integer n = "
                "(D - ell)/t + 1"
            )
        if not isinstance(self.fig3, bool) or not isinstance(self.unit_norm_rows, bool):
            raise ValueError("fig3 and unit_norm_rows must be true or false")
        n = (self.D - self.ell) // self.stride + 1
        if self.K * n > 10**6 or self.M * self.D > 10**6 or self.fig2_samples > 10**6:
            raise ValueError("Figure 2's layer or fig2_samples too large (K n, M D <= 1e6)")
        if not 0 <= self.k_fraction <= 1:
            raise ValueError(f"k_fraction must be in [0, 1], got {self.k_fraction}")
        if self.layers_image_size < 32:
            raise ValueError(
                f"layers_image_size must be at least 32 (VGG16 pools five times), got "
                f"{self.layers_image_size}"
            )

    def layer_list(self) -> list[str] | None:
        """None: every layer; [] for ``"none"``; else the names."""
        if self.layers.strip().lower() == "all":
            return None
        if self.layers.strip().lower() in ("", "none"):
            return []
        return [s.strip() for s in self.layers.split(",") if s.strip()]


def _bracket(
    W: LinearOperator, k: int, pool: Pool, *, samples: int, starts: int, iters: int, seed: int
) -> dict[str, Any]:
    started = time.perf_counter()
    effort = dict(
        samples=samples, starts=starts, sweeps=iters, tpm_iters=iters, lanczos_steps=iters
    )
    out = bracket_summary(
        delta_bracket(W, k, pool, order=1, seed=seed, **effort),
        delta_bracket(W, k, pool, order=2, seed=seed, **effort),
        W.out_shape,
    )
    return {**out, "seconds": round(time.perf_counter() - started, 3)}


def _describe(W: ConvOperator) -> dict[str, Any]:
    return {"matrix_shape": list(W.shape), "in_shape": list(W.in_shape),
            "out_shape": list(W.out_shape)}  # fmt: skip


def _fig3_operators(config: Config) -> tuple[ConvOperator, ConvOperator, int, float]:
    """conv5_2 with unit-norm filters, fig3's Gaussian layer beside it, and k as fig3 sets
    it (the measured density of conv5_1 after ReLU on the photos, in 2x2 blocks)."""
    inputs = load_inputs(
        config.model, config.weights, config.images, config.max_images,
        seed=config.seed, device=config.device,
    )  # fmt: skip
    net, dev = inputs.net, inputs.images.device
    W = conv_operator(net.model, config.layer).to(dev).unit_norm_filters()
    gen = make_generator(config.seed, None, dev)  # fig3's generator: its first draw
    G = ConvOperator.gaussian(
        W.K, W.M, W.kernel_size, W.input_size, W.stride, W.padding,
        unit_norm_rows=True, generator=gen, device=dev,
    )  # fmt: skip
    relu = qualified_name(net.model, activation_name(config.input_layer))
    after = capture(net.model, inputs.images, [relu], batch_size=4)[relu]
    density = float((after != 0).double().mean())
    fraction = config.k_fraction or density
    return W, G, k_for_fraction(fraction, W.out_shape, config.pool), fraction


def _model_layers(config: Config, progress: bool) -> dict[str, Any]:
    wanted = config.layer_list()
    if wanted == []:
        return {}
    inputs = load_inputs(
        config.model, config.weights, config.images, config.max_images,
        seed=config.seed, device=config.device, image_size=config.layers_image_size,
    )  # fmt: skip
    model = inputs.net.model
    names = layer_map(model)  # paper name -> qualified name
    qualified = None if wanted is None else [names.get(n, n) for n in wanted]
    result = analyze_model(
        model,
        inputs.images,
        qualified,
        analyses=("delta",),
        delta_samples=config.layers_samples,
        delta_iters=config.layers_iters,
        max_activations=1,
        seed=config.seed,
        device=config.device,
        progress=progress,
    )
    paper = {q: p for p, q in names.items()}
    out = {}
    for q, layer in result.layers.items():
        if "delta" not in layer:
            continue
        out[f"{config.model}/{paper.get(q, q)}"] = {
            "description": f"{config.model} {paper.get(q, q)} (unit-norm filters) at "
            f"{config.layers_image_size}×{config.layers_image_size} input, "
            f"{layer['blocks']['why']}",
            "source": "analyze_model",
            "matrix_shape": [
                int(torch.tensor(layer["out_shape"]).prod()),
                int(torch.tensor(layer["in_shape"]).prod()),
            ],
            "in_shape": layer["in_shape"],
            "out_shape": layer["out_shape"],
            "pool": layer["blocks"]["pool"],
            "k_fraction": layer["k_fraction"],
            **layer["delta"],
            "seconds": layer["seconds"],
        }
    return out


def run(config: Config, progress: bool = False) -> dict:
    started = time.perf_counter()
    operators: dict[str, Any] = {}
    # exactly fig2's W (same sizes, seed and dtype)
    W2 = ConvOperator.gaussian(
        config.K, config.M, config.ell, config.D, config.stride,
        unit_norm_rows=config.unit_norm_rows, seed=config.seed,
    )  # fmt: skip
    steps = ["fig2", "fig3", "layers"]
    for step in progress_bar(steps, enabled=progress, desc="delta"):
        if step == "fig2":
            operators["fig2"] = {
                "description": f"Figure 2's Gaussian W (ℓ={config.ell}, M={config.M}, "
                f"K={config.K}, D={config.D}, 'valid'), whole-filter blocks",
                "source": "fig2",
                **_describe(W2),
                "pool": None,
                **_bracket(W2, config.k, None, samples=config.fig2_samples,
                           starts=config.fig2_starts, iters=config.fig2_sweeps,
                           seed=config.seed),
            }  # fmt: skip
        elif step == "fig3" and config.fig3:
            W, G, k, fraction = _fig3_operators(config)
            for tag, op in (("learned", W), ("gaussian", G)):
                operators[f"fig3_{config.layer}_{tag}"] = {
                    "description": f"{config.model} {config.layer}, {tag} filters of unit "
                    f"norm, {W.input_size[0]}×{W.input_size[1]} maps, "
                    f"{config.pool}×{config.pool} blocks",
                    "source": "fig3",
                    **_describe(op),
                    "pool": config.pool,
                    "k_fraction": fraction,
                    **_bracket(op, k, config.pool, samples=config.fig3_samples,
                               starts=config.fig3_starts, iters=config.fig3_iters,
                               seed=config.seed),
                }  # fmt: skip
        elif step == "layers":
            operators.update(_model_layers(config, progress))
    vacuous = [n for n, o in operators.items() if o["theorem33_bound"]["at_lower"] is None]
    return {
        "experiment": "delta",
        "operators": operators,
        "vacuous_theorem33": vacuous,
        "definition": (
            "δ(S) = ‖G_S − I‖₂ with G = W Wᵀ (the Gram matrix of the columns of Wᵀ, i.e. of "
            "the rows of W: shifted filters); δ_k = max over supports with ≤ 1 entry per "
            "block and k entries, δ_2k over ≤ 2 per block and 2k entries (sums of two "
            "model-k-sparse codes). Lower bounds are attained by the returned supports; "
            "upper bounds are exact Gershgorin (coherence) and block-Babel sums."
        ),
        "paper": PAPER,
        **environment(config, started),
    }
