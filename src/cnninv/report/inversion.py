"""Rendering of the inversion experiments (``table4-image``, ``fig4``, ``fig5``,
``inversion-baselines``): picture grids and tables, our numbers beside the paper's.

The section renderers take the JSON-ready result of the experiment and return a
:class:`~cnninv.report.base.Section`. :func:`grid_png` also draws the side-by-side
picture of ``cnninv invert``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np

from cnninv.report.base import Section, Table, fmt, plt, png_bytes

__all__ = [
    "decoder_note",
    "fig4_section",
    "fig5_section",
    "grid_png",
    "inversion_baselines_section",
    "switches_section",
    "table4_image_png",
    "table4_image_section",
]


def _image(picture) -> np.ndarray:
    """A base64 PNG string, or an array (H, W, 3) in [0, 1], as an array for imshow."""
    if isinstance(picture, str):
        from PIL import Image

        with Image.open(io.BytesIO(base64.b64decode(picture))) as img:
            return np.asarray(img.convert("RGB"))
    return np.asarray(picture)


def grid_png(
    rows: Sequence[tuple[str, Sequence]],
    column_titles: Sequence[str] = (),
    *,
    cell: float = 1.6,
    captions: Sequence[Sequence[str]] | None = None,
) -> bytes:
    """A grid of pictures: ``rows`` is ``[(label, [picture, ...]), ...]`` (pictures as
    base64 PNG or arrays); ``captions[r][c]`` is written under a picture."""
    n_rows = len(rows)
    n_cols = max((len(p) for _, p in rows), default=0)
    if n_rows == 0 or n_cols == 0:
        raise ValueError("grid_png needs at least one picture")
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(cell * n_cols + 2.2, cell * n_rows + 0.4), squeeze=False
    )
    for r, (label, pictures) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(pictures):
                ax.imshow(_image(pictures[c]))
            if captions is not None and c < len(captions[r]) and captions[r][c]:
                ax.set_xlabel(captions[r][c], fontsize=7)
            if r == 0 and c < len(column_titles):
                ax.set_title(column_titles[c], fontsize=7)
        axes[r][0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.tight_layout(pad=0.3)
    return png_bytes(fig)


def _row_labels(r: dict) -> dict[str, str]:
    return r["rows"]


def table4_image_png(r: dict) -> bytes:
    """Grouped bars: our four image-space errors per layer, the paper's three as marks."""
    layers = list(r["layers"])
    rows = list(r["rows"])
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / len(rows)
    xs = np.arange(len(layers))
    paper_keys = {
        "iht_learned": "paper_learned",
        "iht_random": "paper_random",
        "random_activations": "paper_random_activations",
    }
    for j, row in enumerate(rows):
        vals = [r["layers"][lay][row] for lay in layers]
        pos = xs + (j - (len(rows) - 1) / 2) * width
        ax.bar(pos, vals, width, label=r["rows"][row])
        if row in paper_keys:
            pv = [r["layers"][lay][paper_keys[row]] for lay in layers]
            if any(v is not None for v in pv):
                ax.scatter(
                    pos,
                    [np.nan if v is None else v for v in pv],
                    marker="_",
                    s=200,
                    color="k",
                    zorder=3,
                    label="paper" if row == "iht_learned" else None,
                )
    ax.set_xticks(xs, layers)
    ax.set_ylabel("‖x̂ − x‖ / ‖x‖ (input space)")
    ax.set_title("Table 4, image space: decoder outputs vs the original photo", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return png_bytes(fig)


def decoder_note(layer: str, d: dict) -> str:
    """One line saying which decoder made a layer's pictures: where it comes from, its
    file's SHA-256, its training photos and steps, its validation and held-out errors."""
    source = d.get("source", "trained")
    origin = {
        "shipped": "shipped with cnninv",
        "trained": "trained in this run" if d.get("trained_in_this_run") else "cached",
        "file": "the file given",
    }.get(source, source)
    epochs = d.get("epochs")
    text = (
        f"{layer} decoder ({origin}): SHA-256 {str(d.get('sha256', '?'))[:12]}…, "
        f"{d.get('training_images')} training photos, {d.get('steps')} steps"
        + (
            f" ({epochs} epoch{'s' if epochs != 1 else ''} of "
            f"{d.get('steps', 0) // max(epochs, 1)} steps"
            if epochs
            else ""
        )
        + (f" of {d.get('batch')} crops)" if epochs and d.get("batch") else (")" if epochs else ""))
        + f", {fmt(d.get('train_seconds'), 0)} s of training; held-out error "
        f"{fmt(d.get('held_out_error'))}"
    )
    if d.get("validation_error") is not None:
        text += f", validation error {fmt(d.get('validation_error'))}"
    return text + f"; file {d.get('file')}."


def _order_text(flags: dict) -> str:
    if flags["holds"]:
        return "holds"
    broken = []
    if not flags["original_le_iht_learned"]:
        broken.append("IHT learned decodes better than the original activation")
    if not flags["iht_learned_le_random_activations"]:
        broken.append("IHT learned decodes worse than random activations")
    return "fails: " + "; ".join(broken)


def table4_image_section(r: dict):
    rows = []
    for name, v in r["layers"].items():
        m = v["metrics"]
        rows.append(
            [
                f"{name} → {v['next_conv']}",
                fmt(v["original_activation"]),
                fmt(v["iht_learned"]),
                fmt(v["paper_learned"]),
                fmt(v["iht_random"]),
                fmt(v["paper_random"]),
                fmt(v["random_activations"]),
                fmt(v["paper_random_activations"]),
                " / ".join(fmt(m[row]["psnr"], 1) for row in r["rows"]),
                " / ".join(fmt(m[row]["ssim"], 2) for row in r["rows"]),
            ]
        )
    headers = [
        "layer",
        "(b) original activation",
        "(c) IHT learned",
        "paper",
        "(d) IHT random",
        "paper",
        "(e) random activations",
        "paper",
        "PSNR dB (b/c/d/e)",
        "SSIM (b/c/d/e)",
    ]
    tables = [Table(headers, rows, "Table 4, image space: relative error of the decoded image")]
    variant_rows = r.get("variant_rows") or {}
    if variant_rows:
        tables.append(
            Table(
                ["layer", *variant_rows.values()],
                [[name, *(fmt(v[row]) for row in variant_rows)] for name, v in r["layers"].items()],
                "Beyond the paper (variants, not its protocol): the same decoders on the "
                "reconstructions projected onto f ≥ 0, rescaled to ‖f‖",
            )
        )
    stats_rows = []
    for name, v in r["layers"].items():
        st = v.get("activation_stats")
        if not st:
            continue
        for row in ("iht_learned", "iht_random", "random_activations"):
            a = st[row]
            stats_rows.append(
                [
                    name,
                    r["rows"][row],
                    fmt(a["negative_norm_share"], 2),
                    fmt(a["cosine_with_f"]),
                    fmt(a["channel_mean_cosine"]),
                    f"{fmt(a['high_frequency_ratio'], 2)} "
                    f"({fmt(a['high_frequency_ratio_of_f'], 2)})",
                ]
            )
    if stats_rows:
        tables.append(
            Table(
                [
                    "layer",
                    "activation",
                    "‖negative part‖/‖a‖",
                    "cos(a, f)",
                    "cos of channel means",
                    "high-frequency ratio (of f)",
                ],
                stats_rows,
                "What each reconstructed activation looks like to the decoder",
            )
        )
    has_opt = all("original_activation_optimize" in v for v in r["layers"].values())
    if has_opt:
        tables.append(
            Table(
                ["layer", *(f"{label}, optimisation" for label in r["rows"].values())],
                [
                    [name, *(fmt(v[f"{row}_optimize"]) for row in r["rows"])]
                    for name, v in r["layers"].items()
                ],
                "Decoder-free column: each activation inverted by the optimisation "
                f"(Mahendran & Vedaldi) on {len(r['optimize']['images'])} photo(s) at "
                f"{r['optimize']['size']} px",
            )
        )
    notes = [
        f"Error: {r['error_definition']}. {len(r['images'])} photos: {', '.join(r['images'])}"
        + (f" (held out: {r['held_out_rule']})." if r.get("held_out_rule") else "."),
        f"Method: {r['method']}.",
        "The paper's decoders (Caffe, Zhang et al. 2016, trained on ImageNet) cannot be had "
        "offline; ours are trained on the offline photos, so column (b) differs from theirs "
        "and every column with it. The paper does not print (b); compare the columns with "
        "each other.",
    ]
    for name, v in r["layers"].items():
        text = f"{name}: the paper's ordering (decoder on f ≤ IHT learned ≤ random activations) "
        text += f"{_order_text(v['ordering'])} with the decoder"
        if "ordering_optimize" in v:
            text += f", {_order_text(v['ordering_optimize'])} with the optimisation"
        notes.append(text + ".")
    if variant_rows:
        better = [n for n, v in r["layers"].items() if v["iht_learned_nonneg"] < v["iht_learned"]]
        notes.append(
            "Projecting the learned-filter reconstruction onto f ≥ 0 lowers its decoded error "
            f"at {', '.join(better) if better else 'no layer'} of {len(r['layers'])}."
        )
    if has_opt:
        o = r["optimize"]["options"]
        notes.append(
            f"Optimisation: {r['optimize']['method']}; photos "
            f"{', '.join(r['optimize']['images'])}; "
            f"{o['iters']} Adam steps, TV weight {o['tv_weight']}, α-norm weight "
            f"{o['alpha_weight']}."
        )
    notes += [decoder_note(name, v["decoder"]) for name, v in r["layers"].items()]
    return Section("table4-image", {"table4_image.png": table4_image_png(r)}, tables, notes)


def _figure_rows(r: dict, layer: str) -> tuple[list[tuple[str, list]], list[list[str]]]:
    v = r["layers"][layer]
    rows = [(r["rows"]["original"], r["originals"])]
    captions = [["" for _ in r["originals"]]]
    for row, label in r["rows"].items():
        if row == "original":
            continue
        rows.append((label, v["pictures"][row]))
        captions.append([f"{e:.3f}" for e in v["errors"][row]])
    return rows, captions


def _figure_section(r: dict, name: str):
    figures = {}
    for layer in r["layers"]:
        rows, captions = _figure_rows(r, layer)
        fn = f"{name}.png" if len(r["layers"]) == 1 else f"{name}_{layer}.png"
        figures[fn] = grid_png(rows, r["images"], captions=captions)
    table = Table(
        ["layer", *(label for key, label in r["rows"].items() if key != "original"), "k"],
        [
            [
                layer,
                *(
                    fmt(sum(v["errors"][row]) / len(v["errors"][row]))
                    for row in r["rows"]
                    if row != "original"
                ),
                str(v["k"]),
            ]
            for layer, v in r["layers"].items()
        ],
        "Mean image-space relative error of each row (the number under each picture is its own)",
    )
    notes = [
        f"Error: {r['error_definition']}.",
        "Decoders trained by cnninv (the paper's Caffe decoders are not available); every "
        "reconstruction uses the photo's own pooling switches, as the what-where decoder "
        "does in the paper.",
        *(decoder_note(layer, v["decoder"]) for layer, v in r["layers"].items()),
    ]
    return Section(name, figures, [table], notes)


def fig4_section(r: dict):
    return _figure_section(r, "fig4")


def fig5_section(r: dict):
    return _figure_section(r, "fig5")


def inversion_baselines_section(r: dict):
    rows = []
    for layer, per in r["layers"].items():
        for method, v in per.items():
            rows.append(
                [
                    layer,
                    method,
                    fmt(v["relative_error"]),
                    fmt(v["rgb_relative_error"]),
                    fmt(v["psnr"], 2),
                    fmt(v["ssim"]),
                    fmt(v["seconds_per_image"], 2),
                ]
            )
    table = Table(
        ["layer", "method", "relative error", "RGB error", "PSNR dB", "SSIM", "s / photo"],
        rows,
        f"Inversion methods on {len(r['images'])} photos at {r['image_size']} px",
    )
    layers = list(r["layers"])
    g = r["grid"]
    grid_rows = [("original", [g["original"]] * len(layers))]
    for method in r["methods"]:
        grid_rows.append((method, [g["pictures"][layer][method] for layer in layers]))
    figure = grid_png(grid_rows, layers)
    o = r["optimize_options"]
    notes = [
        f"Error: {r['error_definition']}. Photo of the grid: {g['image']}.",
        f"optimize: Adam, {o['iters']} iterations, lr {o['lr']}, TV weight {o['tv_weight']} "
        f"(β={o['beta']}), α-norm weight {o['alpha_weight']} (α={o['alpha']}), B={o['B']}.",
        *(f"{k}: {v}." for k, v in r["notes"].items()),
        *(decoder_note(layer, d) for layer, d in (r.get("decoders") or {}).items()),
    ]
    return Section(
        "inversion-baselines",
        {"inversion_baselines.png": figure},
        [table],
        notes,
    )


def invert_files(result: dict) -> tuple[dict[str, bytes], dict]:
    """The outputs of ``cnninv invert`` from the job's result
    (:func:`cnninv.experiments.invert.run`): ``({file name: bytes}, record)`` — one PNG per
    photo and method (``NAME_LAYER_METHOD.png``; a ``.npy`` for inputs that are not
    photos), one grid per photo beside the original (``NAME_LAYER_grid.png``), and the
    JSON record (the result without the pictures, each row naming its file)."""
    layer, methods = result["layer"], result["methods"]
    files: dict[str, bytes] = {}
    rows = []
    arrays = result.get("arrays") or {}
    for row in result["results"]:
        key = f"{row['image']}|{row['method']}"
        if key in result["pictures"]:
            name = f"{row['image']}_{layer}_{row['method']}.png"
            files[name] = base64.b64decode(result["pictures"][key])
        else:
            name = f"{row['image']}_{layer}_{row['method']}.npy"
            files[name] = base64.b64decode(arrays[key])
        rows.append({**row, "file": name})
    for image in result["images"] if result.get("originals") else []:
        pictures = [result["originals"][image]]
        pictures += [result["pictures"][f"{image}|{m}"] for m in methods]
        captions = [""] + [
            f"error {r['relative_error']:.3f}, SSIM {r['ssim']:.2f}"
            for m in methods
            for r in result["results"]
            if r["image"] == image and r["method"] == m
        ]
        files[f"{image}_{layer}_grid.png"] = grid_png(
            [(image, pictures)], ["original", *methods], cell=2.4, captions=[captions]
        )
    record = {k: v for k, v in result.items() if k not in ("pictures", "originals", "arrays")}
    record["results"] = rows
    return files, record


def switches_section(r: dict):
    """The switch experiment: error and SSIM per condition and layer, for the decoder and
    the optimisation; one grid per method (the first photo, a row per condition)."""
    layers = list(r["layers"])
    conditions = r["conditions"]
    rows = []
    for cond, label in conditions.items():
        rows.append(
            [
                label,
                *(
                    f"{fmt(r['layers'][lay][cond]['error'])} / "
                    f"{fmt(r['layers'][lay][cond]['ssim'], 2)}"
                    for lay in layers
                ),
                *(
                    f"{fmt(r['layers'][lay][cond]['optimize']['error'])} / "
                    f"{fmt(r['layers'][lay][cond]['optimize']['ssim'], 2)}"
                    for lay in layers
                ),
            ]
        )
    headers = [
        "given",
        *(f"{lay} decoder: error / SSIM" for lay in layers),
        *(f"{lay} optimisation" for lay in layers),
    ]
    table = Table(headers, rows, "What the switches carry: reconstruction error and SSIM")
    g = r["grid"]
    figures = {}
    for method in ("decoder", "optimize"):
        grid_rows = [("original", [g["original"]] * len(layers))]
        for cond, label in conditions.items():
            grid_rows.append((label, [g[method][lay][cond] for lay in layers]))
        figures[f"switches_{method}.png"] = grid_png(grid_rows, layers)
    o = r["optimize"]
    notes = [
        f"Error: {r['error_definition']}. Decoder: {len(r['images'])} photos; optimisation: "
        f"{', '.join(o['images'])} at {o['size']} px, {o['options']['iters']} steps. Grids: "
        f"{g['image']}.",
        *(f"{conditions[c]}: {n}." for c, n in r["condition_notes"].items()),
        f"Optimisation objective: {o['objective']}.",
    ]
    for lay in layers:
        v = r["layers"][lay]
        for method, label in (("decoder", "decoder"), ("optimize", "optimisation")):
            e = {
                c: (v[c] if method == "decoder" else v[c]["optimize"])["error"] for c in conditions
            }
            best = min(e, key=e.get)
            notes.append(
                f"{lay}, {label}: error {fmt(e['values_and_switches'])} from values and "
                f"switches, {fmt(e['values_only'])} from the values alone, "
                f"{fmt(e['switches_only'])} from the switches alone, {fmt(e['neither'])} from "
                f"neither; lowest: {conditions[best]}."
            )
    notes += [decoder_note(lay, r["layers"][lay]["decoder"]) for lay in layers]
    return Section("switches", figures, [table], notes)
