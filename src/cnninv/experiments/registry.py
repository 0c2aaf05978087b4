"""The experiments ``cnninv reproduce`` knows, and how their configurations are built."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cnninv.experiments import (
    delta,
    fig2,
    fig2_sensitivity,
    fig3,
    inversion_baselines,
    inversion_figs,
    phase_transition,
    prop1,
    switches,
    table1,
    table2,
    table3,
    table4_image,
)
from cnninv.experiments import table4_activations as table4a
from cnninv.experiments._inversion import QUICK as INVERSION_QUICK

__all__ = ["REGISTRY", "Experiment", "get", "make_config", "make_job_config", "run_experiment"]


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: its name, a one-line title, its config class, its run
    function, the overrides that make its ``--quick`` version, and its JSON file name."""

    name: str
    title: str
    config: type
    run: Callable[..., dict]
    quick: Mapping[str, Any] = field(default_factory=dict)

    @property
    def json_name(self) -> str:
        return self.name.replace("-", "_") + ".json"


REGISTRY: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment(
            "fig2",
            "Figure 2: 1-d model-RIP and reconstruction with Gaussian filters (§4.2)",
            fig2.Config,
            fig2.run,
            quick={"samples": 1000, "iters": 20},
        ),
        Experiment(
            "fig2-sensitivity",
            "Beyond the paper: Figure 2(c) under each choice the paper leaves open",
            fig2_sensitivity.Config,
            fig2_sensitivity.run,
            quick={"samples": 1000},
        ),
        Experiment(
            "prop1",
            "Proposition 1: CReLU pairs with an orthonormal W reconstruct exactly (§3.1)",
            prop1.Config,
            prop1.run,
            quick={"samples": 64},
        ),
        Experiment(
            "table2",
            "Table 2: % of non-zero activations per layer of VGG16 on real photos (§4.4)",
            table2.Config,
            table2.run,
            quick={"max_images": 6},
        ),
        Experiment(
            "table3",
            "Table 3: coherence of VGG16's learned filters vs Gaussian filters (§4.4)",
            table3.Config,
            table3.run,
        ),
        Experiment(
            "fig3",
            "Figure 3: 2-d model-RIP of VGG16 conv5_2, synthetic and Algorithm 2 codes (§4.4)",
            fig3.Config,
            fig3.run,
            quick={
                "samples": 100,
                "max_images": 2,
                "max_iter": 20,
                "sweep_lambdas": (0.005, 0.01, 0.03, 0.1, 0.2, 0.5),
                "sweep_max_iter": 10,
            },
        ),
        Experiment(
            "delta",
            "Beyond the paper: δ_k and δ_2k of Wᵀ bracketed from both sides (Figs 2, 3, VGG16)",
            delta.Config,
            delta.run,
            quick=delta.QUICK,
        ),
        Experiment(
            "phase-transition",
            "Beyond the paper: Theorem 3.1's phase transition and its constant C, measured",
            phase_transition.Config,
            phase_transition.run,
            quick=phase_transition.QUICK,
        ),
        Experiment(
            "table4-activations",
            "Table 4 (activation space): IHT reconstruction of pool1-pool4 activations (§4.5)",
            table4a.Config,
            table4a.run,
            quick={"max_images": 2, "iters": "1,5"},
        ),
        Experiment(
            "table4-image",
            "Table 4 (image space): decoded IHT reconstructions of pool1-pool4 (§4.5)",
            table4_image.Config,
            table4_image.run,
            quick=INVERSION_QUICK,
        ),
        Experiment(
            "fig4",
            "Figure 4: pictures decoded from pool4 activations, original / IHT / random",
            inversion_figs.Fig4Config,
            inversion_figs.run,
            quick=INVERSION_QUICK,
        ),
        Experiment(
            "switches",
            "What the switches carry: images from values and/or switches, pool1-pool4 (§5)",
            switches.Config,
            switches.run,
            quick={**INVERSION_QUICK, **switches.QUICK},
        ),
        Experiment(
            "fig5",
            "Figure 5: the same for every layer pool1-pool4 (Appendix C.3)",
            inversion_figs.Fig5Config,
            inversion_figs.run,
            quick=INVERSION_QUICK,
        ),
        Experiment(
            "inversion-baselines",
            "Beyond the paper: IHT vs decoder vs optimisation vs deconvnet, per layer",
            inversion_baselines.Config,
            inversion_baselines.run,
            quick={**INVERSION_QUICK, **inversion_baselines.QUICK},
        ),
        Experiment(
            "table1",
            "Table 1: classification with random vs learned filters, 1-3 layers (§4.1, C.1)",
            table1.Config,
            table1.run,
            quick=table1.QUICK,
        ),
        Experiment(
            "table6",
            "Table 6: coherence of AlexNet filters (random unless a weights file is given)",
            table3.AlexNetConfig,
            table3.run,
        ),
        Experiment(
            "table7",
            "Table 7: % of non-zeros per layer of AlexNet (random unless a weights file is given)",
            table2.AlexNetConfig,
            table2.run,
            quick={"max_images": 6},
        ),
    )
}


def get(name: str) -> Experiment:
    if name not in REGISTRY:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def _coerce(value: Any, like: Any, key: str) -> Any:
    if not isinstance(value, str) or isinstance(like, str) or like is None:
        return value
    if isinstance(like, tuple | list):  # "16,32" -> (16, 32), typed like the default
        items = [v.strip() for v in value.split(",") if v.strip()]
        elem = like[0] if like else value
        return tuple(_coerce(v, elem, key) for v in items)
    try:
        if isinstance(like, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return value.lower() in ("true", "1")
        return type(like)(value)
    except ValueError:
        raise ValueError(f"{key}={value!r} is not a valid {type(like).__name__}") from None


def make_config(
    name: str, *, quick: bool = False, overrides: Mapping[str, Any] | None = None, **common: Any
) -> Any:
    """The configuration of experiment ``name``: defaults, then the quick overrides, then
    the common options (seed, device) and explicit ``overrides`` (``--set key=value``)."""
    exp = get(name)
    fields = {f.name: f for f in dataclasses.fields(exp.config)}
    values: dict[str, Any] = dict(exp.quick) if quick else {}
    values["quick"] = quick
    merged = {**common, **(overrides or {})}
    for key, value in merged.items():
        if value is None:
            continue
        if key not in fields:
            raise ValueError(
                f"experiment {name!r} has no parameter {key!r}; parameters: {', '.join(fields)}"
            )
        default = fields[key].default
        values[key] = _coerce(value, default, key)
    return exp.config(**values)


def run_experiment(name: str, config: Any, *, progress: bool = False) -> dict:
    """Run experiment ``name`` with ``config``; the result carries its name and title, so
    that the report can be rebuilt from the JSON alone."""
    exp = get(name)
    result = exp.run(config, progress=progress)
    return {**result, "experiment": name, "title": exp.title}


def make_job_config(
    config_class: type,
    quick_overrides: Mapping[str, Any],
    *,
    quick: bool,
    values: Mapping[str, Any],
) -> Any:
    """The configuration of a job that is not a registered experiment (``analyze``): the
    class's defaults, then ``quick_overrides`` when ``quick``, then ``values``."""
    merged: dict[str, Any] = dict(quick_overrides) if quick else {}
    merged.update({k: v for k, v in values.items() if v is not None})
    merged["quick"] = quick
    return config_class(**merged)
