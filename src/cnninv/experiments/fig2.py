r"""Figure 2 (§4.2): the 1-d model-RIP of Gaussian filters and the reconstruction bound.

Setting: :math:`\ell=5, M=32, K=96, D=32` ('valid', so :math:`n=28`), :math:`k=10`,
codes with ``k`` non-zeros uniform on :math:`[-1, 1]` in distinct filter blocks.
Histograms of (a) :math:`\|\mathbf W^Tz\|/\|z\|`,
(b) :math:`\|\mathbf W_\Omega\mathbf W^Tz\|/\|z\|`,
(c) :math:`\|\hat x-x\|/\|x\|` with :math:`\hat x=\mathbf W^T\mathbb M(\mathbf Wx,k)`.

Beyond the paper: the median reconstruction error after 1…``iters`` IHT iterations
(footnote 4: more iterations help — by how much), with the paper's step 1 and with
normalised IHT; the empirical :math:`\delta_k`, :math:`\delta_{2k}` (lower bounds) and the
Theorem 3.3 bound they give; and (c) with the naive top-left unpooling the paper's caption
describes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from cnninv._checks import check_memory, make_generator, resolve_device
from cnninv.experiments._common import (
    batch_sizes,
    check_config,
    environment,
    progress_bar,
    summary,
    torch_dtype,
)
from cnninv.operators import ConvOperator
from cnninv.recovery import iht
from cnninv.theory import (
    empirical_delta,
    gram_ratios,
    model_rip_ratios,
    reconstruction_errors,
    sample_model_sparse,
    theorem31_condition,
    theorem33_bound,
)

__all__ = ["PAPER", "Config", "run"]

#: What §4.2 says of Figure 2 (read from its text; the figure prints no numbers).
PAPER = {
    "rip_ratio": {"centre": 1.0, "note": "tightly centred around 1"},
    "gram_ratio": {"centre": 1.0, "note": "tightly centred around 1"},
    "recon_error": {
        "typical_low": 0.1,
        "typical_high": 0.2,
        "max": 0.5,
        "note": "concentrated at around 0.1-0.2 and bound under 0.5",
    },
}


@dataclass
class Config:
    samples: int = 5000
    ell: int = 5
    M: int = 32
    K: int = 96
    D: int = 32
    k: int = 10
    stride: int = 1
    iters: int = 20
    batch: int = 1000
    unit_norm_rows: bool = False
    dtype: str = "float32"
    seed: int = 0
    device: str = "cpu"
    quick: bool = False

    def __post_init__(self) -> None:
        check_config(self, ("samples", "ell", "M", "K", "D", "k", "stride", "iters", "batch"))
        torch_dtype(self.dtype)
        if self.k > self.K:
            raise ValueError(f"k={self.k} exceeds the number of blocks K={self.K}")
        if self.ell > self.D:
            raise ValueError(f"ell={self.ell} is longer than the signal D={self.D}")
        if (self.D - self.ell) % self.stride:
            raise ValueError(
                f"stride={self.stride} does not give an integer n = (D - ell)/t + 1 "
                f"(D={self.D}, ell={self.ell})"
            )
        n = (self.D - self.ell) // self.stride + 1
        width = torch_dtype(self.dtype).itemsize
        # kept: 6 ratios per sample and 3 IHT curves of `iters` values; working set: about
        # a dozen codes and signals of the batch
        kept = self.samples * (6 + 3 * self.iters) * width
        work = min(self.batch, self.samples) * (self.K * n + self.M * self.D) * width * 12
        check_memory(kept + work, f"fig2 with samples={self.samples}, batch={self.batch}")


def run(config: Config, progress: bool = False) -> dict:
    """Run Figure 2; returns the summaries, the raw samples (for the histograms) and the
    IHT curves, with the configuration."""
    started = time.perf_counter()
    device = resolve_device(config.device)
    dtype = torch_dtype(config.dtype)
    W = ConvOperator.gaussian(
        config.K,
        config.M,
        config.ell,
        config.D,
        config.stride,
        unit_norm_rows=config.unit_norm_rows,
        seed=config.seed,
        dtype=dtype,
        device=device,
    )
    gen = make_generator(config.seed + 1, None, device)
    keys = ("rip", "rip2k", "gram", "gram_full", "recon", "recon_naive")
    parts: dict[str, list[torch.Tensor]] = {key: [] for key in keys}
    curves: dict[str, list[torch.Tensor]] = {"step1": [], "normalized": [], "support": []}
    sizes = batch_sizes(config.samples, config.batch)
    for b in progress_bar(sizes, enabled=progress, desc="fig2"):
        sample = dict(generator=gen, dtype=dtype, device=device)
        z = sample_model_sparse(b, W.out_shape, config.k, **sample)
        z2 = z + sample_model_sparse(b, W.out_shape, config.k, **sample)  # in M_k^2
        x = W.T(z)
        parts["rip"].append(model_rip_ratios(W, z))
        parts["rip2k"].append(model_rip_ratios(W, z2))
        parts["gram"].append(gram_ratios(W, z))
        parts["gram_full"].append(gram_ratios(W, z, restrict=False))
        parts["recon"].append(reconstruction_errors(W, x, config.k))
        parts["recon_naive"].append(reconstruction_errors(W, x, config.k, switches="naive"))
        res = iht(W, x, config.k, max_iter=config.iters, z_true=z)
        curves["step1"].append(res.history_array("residual"))
        curves["support"].append(res.history_array("support_recovery"))
        nres = iht(W, x, config.k, max_iter=config.iters, step="normalized")
        curves["normalized"].append(nres.history_array("residual"))
    data = {key: torch.cat(v).cpu() for key, v in parts.items()}
    curve = {key: torch.cat(v, dim=1).cpu() for key, v in curves.items()}

    delta_k = empirical_delta(data["rip"])
    delta_2k = max(empirical_delta(data["rip2k"]), delta_k)
    bound = theorem33_bound(delta_k, delta_2k) if delta_2k < 1 else None
    n = W.output_size[0]
    thm31 = theorem31_condition(
        M=config.M,
        ell=config.ell,
        D=config.D,
        K=config.K,
        k=config.k,
        delta=min(max(delta_k, 1e-6), 0.999),
        eps=0.01,
        C=1.0,
        stride=config.stride,
    )
    return {
        "experiment": "fig2",
        "n": n,
        "matrix_shape": list(W.shape),
        "rip_ratio": summary(data["rip"]),
        "gram_ratio": summary(data["gram"]),
        "recon_error": summary(data["recon"]),
        "recon_error_naive_unpooling": summary(data["recon_naive"]),
        "full_gram_ratio": summary(data["gram_full"]),
        "rip_ratio_2k": summary(data["rip2k"]),
        "empirical_delta_k": delta_k,
        "empirical_delta_2k": delta_2k,
        "theorem33_bound_at_empirical_delta": bound,
        "fraction_within_theorem33_bound": None
        if bound is None
        else float((data["recon"] <= bound).double().mean()),
        "theorem31_at_C1": {
            "ratio_M_l2_over_D": thm31.ratio,
            "required_at_C_1": thm31.required,
            "delta": min(max(delta_k, 1e-6), 0.999),
            "eps": 0.01,
        },
        "iht_recon_error_by_iter": curve["step1"].quantile(0.5, dim=1),
        "iht_recon_error_p90_by_iter": curve["step1"].quantile(0.9, dim=1),
        "iht_normalized_recon_error_by_iter": curve["normalized"].quantile(0.5, dim=1),
        "iht_support_recovery_by_iter": curve["support"].mean(dim=1),
        "samples": {
            "rip_ratio": data["rip"],
            "gram_ratio": data["gram"],
            "recon_error": data["recon"],
        },
        "paper": PAPER,
        **environment(config, started),
    }
