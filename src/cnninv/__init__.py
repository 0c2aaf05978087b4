"""cnninv: the invertibility of convolutional neural networks (Gilbert et al., 2017).

A conv layer is a structured matrix ``W`` (:mod:`cnninv.operators`), max pooling is the
model-sparse projection ``M(h, k)`` (:mod:`cnninv.sparsity`), and one feed-forward layer is
one iteration of model-based IHT (:mod:`cnninv.recovery`); :mod:`cnninv.theory` holds the
paper's theorems and the empirical quantities that check them.
"""

from cnninv._version import __version__

__all__ = ["__version__"]
