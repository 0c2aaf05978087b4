"""Rendering of Table 1 (random versus learned filters): the table with the paper's
CIFAR-10 numbers beside ours, and validation accuracy against width."""

from __future__ import annotations

from collections import defaultdict

from cnninv.report.base import Section, Table, fmt, plt, png_bytes

__all__ = ["table1_png", "table1_section"]

_COLOURS = {"random": "#c44e52", "learned": "#4c72b0"}


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def table1_png(result: dict) -> bytes:
    """Validation accuracy against width, one panel per depth: for random and learned
    filters, the best kernel size at each width (line) and every kernel size (dots); on
    CIFAR-10, the paper's test accuracies as dotted lines."""
    grid = result["grid"]
    depths = sorted({r["depth"] for r in grid})
    same_data = result["dataset"] == "cifar10"  # the paper's numbers are CIFAR-10's
    fig, axes = plt.subplots(
        1, len(depths), figsize=(4.2 * len(depths), 3.4), squeeze=False, sharey=True
    )
    for ax, depth in zip(axes[0], depths, strict=True):
        for variant in ("random", "learned"):
            rows = [r for r in grid if r["depth"] == depth and r["variant"] == variant]
            if not rows:
                continue
            by_width: dict[int, list[float]] = defaultdict(list)
            for r in rows:
                by_width[r["width"]].append(r["val_acc"])
            widths = sorted(by_width)
            colour = _COLOURS[variant]
            ax.plot(
                widths,
                [100 * max(by_width[w]) for w in widths],
                "o-",
                color=colour,
                label=f"{variant} (best kernel)",
            )
            for r in rows:
                ax.plot(r["width"], 100 * r["val_acc"], ".", color=colour, alpha=0.45, ms=5)
            paper = result["paper"]["accuracy"][variant].get(str(depth))
            if paper is not None and same_data:
                ax.axhline(
                    100 * paper,
                    color=colour,
                    ls=":",
                    lw=1,
                    label=f"paper's test accuracy ({variant})",
                )
        ax.set_xscale("log", base=2)
        ws = sorted({r["width"] for r in grid})
        ax.set_xticks(ws, [str(w) for w in ws])
        ax.minorticks_off()
        ax.set_title(f"{depth} layer{'s' if depth > 1 else ''}", fontsize=10)
        ax.set_xlabel("width (output channels per layer)")
        if ax is axes[0][0]:
            ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    c = result["config"]
    fig.suptitle(
        f"{result['dataset']}: validation accuracy against width (dots: kernel sizes "
        f"{', '.join(map(str, c['kernel_sizes']))}; {c['epochs']} epoch(s) on "
        f"{result['n_train']} images, seed {c['seed']})",
        fontsize=10,
    )
    fig.tight_layout()
    return png_bytes(fig)


def table1_section(result: dict) -> Section:
    """The table (per depth: random and learned test accuracy with the chosen
    architectures, and the paper's CIFAR-10 numbers beside), the grid, and the plot."""
    paper = result["paper"]
    rows = []
    for depth, row in result["depths"].items():
        rows.append(
            [
                depth,
                _pct(row["random"]),
                row["random_arch"] or "—",
                _pct(row["learned"]),
                row["learned_arch"] or "—",
                _pct(paper["accuracy"]["random"].get(depth)),
                _pct(paper["accuracy"]["learned"].get(depth)),
            ]
        )
    table = Table(
        [
            "layers",
            "random: ours (test)",
            "chosen architecture",
            "learned: ours (test)",
            "chosen architecture",
            "random: paper (CIFAR-10)",
            "learned: paper (CIFAR-10)",
        ],
        rows,
        f"Table 1: test accuracy on {result['dataset']} ({result['n_test']} test images) of the "
        "configuration chosen by validation accuracy; the paper's numbers are on CIFAR-10",
    )
    arch_rows = [
        [
            depth,
            paper["arch"]["random"].get(depth, "—"),
            paper["arch"]["learned"].get(depth, "—"),
        ]
        for depth in result["depths"]
    ]
    arch_table = Table(
        ["layers", "paper's random architecture", "paper's learned architecture"],
        arch_rows,
        "Table 5: the paper's best architectures on CIFAR-10",
    )
    grid_rows = [
        [
            str(r["depth"]),
            r["variant"],
            r["arch"],
            _pct(r["val_acc"]),
            fmt(r["seconds"], 1),
            "reused" if r["cached"] else "trained",
        ]
        for r in sorted(
            result["grid"], key=lambda r: (r["depth"], r["variant"], r["width"], r["kernel_size"])
        )
    ]
    grid_table = Table(
        ["layers", "filters", "architecture", "validation", "train s", "this run"],
        grid_rows,
        f"Every configuration ({result['n_train']} training, {result['n_val']} validation images)",
    )
    notes = [result["paper_note"]]
    if result.get("width_note"):
        notes.append(result["width_note"])
    gaps = []
    for depth, row in result["depths"].items():
        if row["random"] is None or row["learned"] is None:
            continue
        ours = 100 * (row["learned"] - row["random"])
        p = paper["accuracy"]
        theirs = 100 * (p["learned"][depth] - p["random"][depth]) if depth in p["random"] else None
        gaps.append(
            f"{depth} layer(s): {ours:+.1f} points"
            + ("" if theirs is None else f" (paper {theirs:+.1f})")
        )
    if gaps:
        notes.append("Learned minus random filters: " + "; ".join(gaps) + ".")
    notes.append(
        f"{result['selection'][0].upper()}{result['selection'][1:]}. "
        f"{result['trained_now']} configuration(s) trained in this run, "
        f"{result['reused_from_checkpoints']} reused from checkpoints in "
        f"{result['checkpoint_dir']}; {result['scheduler']}."
    )
    return Section(
        result["experiment"],
        {"table1.png": table1_png(result)},
        [table, arch_table, grid_table],
        notes,
    )
