"""What every renderer shares: a report :class:`Section` (figures, tables, notes), a
:class:`Table`, number formatting (:func:`fmt`) and PNG output of matplotlib figures
(headless: the Agg backend). The renderers import this module; it imports none of them."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["Section", "Table", "fmt", "plt", "png_bytes"]


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
    """A number for a table: ``—`` for None, scientific notation when very small or large."""
    if v is None:
        return "—"
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.2e}"
        return f"{v:.{digits}f}"
    return str(v)


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
