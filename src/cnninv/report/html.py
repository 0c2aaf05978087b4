"""The self-contained HTML report: every figure embedded, every table with the paper's
numbers beside ours. Built from the result JSONs alone (each names its experiment and
title); no experiment code is imported."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import warnings
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path

from cnninv.io import atomic_write_bytes, atomic_write_text
from cnninv.report.base import Section, fmt
from cnninv.report.sections import SECTIONS

__all__ = ["build_report", "render_experiment"]

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}
caption{text-align:left;font-weight:600;margin:.3em 0}
img{max-width:100%}
.note{background:#fff8e1;border-left:4px solid #f0b400;
  padding:.4em .8em;margin:.4em 0}
details{margin:.5em 0;font-size:.85em} code,pre{font-size:.85em}
"""


#: Sections already drawn in this process, by experiment and the JSON of their result:
#: ``reproduce`` draws an experiment's figures, then the report would draw them again
_DRAWN: OrderedDict[tuple[str, str], Section] = OrderedDict()
_DRAWN_MAX = 32


def _result_key(name: str, result: dict) -> tuple[str, str] | None:
    try:
        text = json.dumps(result, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):  # tensors, NaN: not a result as read from its JSON
        return None
    return name, hashlib.sha256(text.encode()).hexdigest()


def _section(name: str, result: dict) -> Section:
    """``SECTIONS[name](result)``, drawn once per process for the same result."""
    key = _result_key(name, result)
    if key is not None and key in _DRAWN:
        _DRAWN.move_to_end(key)
        return _DRAWN[key]
    section = SECTIONS[name](result)
    if key is not None:
        _DRAWN[key] = section
        while len(_DRAWN) > _DRAWN_MAX:
            _DRAWN.popitem(last=False)
    return section


def render_experiment(name: str, result: dict, out_dir: str | Path) -> list[Path]:
    """Write the figures of one experiment into ``out_dir``; returns their paths. A result
    as read from its JSON is drawn once per process: :func:`build_report` then reuses the
    figures instead of drawing them again."""
    section = _section(name, result)
    return [atomic_write_bytes(Path(out_dir) / fn, png) for fn, png in section.figures.items()]


def _section_html(name: str, result: dict, section: Section) -> str:
    title = str(result.get("title") or name)
    parts = [f'<h2 id="{html.escape(name)}">{html.escape(title)}</h2>']
    for fn, png in section.figures.items():
        data = base64.b64encode(png).decode()
        parts.append(f'<img alt="{html.escape(fn)}" src="data:image/png;base64,{data}">')
    for table in section.tables:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
            for row in table.rows
        )
        cap = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
        parts.append(f"<table>{cap}<tr>{head}</tr>{body}</table>")
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in section.notes]
    config = json.dumps(result.get("config", {}), indent=1)
    parts.append(
        f"<details><summary>configuration (elapsed {fmt(result.get('elapsed_s'))} s, torch "
        f"{html.escape(str(result.get('torch_version')))})</summary><pre>{html.escape(config)}"
        "</pre></details>"
    )
    return "\n".join(parts)


def _read_result(path: Path) -> tuple[str, dict] | None:
    """``(experiment name, result)`` of a JSON file, or None (with a warning naming the file)
    when it is not a result the report knows."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        warnings.warn(f"report: skipped {path}: not readable JSON ({exc})", stacklevel=3)
        return None
    name = data.get("experiment") if isinstance(data, dict) else None
    if name not in SECTIONS:
        return None  # not an experiment result (e.g. another tool's JSON): not ours to judge
    return name, data


def build_report(out_dir: str | Path) -> Path:
    """Collect the experiment results found in ``out_dir`` (the JSON files that name an
    experiment) into ``out_dir/report.html``, in the order of :data:`SECTIONS`. A result
    that its renderer cannot read (a file of another experiment, an older format) is
    skipped with a warning naming it; the report is still built."""
    out_dir = Path(out_dir)
    results: dict[str, tuple[Path, dict]] = {}
    for path in sorted(out_dir.glob("*.json")):
        read = _read_result(path)
        if read is not None:
            results.setdefault(read[0], (path, read[1]))
    found = []
    for name in SECTIONS:
        if name not in results:
            continue
        path, result = results[name]
        try:
            found.append((name, result, _section(name, result)))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            warnings.warn(
                f"report: skipped {path}: not a readable {name} result "
                f"({type(exc).__name__}: {exc})",
                stacklevel=2,
            )
    if not found:
        raise ValueError(f"no experiment results in {out_dir}; run `cnninv reproduce` first")
    toc = "".join(
        f'<li><a href="#{n}">{html.escape(str(r.get("title") or n))}</a>'
        f"{' (quick)' if (r.get('config') or {}).get('quick') else ''}</li>"
        for n, r, _ in found
    )
    body = "\n".join(_section_html(n, r, sec) for n, r, sec in found)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>cnninv report</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>cnninv: Towards Understanding the Invertibility of CNNs — reproduction</h1>"
        "<p>Gilbert, Zhang, Lee, Zhang, Lee (2017). Each section shows our numbers beside the "
        f"paper's; notes say plainly where they differ. Generated {stamp}.</p>"
        f"<ul>{toc}</ul>{body}</body></html>"
    )
    return atomic_write_text(out_dir / "report.html", page)
