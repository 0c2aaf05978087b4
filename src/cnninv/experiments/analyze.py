"""The ``cnninv analyze`` job: the paper's analyses for the network a user brings.

:func:`load_inputs` turns ``--inputs`` (a folder of images, a folder of WAV files, a
``.npy`` array; by default the 20 ImageNet photos for an image model) into the batch the
model's forward takes, with the input convention the flags describe; :func:`run` calls
:func:`cnninv.analysis.analyze_model` and returns the JSON-ready result (rendered by
:mod:`cnninv.report.analysis`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from cnninv.analysis import analyze_model
from cnninv.data import (
    TORCHVISION_RGB,
    InputConvention,
    convention_from_options,
    default_images,
    inputs_kind,
    load_array,
    load_signals,
    read_photos,
)
from cnninv.experiments._common import check_config, environment
from cnninv.models import LoadedModel, check_inputs, layer_map, signal_layout

__all__ = ["QUICK", "Config", "Inputs", "load_inputs", "run"]

#: ``--quick``: few inputs, few codes, short solvers (about a minute for VGG16 on 2 cores).
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


@dataclass
class Inputs:
    """The batch the model takes, what it was made from, and how."""

    x: torch.Tensor
    names: list[str]
    kind: str
    description: str
    convention: InputConvention | None = None


def _convention(loaded: LoadedModel, config: Config, log) -> InputConvention:
    given = any((config.size, config.channels, config.value_range, config.mean, config.std))
    base = loaded.convention
    if base is None and not given and log is not None:
        log(
            "cnninv: warning: the model's input convention is unknown and none was given: "
            "images are prepared as torchvision's (RGB, [0, 1], ImageNet mean and std, 224 "
            "px); say --channels, --range, --mean, --std, --size if the model wants another"
        )
    return convention_from_options(
        config.size or None,
        config.channels or None,
        config.value_range or None,
        config.mean or None,
        config.std or None,
        base=base if base is not None else TORCHVISION_RGB,
    )


def load_inputs(loaded: LoadedModel, config: Config, log=None) -> Inputs:
    """The analysis' inputs (see the module docstring).

    Raises
    ------
    ValueError
        A 1-d model without ``--inputs``; unreadable inputs; inputs the model cannot take
        (the message says what it wants).
    """
    model = loaded.model
    path = config.inputs
    if not path:
        if loaded.input_kind != "image":
            raise ValueError(
                f"the model takes {loaded.input_kind}s, not photos: give --inputs (a folder "
                "of WAV files, or a .npy array of the shape its forward takes)"
            )
        kind = "image"
        source: Any = default_images()
        description = "the 20 ImageNet photos of foolbox"
    else:
        kind = inputs_kind(path)
        source = path
        description = str(Path(path))
    if kind == "image":
        convention = _convention(loaded, config, log)
        if config.max_inputs and isinstance(source, list):
            source = source[: config.max_inputs]
        x, paths = read_photos(source, convention)
        names = [p.stem for p in paths]
        if loaded.input_shape is not None and len(loaded.input_shape) == 4:
            if loaded.input_shape[-1] == 3 and loaded.input_shape[1] != 3:
                x = x.permute(0, 2, 3, 1).contiguous()  # a channels-last (NHWC) graph
                description += " (NHWC, as the model declares)"
        out = Inputs(x, names, kind, description, convention)
    elif kind == "signal":
        signals = load_signals(path)
        layout = signal_layout(model, signals.x)
        x = layout.apply(signals.x)
        description += f" ({signals.sample_rate} Hz, {signals.x.shape[1]} samples, as {layout})"
        out = Inputs(x, list(signals.names), kind, description)
    else:
        x = load_array(path)
        out = Inputs(x.float(), [f"{i}" for i in range(x.shape[0])], kind, description)
    if config.max_inputs:
        out.x, out.names = out.x[: config.max_inputs], out.names[: config.max_inputs]
    check_inputs(model, out.x, input_shape=loaded.input_shape)
    return out


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
    inputs = load_inputs(loaded, config, log)
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
