"""The ``cnninv analyze`` job: the paper's analyses for the network a user brings.

The inputs come from :func:`cnninv.experiments._inputs.load_model_inputs`; :func:`run`
calls :func:`cnninv.analysis.analyze_model` and returns the JSON-ready result (rendered by
:mod:`cnninv.report.analysis`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from cnninv.analysis import analyze_model
from cnninv.experiments._common import check_config, environment
from cnninv.experiments._inputs import load_model_inputs
from cnninv.models import LoadedModel, layer_map

__all__ = ["QUICK", "Config", "run"]

#: ``--quick``: few inputs, few codes, short solvers (VGG16: about 6 minutes on one thread).
QUICK = {
    "max_inputs": 4,
    "samples": 16,
    "max_activations": 1,
    "alg2_samples": 1,
    "alg2_iters": 10,
}


@dataclass
class Config:
    """Every setting of an analysis (recorded with the result)."""

    inputs: str = ""  # "" = the default photos (image models)
    layers: str = ""  # comma-separated qualified names; "" = every convolution
    size: str = ""
    channels: str = ""
    value_range: str = ""
    mean: str = ""
    std: str = ""
    max_inputs: int = 0  # 0: every input
    samples: int = 100
    iht_iters: int = 20
    max_activations: int = 8
    alg2_samples: int = 4
    alg2_iters: int = 100
    lam_fraction: float = 0.1
    batch: int = 4
    analyses: str = "density,coherence,rip,iht,algorithm2"
    seed: int = 0
    device: str = "cpu"
    quick: bool = False

    def __post_init__(self) -> None:
        check_config(
            self,
            ("samples", "iht_iters", "max_activations", "alg2_samples", "alg2_iters", "batch"),
        )
        if isinstance(self.max_inputs, bool) or not isinstance(self.max_inputs, int):
            raise ValueError(f"max_inputs must be an integer, got {self.max_inputs!r}")
        if self.max_inputs < 0:
            raise ValueError(f"max_inputs must be >= 0 (0: every input), got {self.max_inputs}")
        if not (isinstance(self.lam_fraction, int | float) and 0 < self.lam_fraction < 1):
            raise ValueError(f"lam_fraction must be in (0, 1), got {self.lam_fraction!r}")

    def layer_list(self) -> list[str] | None:
        names = [s.strip() for s in self.layers.split(",") if s.strip()]
        return names or None


def _paper_names(model: torch.nn.Module) -> dict[str, str]:
    """Qualified name -> the paper's name (VGG16, AlexNet and VGG-style stacks)."""
    try:
        return {q: p for p, q in layer_map(model).items()}
    except ValueError:
        return {}


def run(
    loaded: LoadedModel,
    config: Config,
    *,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Analyse ``loaded`` on its inputs; the JSON-ready result of ``cnninv analyze``."""
    started = time.perf_counter()
    inputs = load_model_inputs(loaded, config, log)
    result = analyze_model(
        loaded.model,
        inputs.x,
        config.layer_list(),
        samples=config.samples,
        iht_iters=config.iht_iters,
        max_activations=config.max_activations,
        alg2_samples=config.alg2_samples,
        alg2_iters=config.alg2_iters,
        lam_fraction=config.lam_fraction,
        batch_size=config.batch,
        analyses=[a.strip() for a in config.analyses.split(",") if a.strip()],
        seed=config.seed,
        device=config.device,
        progress=progress,
        log=log,
    ).to_dict()
    names = _paper_names(loaded.model)
    for qualified, layer in result["layers"].items():
        layer["paper_name"] = names.get(qualified)
    result["model"] = {
        "spec": loaded.spec,
        "kind": loaded.kind,
        "source": loaded.source,
        "provenance": loaded.provenance,
        "ignored": loaded.ignored,
        "input_kind": loaded.input_kind,
    }
    result["inputs"] = {
        "kind": inputs.kind,
        "source": inputs.description,
        "names": inputs.names,
        "shape": list(inputs.x.shape),
        "convention": None if inputs.convention is None else asdict(inputs.convention),
    }
    result.update(environment(config, started))
    return result
