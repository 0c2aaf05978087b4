"""cnninv: the invertibility of convolutional neural networks (Gilbert et al., 2017).

A conv layer is a structured matrix ``W`` (:mod:`cnninv.operators`), max pooling is the
model-sparse projection ``M(h, k)`` (:mod:`cnninv.sparsity`), and one feed-forward layer is
one iteration of model-based IHT (:mod:`cnninv.recovery`); :mod:`cnninv.theory` holds the
paper's theorems and the empirical quantities that check them.
"""

from cnninv._version import __version__

__all__ = ["__version__", "analyze_model"]


def __getattr__(name: str):
    # the analysis pulls in torch and every room below it: imported on first use only
    if name == "analyze_model":
        from cnninv.analysis.model import analyze_model

        return analyze_model
    raise AttributeError(f"module 'cnninv' has no attribute {name!r}")
