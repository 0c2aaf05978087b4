"""Run registered experiments and write their outputs: ``DIR/<name>.json`` (the result
with its configuration), the figures, and ``DIR/report.html``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cnninv.experiments.registry import REGISTRY, get, make_config, run_experiment
from cnninv.io import atomic_write_json, find_non_finite
from cnninv.report import build_report, render_experiment

__all__ = ["reproduce"]


def reproduce(
    names: Iterable[str],
    out: str | Path,
    *,
    quick: bool = False,
    seed: int = 0,
    device: str = "cpu",
    overrides: Mapping[str, Any] | None = None,
    progress: bool = False,
    log=print,
) -> list[Path]:
    """Run each experiment (``"all"`` for every registered one), write its JSON and
    figures to ``out``, then rebuild ``out/report.html``. Configurations are all built and
    checked before anything runs, so a bad parameter fails fast and writes nothing."""
    names = list(names)
    if "all" in names:
        names = list(REGISTRY)
    if not names:
        raise ValueError("name at least one experiment (or 'all')")
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        get(unknown[0])  # the error names the experiments that exist
    names = list(dict.fromkeys(names))
    params = {name: set(get(name).config.__dataclass_fields__) for name in names}
    overrides = dict(overrides or {})
    for key in overrides:
        takers = [n for n in names if key in params[n]]
        if not takers:
            raise ValueError(
                f"no experiment named ({', '.join(names)}) has a parameter {key!r}"
                + (f"; {names[0]}'s: {', '.join(sorted(params[names[0]]))}" if names else "")
            )
        if len(takers) < len(names):
            log(f"[cnninv] {key}={overrides[key]!r} applies to {', '.join(takers)} only")
    configs = {}
    for name in names:
        ov = {k: v for k, v in overrides.items() if k in params[name]}
        configs[name] = make_config(name, quick=quick, seed=seed, device=device, overrides=ov)
    out = Path(out)
    written: list[Path] = []
    for name, config in configs.items():
        log(f"[cnninv] {name}: {REGISTRY[name].title}")
        result = run_experiment(name, config, progress=progress)
        bad = find_non_finite(result)
        if bad is not None:
            raise ValueError(
                f"{name}: the result holds a non-finite value (NaN or inf) at {bad}; nothing "
                "of it was written"
            )
        path = atomic_write_json(out / REGISTRY[name].json_name, result)
        written.append(path)
        # drawn from the JSON as written, as `cnninv report` draws it: the report then
        # reuses these figures instead of drawing them again
        written += render_experiment(name, json.loads(path.read_text(encoding="utf-8")), out)
        log(f"[cnninv] {name}: done in {result.get('elapsed_s', 0):.1f} s -> {written[-1]}")
    written.append(build_report(out))
    log(f"[cnninv] report: {written[-1]}")
    return written
