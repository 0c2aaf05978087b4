r"""Linear operators: a conv layer :math:`\mathbf W` (:class:`ConvOperator`), a dense matrix
(:class:`MatrixOperator`), and the algebra that combines them (:class:`LinearOperator`:
``W.T``, ``W2 @ W1``, ``A + B``, ``c * A``, ``dense()``, ``norm_sq()``, :func:`dottest`).

* :mod:`cnninv.operators.base` — :class:`LinearOperator` and the composite operators;
* :mod:`cnninv.operators.functional` — the stateless convolution kernels;
* :mod:`cnninv.operators.conv` — :class:`ConvOperator`;
* :mod:`cnninv.operators.matrix` — :class:`MatrixOperator`.
"""

from cnninv.operators import functional
from cnninv.operators.base import (
    AdjointOperator,
    LinearOperator,
    ProductOperator,
    ScaledOperator,
    SumOperator,
    dottest,
)
from cnninv.operators.conv import ConvOperator
from cnninv.operators.matrix import MatrixOperator

__all__ = [
    "AdjointOperator",
    "ConvOperator",
    "LinearOperator",
    "MatrixOperator",
    "ProductOperator",
    "ScaledOperator",
    "SumOperator",
    "dottest",
    "functional",
]
