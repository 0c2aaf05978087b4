"""Matplotlib figures, returned as PNG bytes (headless: the Agg backend)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["fig2_png", "png_bytes", "prop1_png"]


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _hist(ax, values, title, xlabel, marks=()):
    ax.hist(values, bins=50, color="#4c72b0", alpha=0.85)
    for x, label, style in marks:
        ax.axvline(x, color="k" if style == "-" else "#c44e52", linestyle=style, lw=1, label=label)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    if marks:
        ax.legend(fontsize=7)


def fig2_png(result: dict) -> bytes:
    """Figure 2's three histograms, plus the IHT error per iteration (beyond the paper)."""
    s = result["samples"]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    _hist(axes[0], s["rip_ratio"], r"(a) $\|W^Tz\|/\|z\|$", "ratio", [(1.0, "1", "-")])
    _hist(axes[1], s["gram_ratio"], r"(b) $\|W_\Omega W^Tz\|/\|z\|$", "ratio", [(1.0, "1", "-")])
    marks = [(0.5, "paper: bound under 0.5", "--")]
    if result.get("theorem33_bound_at_empirical_delta") is not None:
        b = result["theorem33_bound_at_empirical_delta"]
        if b <= 1:
            marks.append((b, f"Thm 3.3 at sampled δ ({b:.2f})", ":"))
        else:  # a line far to the right would squash the histogram
            axes[2].text(
                0.98,
                0.6,
                f"Thm 3.3 bound at\nsampled δ: {b:.2f}",
                transform=axes[2].transAxes,
                ha="right",
                fontsize=7,
            )
    _hist(
        axes[2], s["recon_error"], r"(c) $\|\hat x-x\|/\|x\|$, one layer", "relative error", marks
    )
    ax = axes[3]
    it = range(1, len(result["iht_recon_error_by_iter"]) + 1)
    floor = 1e-9
    ax.semilogy(
        it,
        [max(v, floor) for v in result["iht_recon_error_by_iter"]],
        "o-",
        ms=3,
        label="IHT, step 1 (median)",
    )
    ax.semilogy(
        it,
        [max(v, floor) for v in result["iht_recon_error_p90_by_iter"]],
        ".--",
        ms=3,
        label="IHT, step 1 (90th pct)",
    )
    ax.semilogy(
        it,
        [max(v, floor) for v in result["iht_normalized_recon_error_by_iter"]],
        "s-",
        ms=3,
        label="normalised IHT (median)",
    )
    ax.set_title("beyond the paper: IHT iterations", fontsize=10)
    ax.set_xlabel("iterations (1 = feed-forward layer)")
    ax.set_ylabel(r"median $\|\hat x-x\|/\|x\|$ (floor 1e-9)")
    ax.legend(fontsize=7)
    c = result["config"]
    fig.suptitle(
        f"Gaussian W: l={c['ell']}, M={c['M']}, K={c['K']}, D={c['D']}, k={c['k']}, "
        f"{c['samples']} samples, seed {c['seed']}",
        fontsize=10,
    )
    fig.tight_layout()
    return png_bytes(fig)


def prop1_png(result: dict) -> bytes:
    labels = [
        "CReLU, orthonormal\nbasis",
        "CReLU, orthonormal\nconv",
        "ReLU only,\northonormal conv",
        "CReLU, Gaussian\nconv",
    ]
    keys = [
        "max_relative_error_dense_basis",
        "max_relative_error_orthonormal_conv",
        "control_relu_without_negative_pair",
        "control_crelu_gaussian_conv",
    ]
    vals = [max(result[k], 1e-17) for k in keys]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(labels, vals, color=["#55a868", "#55a868", "#c44e52", "#c44e52"])
    ax.set_yscale("log")
    ax.axhline(result["machine_epsilon"], color="k", ls=":", lw=1, label="machine epsilon")
    ax.set_ylabel("relative error")
    ax.set_title("Proposition 1: exact with CReLU pairs and orthonormal W")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    return png_bytes(fig)
