"""One renderer per experiment: result dict -> :class:`Section` (figures and tables, our
numbers beside the paper's, with a plain note where they differ)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cnninv.report import figures

__all__ = ["SECTIONS", "Section", "Table", "fmt"]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Section:
    title: str
    figures: dict[str, bytes] = field(default_factory=dict)  # file name -> PNG
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fmt(v, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.2e}"
        return f"{v:.{digits}f}"
    return str(v)


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


SECTIONS: dict[str, Callable[[dict], Section]] = {
    "fig2": fig2_section,
    "prop1": prop1_section,
}
