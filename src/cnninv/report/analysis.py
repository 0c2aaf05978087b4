"""Rendering of ``cnninv analyze`` (:func:`cnninv.analysis.analyze_model`): one row per
convolution, the paper's assumptions per layer, and four figures (density, coherence,
model-RIP ratios, IHT error by iteration), learned beside Gaussian filters."""

from __future__ import annotations

import numpy as np

from cnninv.report.base import Section, Table, fmt, plt, png_bytes

__all__ = ["analysis_pngs", "analysis_section"]

_LEARNED, _GAUSS = "#4c72b0", "#c44e52"


def _shape(v) -> str:
    return "×".join(map(str, v)) if v else "—"


def _pool(p) -> str:
    if not p:
        return "—"
    if p.get("global"):
        return f"global {p['kind']}"
    extra = ", overlapping" if p.get("overlapping") else ""
    extra += ", ceil" if p.get("ceil_mode") else ""
    return f"{p['kind']} {_shape(p['kernel'])}/{_shape(p['stride'])}{extra}"


def _at(values, i):
    return values[i - 1] if values and len(values) >= i else None


def _names(r: dict) -> list[str]:
    return [n for n, v in r["layers"].items() if "rip_ratio" in v or "density_percent" in v]


def _density_png(r: dict) -> bytes:
    names = list(r["layers"])
    act = [r["layers"][n].get("density_percent") for n in names]
    pool = [r["layers"][n].get("density_after_pool_percent") for n in names]
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names) + 2), 3.2))
    xs = np.arange(len(names))
    ax.bar(xs - 0.2, [np.nan if v is None else v for v in act], 0.4, label="after activation")
    ax.bar(xs + 0.2, [np.nan if v is None else v for v in pool], 0.4, label="after pooling")
    ax.set_xticks(xs, names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("% non-zero")
    ax.set_title("Density of activations (Table 2's measure)", fontsize=10)
    ax.legend(fontsize=7)
    return png_bytes(fig)


def _coherence_png(r: dict) -> bytes:
    names = [n for n in r["layers"] if r["layers"][n].get("coherence")]
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names) + 2), 3.2))
    xs = np.arange(len(names))
    for off, key, colour, label in (
        (-0.2, "coherence", _LEARNED, "learned"),
        (0.2, "coherence_gaussian", _GAUSS, "Gaussian"),
    ):
        ax.bar(xs + off, [r["layers"][n][key]["noshift"] for n in names], 0.4, color=colour,
               label=f"{label}, no shift")  # fmt: skip
        ax.scatter(xs + off, [r["layers"][n][key]["shift"] for n in names], color=colour,
                   marker="_", s=120, label=f"{label}, all shifts")  # fmt: skip
    ax.set_xticks(xs, names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("coherence")
    ax.set_title("Filter coherence (Table 3's measure)", fontsize=10)
    ax.legend(fontsize=7)
    return png_bytes(fig)


def _rip_png(r: dict) -> bytes:
    names = [n for n in r["layers"] if r["layers"][n].get("rip_ratio")]
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names) + 2), 3.4))
    xs = np.arange(len(names))
    for off, key, colour, label in (
        (-0.15, "rip_ratio", _LEARNED, "learned, synthetic codes"),
        (0.15, "rip_ratio_gaussian", _GAUSS, "Gaussian, synthetic codes"),
    ):
        mid = np.array([r["layers"][n][key]["p50"] for n in names])
        lo = np.array([r["layers"][n][key]["p01"] for n in names])
        hi = np.array([r["layers"][n][key]["p99"] for n in names])
        ax.errorbar(xs + off, mid, yerr=[mid - lo, hi - mid], fmt="o", color=colour, ms=4,
                    capsize=2, label=label)  # fmt: skip
    alg2 = [(r["layers"][n].get("rip_ratio_algorithm2") or {}).get("p50") for n in names]
    if any(v is not None for v in alg2):
        ax.scatter(xs, [np.nan if v is None else v for v in alg2], marker="x", color="k",
                   label="learned, Algorithm 2 codes (median)")  # fmt: skip
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(xs, names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(r"$\|W^Tz\|/\|z\|$ (median, p01–p99)")
    ax.set_title("Model-RIP ratios (Figure 3's measure), unit-norm filters", fontsize=10)
    ax.legend(fontsize=7)
    return png_bytes(fig)


def _iht_png(r: dict) -> bytes:
    names = [n for n in r["layers"] if r["layers"][n].get("iht_error_by_iter")]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.4), sharey=True)
    for ax, key, title in (
        (axes[0], "iht_error_by_iter", "learned filters"),
        (axes[1], "iht_error_by_iter_gaussian", "Gaussian filters"),
    ):
        for n in names:
            errs = r["layers"][n][key]
            ax.plot(range(1, len(errs) + 1), errs, lw=1, label=n)
        ax.set_xlabel("IHT iterations (normalised IHT)")
        ax.set_title(f"Reconstruction of the input activation, {title}", fontsize=9)
    axes[0].set_ylabel("‖f̂ − f‖ / ‖f‖ (rescaled to ‖f‖)")
    if len(names) <= 16:
        axes[1].legend(fontsize=6, ncol=2)
    return png_bytes(fig)


def analysis_pngs(r: dict) -> dict[str, bytes]:
    """The analysis' figures: file name -> PNG."""
    out = {"analysis_density.png": _density_png(r)}
    if any(v.get("coherence") for v in r["layers"].values()):
        out["analysis_coherence.png"] = _coherence_png(r)
    if any(v.get("rip_ratio") for v in r["layers"].values()):
        out["analysis_rip.png"] = _rip_png(r)
    if any(v.get("iht_error_by_iter") for v in r["layers"].values()):
        out["analysis_iht.png"] = _iht_png(r)
    return out


def analysis_section(r: dict) -> Section:
    rows, failing = [], []
    for name, v in r["layers"].items():
        rip, ripg = v.get("rip_ratio") or {}, v.get("rip_ratio_gaussian") or {}
        coh, cohg = v.get("coherence") or {}, v.get("coherence_gaussian") or {}
        errs, errs_g = v.get("iht_error_by_iter"), v.get("iht_error_by_iter_gaussian")
        rows.append(
            [
                name,
                v.get("kind", "—"),
                f"{_shape(v.get('in_shape'))} → {_shape(v.get('out_shape'))}",
                _shape(v.get("stride")),
                v.get("activation") or "—",
                _pool(v.get("pool")),
                fmt(v.get("density_percent"), 1),
                f"{fmt(coh.get('noshift'))} / {fmt(cohg.get('noshift'))}",
                f"{fmt(rip.get('p50'))} / {fmt(ripg.get('p50'))}",
                fmt(v.get("delta_lower")),
                fmt(v.get("theorem33_bound")),
                fmt(v.get("iht_error_one_step")),
                " / ".join(fmt(_at(errs, i)) for i in (1, 5, 20)),
                " / ".join(fmt(_at(errs_g, i)) for i in (1, 5, 20)),
            ]
        )
        for a in v.get("assumptions", []):
            if a.get("holds") is False:
                failing.append([name, a["text"]])
    headers = [
        "layer", "kind", "shape (in → out)", "stride", "activation", "pool", "% non-zero",
        "coherence learned / Gaussian", "‖Wᵀz‖/‖z‖ median learned / Gaussian",
        "δ (lower bound)", "Thm 3.3 bound at δ", "IHT 1 step (paper)",
        "IHT 1/5/20 it. learned", "IHT 1/5/20 it. Gaussian",
    ]  # fmt: skip
    tables = [Table(headers, rows, "Every convolution, the paper's analyses")]
    bracketed = [(n, v["delta"]) for n, v in r["layers"].items() if v.get("delta")]
    if bracketed:
        tables.append(Table(
            ["layer", "k", "δ_k ≥ (search)", "δ_k ≤ (Babel)", "δ_2k ≥ (search)",
             "δ_2k ≤ (Babel)", "Thm 3.3 at lower", "Thm 3.3 at upper"],
            [[n, str(d["k"]), fmt(d["delta_k"]["lower_search"]), fmt(d["delta_k"]["upper_babel"]),
              fmt(d["delta_2k"]["lower_search"]), fmt(d["delta_2k"]["upper_babel"]),
              fmt(d["theorem33_bound"]["at_lower"]), fmt(d["theorem33_bound"]["at_upper"])]
             for n, d in bracketed],
            "δ_k and δ_2k bracketed (lower bounds attained by explicit supports; '—': "
            "δ_2k ≥ 1, Theorem 3.3 vacuous)",
        ))  # fmt: skip
    if failing:
        tables.append(Table(["layer", "assumption that fails, and what was done"], failing,
                            "Where the paper's model does not fit"))  # fmt: skip
    model = r.get("model") or {}
    notes = [
        f"Model: {model.get('spec', '—')} ({model.get('source', 'in memory')}); inputs: "
        f"{r.get('config', {}).get('n_inputs')} of shape "
        f"{_shape(r.get('config', {}).get('input_shape'))}.",
        "W is each convolution with batch norm folded in and filters scaled to unit norm; "
        "the bias is left out (an offset, as in the paper). δ is the largest deviation of "
        "‖Wᵀz‖²/‖z‖² from 1 over the sampled codes: a lower bound on the true δ.",
    ]
    notes += [f"Discovery: {n}" for n in r.get("notes", [])]
    return Section("analyze", analysis_pngs(r), tables, notes)
