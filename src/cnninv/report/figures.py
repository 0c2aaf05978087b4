"""Matplotlib figures, returned as PNG bytes (headless: the Agg backend)."""

from __future__ import annotations

from cnninv.report.base import plt, png_bytes

__all__ = [
    "coherence_png",
    "fig2_png",
    "fig3_png",
    "prop1_png",
    "sparsity_png",
    "table4_activations_png",
]


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


def _grouped_bars(ax, labels, series, ylabel):
    import numpy as np

    xs = np.arange(len(labels))
    width = 0.8 / len(series)
    for i, (name, values, style) in enumerate(series):
        vals = [np.nan if v is None else v for v in values]
        ax.bar(xs + (i - (len(series) - 1) / 2) * width, vals, width, label=name, **style)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=60, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)


def sparsity_png(result: dict) -> bytes:
    layers = list(result["layers"])
    rows = result["layers"]
    fig, ax = plt.subplots(figsize=(11, 3.6))
    series = [
        (
            f"ours ({result['weights']})",
            [rows[n]["nonzero_percent"] for n in layers],
            {"color": "#4c72b0"},
        ),
        ("paper (learned, ILSVRC val)", [rows[n]["paper"] for n in layers], {"color": "#dd8452"}),
    ]
    if any(rows[n]["random_nonzero_percent"] is not None for n in layers):
        series.append(
            (
                "Gaussian random filters",
                [rows[n]["random_nonzero_percent"] for n in layers],
                {"color": "#8c8c8c"},
            )
        )
    _grouped_bars(ax, layers, series, "% non-zero")
    ax.set_title(
        f"{result['model']}: activation density per layer ({len(result['images'])} photos)"
    )
    return png_bytes(fig)


def coherence_png(result: dict) -> bytes:
    layers = list(result["layers"])
    rows = result["layers"]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    x = range(len(layers))

    def line(key, label, style):
        vals = [rows[n][key] for n in layers]
        if any(v is not None for v in vals):
            ax.plot(x, [float("nan") if v is None else v for v in vals], style, label=label)

    line("learned_noshift", "learned (ours, no shift)", "o-")
    line("learned_shift", "learned (ours, all shifts)", "o--")
    line("paper_learned", "learned (paper)", "s:")
    line("random_noshift", "random (ours)", "^-")
    line("paper_random", "random (paper)", "v:")
    ax.set_xticks(list(x))
    ax.set_xticklabels(layers, rotation=60, fontsize=8)
    ax.set_ylabel("coherence")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    ax.set_title(f"{result['model']}: filter coherence per conv layer")
    return png_bytes(fig)


def fig3_png(result: dict) -> bytes:
    h = result["histograms"]
    fig, axes = plt.subplots(2, 3, figsize=(14, 6.5))
    titles = {
        "synthetic": "(a) synthetic model-sparse z",
        "before_relu": f"(b) Algorithm 2 z, {result['input_layer']} before ReLU",
        "after_relu": f"(c) Algorithm 2 z, {result['input_layer']} after ReLU",
    }
    for row, filters in enumerate(("learned", "random")):
        for col, (key, title) in enumerate(titles.items()):
            d = h[f"{key}_{filters}"]
            ax = axes[row, col]
            if len(d["samples"]) >= 30:
                ax.hist(d["samples"], bins=40, color="#4c72b0")
            else:  # too few for a histogram: show every value
                ax.plot(d["samples"], [0] * len(d["samples"]), "|", ms=40, color="#4c72b0")
                ax.set_yticks([])
            ax.axvline(1.0, color="k", lw=1)
            ax.set_title(
                f"{title}\n{filters} filters: median {d['p50']:.3f}, n={d['n']}", fontsize=9
            )
            ax.set_xlabel(r"$\|W^Tz\|/\|z\|$")
    fig.suptitle(
        f"{result['model']} {result['layer']} (normalised filters), "
        f"{result['map_size'][0]}x{result['map_size'][1]} maps, k={result['k']}",
        fontsize=10,
    )
    fig.tight_layout()
    return png_bytes(fig)


def table4_activations_png(result: dict) -> bytes:
    layers = list(result["layers"])
    rows = result["layers"]
    fig, axes = plt.subplots(1, 2, figsize=(14, 3.8))
    series = [
        ("learned (ours)", [rows[n]["learned"] for n in layers], {"color": "#4c72b0"}),
        (
            "learned (paper)",
            [rows[n]["paper_learned"] for n in layers],
            {"color": "#4c72b0", "alpha": 0.45},
        ),
        ("random filters (ours)", [rows[n]["random"] for n in layers], {"color": "#55a868"}),
        (
            "random filters (paper)",
            [rows[n]["paper_random"] for n in layers],
            {"color": "#55a868", "alpha": 0.45},
        ),
        (
            "random activations (ours)",
            [rows[n]["random_activations"] for n in layers],
            {"color": "#8c8c8c"},
        ),
    ]
    _grouped_bars(axes[0], layers, series, r"$\|f-\hat f\|/\|f\|$")
    axes[0].set_title("one IHT iteration (the paper's reconstruction)")
    for n in layers:
        its = sorted(int(i) for i in rows[n]["learned_by_iters"])
        axes[1].plot(
            its, [rows[n]["learned_by_iters"][str(i)] for i in its], "o-", label=f"{n} learned"
        )
        axes[1].plot(
            its, [rows[n]["random_by_iters"][str(i)] for i in its], "x--", label=f"{n} random"
        )
    axes[1].set_xscale("log")
    axes[1].set_xlabel("IHT iterations")
    axes[1].set_ylabel(r"$\|f-\hat f\|/\|f\|$")
    axes[1].set_title("beyond the paper: more iterations")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return png_bytes(fig)
