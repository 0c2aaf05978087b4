"""One renderer per experiment: result dict -> :class:`Section` (figures and tables, our
numbers beside the paper's, with a plain note where they differ)."""

from __future__ import annotations

from collections.abc import Callable

from cnninv.report import figures
from cnninv.report.analysis import analysis_section
from cnninv.report.base import Section, Table, fmt
from cnninv.report.inversion import (
    fig4_section,
    fig5_section,
    inversion_baselines_section,
    switches_section,
    table4_image_section,
)
from cnninv.report.table1 import table1_section
from cnninv.report.theory import (
    delta_section,
    fig2_sensitivity_section,
    fig3_lambda_note,
    fig3_lambda_png,
    fig3_lambda_table,
    phase_transition_section,
)

__all__ = ["SECTIONS"]


def fig2_section(r: dict) -> Section:
    p = r["paper"]
    rows = []
    for key, label in (("rip_ratio", "(a) ‖Wᵀz‖/‖z‖"), ("gram_ratio", "(b) ‖W_Ω Wᵀz‖/‖z‖")):
        s = r[key]
        rows.append([label, fmt(s["p50"]), fmt(s["p01"]), fmt(s["p99"]), p[key]["note"]])
    s = r["recon_error"]
    rows.append(
        ["(c) ‖x̂ − x‖/‖x‖", fmt(s["p50"]), fmt(s["p01"]), fmt(s["p99"]), p["recon_error"]["note"]]
    )
    s = r["recon_error_naive_unpooling"]
    rows.append(
        [
            "(c) with naive top-left unpooling",
            fmt(s["p50"]),
            fmt(s["p01"]),
            fmt(s["p99"]),
            "(the caption's unpooling)",
        ]
    )
    table = Table(
        ["quantity", "ours: median", "p01", "p99", "paper (§4.2 text)"], rows, "Figure 2 summaries"
    )
    by_iter = r["iht_recon_error_by_iter"]
    iters = [1, 2, 3, 5, 10, len(by_iter)]
    iters = sorted({i for i in iters if i <= len(by_iter)})
    t2 = Table(
        ["IHT iterations", *map(str, iters)],
        [
            ["median ‖x̂ − x‖/‖x‖, step 1", *(fmt(by_iter[i - 1]) for i in iters)],
            [
                "normalised IHT",
                *(fmt(r["iht_normalized_recon_error_by_iter"][i - 1]) for i in iters),
            ],
            ["support recovered", *(fmt(r["iht_support_recovery_by_iter"][i - 1]) for i in iters)],
        ],
        "Beyond the paper: recurrent inversion (footnote 4)",
    )
    notes = []
    med = r["recon_error"]["p50"]
    lo, hi = p["recon_error"]["typical_low"], p["recon_error"]["typical_high"]
    if not lo <= med <= hi:
        notes.append(
            f"Our one-layer reconstruction error is centred at {fmt(med)}, the paper reports "
            f"{lo}–{hi}: it differs. We use the pooling switches (what Theorem 3.3 analyses); "
            "the naive top-left unpooling of the caption gives "
            f"{fmt(r['recon_error_naive_unpooling']['p50'])}, so it cannot be what produced "
            "the paper's histogram in this 1-d model."
        )
    if r["recon_error"]["max"] > p["recon_error"]["max"]:
        notes.append(
            f"{fmt(100 * (1 - _frac_below(r, 0.5)), 1)}% of our samples exceed the paper's "
            "0.5 (largest "
            f"{fmt(r['recon_error']['max'])})."
        )
    notes.append(
        f"Empirical δ_k ≥ {fmt(r['empirical_delta_k'])}, δ_2k ≥ {fmt(r['empirical_delta_2k'])} "
        "(sampled, so lower bounds on the true constants); Theorem 3.3's bound at these values "
        f"is {fmt(r['theorem33_bound_at_empirical_delta'])}."
    )
    notes.append(
        f"{len(by_iter)} IHT iterations bring the median error from {fmt(by_iter[0])} to "
        f"{fmt(by_iter[-1])}; the paper stops at one (a feed-forward layer)."
    )
    return Section(r["experiment"], {"fig2.png": figures.fig2_png(r)}, [table, t2], notes)


def _frac_below(r: dict, threshold: float) -> float:
    vals = r["samples"]["recon_error"]
    return sum(v <= threshold for v in vals) / len(vals)


def prop1_section(r: dict) -> Section:
    rows = [
        [
            "CReLU, Haar orthonormal basis (max)",
            fmt(r["max_relative_error_dense_basis"]),
            "0 (exact)",
        ],
        [
            "CReLU, orthonormal conv layer (max)",
            fmt(r["max_relative_error_orthonormal_conv"]),
            "0 (exact)",
        ],
        [
            "control: ReLU without the negative pair (mean)",
            fmt(r["control_relu_without_negative_pair"]),
            "—",
        ],
        [
            "control: CReLU with a Gaussian conv layer (mean)",
            fmt(r["control_crelu_gaussian_conv"]),
            "—",
        ],
    ]
    eps = r["machine_epsilon"]
    ok = r["max_relative_error"] < 100 * eps
    notes = [
        f"max_relative_error = {fmt(r['max_relative_error'])} "
        + ("— exact to rounding, as Proposition 1 states." if ok else "— NOT exact: a defect.")
    ]
    return Section(
        r["experiment"],
        {"prop1.png": figures.prop1_png(r)},
        [Table(["setting", "ours: relative error", "paper"], rows)],
        notes,
    )


def _diff_note(ours: float | None, theirs: float | None, tol: float) -> str:
    if ours is None or theirs is None:
        return ""
    return "differs" if abs(ours - theirs) > tol else "agrees"


def sparsity_section(r: dict) -> Section:
    rows = []
    for name, v in r["layers"].items():
        rows.append(
            [
                name,
                fmt(v["nonzero_percent"], 1),
                fmt(v["paper"], 1),
                fmt(v["random_nonzero_percent"], 1),
                _diff_note(v["nonzero_percent"], v["paper"], 5.0),
            ]
        )
    notes = [r["paper_note"] + ".", f"Weights: {r['weights_source']}"]
    if r["comparable_to_paper"]:
        off = [
            n
            for n, v in r["layers"].items()
            if v["paper"] is not None and abs(v["nonzero_percent"] - v["paper"]) > 5
        ]
        notes.append(
            "Every layer is within 5 points of the paper."
            if not off
            else f"Layers more than 5 points from the paper: {', '.join(off)}."
        )
    table = Table(
        ["layer", "ours: % non-zero", "paper", "Gaussian filters", "vs paper (±5)"],
        rows,
        f"{r['model']}: activation density, mean over {len(r['images'])} photos",
    )
    return Section(
        r["experiment"], {f"{r['experiment']}.png": figures.sparsity_png(r)}, [table], notes
    )


def coherence_section(r: dict) -> Section:
    rows = []
    for name, v in r["layers"].items():
        rows.append(
            [
                name,
                "x".join(map(str, v["filter_shape"])),
                fmt(v["learned_noshift"]),
                fmt(v["learned_shift"]),
                fmt(v["paper_learned"]),
                fmt(v["random_noshift"]),
                fmt(v["random_shift"]),
                fmt(v["paper_random"]),
            ]
        )
    notes = [f"Definition: {r['definition']}.", f"Weights: {r['weights_source']}"]
    if r["learned_available"]:
        off = [
            n
            for n, v in r["layers"].items()
            if v["paper_learned"] is not None
            and abs(v["learned_noshift"] - v["paper_learned"]) > 0.02
        ]
        if off:
            notes.append(
                "Our learned coherence differs from the paper's (by more than 0.02) at "
                f"{', '.join(off)}; we do not change the definition to match. The paper does "
                "not say how it normalised or whether it used shifts."
            )
    else:
        notes.append(
            "No learned weights for this network are available offline: only the "
            "random columns are computed (pass --set weights=PATH for learned ones)."
        )
    table = Table(
        [
            "layer",
            "filters",
            "learned",
            "learned (shifts)",
            "paper learned",
            "random",
            "random (shifts)",
            "paper random",
        ],
        rows,
        f"{r['model']}: mutual coherence of each conv layer",
    )
    return Section(
        r["experiment"], {f"{r['experiment']}.png": figures.coherence_png(r)}, [table], notes
    )


def fig3_section(r: dict) -> Section:
    rows = []
    for key, d in r["histograms"].items():
        rows.append(
            [
                key.replace("_", " "),
                fmt(d["p50"]),
                fmt(d["p01"]),
                fmt(d["p99"]),
                fmt(d["empirical_delta"]),
                str(d["n"]),
                fmt(d["fit_error"]["p50"]) if "fit_error" in d else "—",
            ]
        )
    notes = [
        r["map_size_note"] + f"; k = {r['k']} blocks ({fmt(100 * r['k_fraction'], 1)}% of the "
        f"2x2 blocks, the measured density of {r['input_layer']} after ReLU).",
        "Paper (§4.4): (a) "
        + r["paper"]["synthetic"]
        + "; (b), (c) "
        + r["paper"]["recovered"]
        + ".",
        "Zero padding truncates the unit-norm filters at the map border, so even random "
        "filters give ratios a little below 1 at this size.",
    ]
    for key in ("before_relu_learned", "after_relu_learned"):
        d = r["histograms"][key]
        off = abs(d["p50"] - 1)
        if off > r["paper"]["max_centre_offset"]:
            notes.append(
                f"{key.replace('_', ' ')}: our median is {fmt(d['p50'])}, off 1 by {fmt(off)} "
                f"> the paper's 0.05: it differs (the fit ‖x − Wᵀz‖/‖x‖ is "
                f"{fmt(d['fit_error']['p50'])})."
            )
    table = Table(
        [
            "histogram",
            "median",
            "p01",
            "p99",
            "empirical δ (lower bound)",
            "n",
            "fit ‖x − Wᵀz‖/‖x‖",
        ],
        rows,
        f"{r['model']} {r['layer']}: ‖Wᵀz‖/‖z‖",
    )
    section = Section("fig3", {"fig3.png": figures.fig3_png(r)}, [table], notes)
    if r.get("lambda_sweep"):  # beyond the paper: Algorithm 2's codes as λ varies
        section.figures["fig3_lambda.png"] = fig3_lambda_png(r)
        section.tables.append(fig3_lambda_table(r))
        section.notes.append(fig3_lambda_note(r))
    return section


def table4_activations_section(r: dict) -> Section:
    rows = []
    iters = [str(i) for i in r["iters"][1:]]
    for name, v in r["layers"].items():
        rows.append(
            [
                f"{name} → {v['next_conv']}",
                fmt(v["learned"]),
                fmt(v["paper_learned"]),
                fmt(v["random"]),
                fmt(v["paper_random"]),
                fmt(v["random_activations"]),
                fmt(v["paper_random_activations"]),
                *(
                    f"{fmt(v['learned_by_iters'][i])} / {fmt(v['random_by_iters'][i])}"
                    for i in iters
                ),
            ]
        )
    headers = [
        "layer",
        "learned",
        "paper",
        "random filters",
        "paper",
        "random activations",
        "paper",
        *(f"{i} iterations (learned / random)" for i in iters),
    ]
    notes = [f"Method: {r['method']}. {len(r['images'])} photos."]
    off = [
        n
        for n, v in r["layers"].items()
        if v["paper_learned"] is not None and abs(v["learned"] - v["paper_learned"]) > 0.05
    ]
    if off:
        notes.append(f"Learned-filter errors more than 0.05 from the paper's at {', '.join(off)}.")
    return Section(
        "table4-activations",
        {"table4_activations.png": figures.table4_activations_png(r)},
        [Table(headers, rows, "Table 4, activation space: relative error ‖f − f̂‖/‖f‖")],
        notes,
    )


SECTIONS: dict[str, Callable[[dict], Section]] = {
    "fig2": fig2_section,
    "fig2-sensitivity": fig2_sensitivity_section,
    "prop1": prop1_section,
    "table2": sparsity_section,
    "table7": sparsity_section,
    "table3": coherence_section,
    "table6": coherence_section,
    "fig3": fig3_section,
    "delta": delta_section,
    "phase-transition": phase_transition_section,
    "table4-activations": table4_activations_section,
    "table1": table1_section,
    "table4-image": table4_image_section,
    "fig4": fig4_section,
    "switches": switches_section,
    "fig5": fig5_section,
    "inversion-baselines": inversion_baselines_section,
    "analyze": analysis_section,
}
