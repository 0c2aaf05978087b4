"""One module per figure or table of the paper. Each defines a ``Config`` dataclass (every
parameter, the seed and the device) and ``run(config, progress) -> dict``, a JSON-ready
result that carries its configuration. Rendering lives in :mod:`cnninv.report`.

The registry (:data:`REGISTRY`) names them for ``cnninv list`` and ``cnninv reproduce``.
"""

from cnninv.experiments.registry import REGISTRY, Experiment, get, make_config, run_experiment

__all__ = ["REGISTRY", "Experiment", "get", "make_config", "run_experiment"]
