r"""A dense matrix as a linear operator: baselines, and small oracles for the structured
operators.

With per-sample shapes, the dense matrix of any operator is a drop-in replacement for it,
``MatrixOperator(W.dense(), W.in_shape, W.out_shape)``, so solvers and theory can be run on
both and compared.

>>> import torch
>>> from cnninv.operators import ConvOperator
>>> W = ConvOperator.gaussian(K=4, M=2, ell=3, input_size=8, seed=0, dtype=torch.float64)
>>> D = MatrixOperator(W.dense(), W.in_shape, W.out_shape)
>>> D.in_shape, D.out_shape, D.shape
((2, 8), (4, 6), (24, 16))
>>> x = torch.randn(3, 2, 8, dtype=torch.float64)
>>> torch.allclose(D(x), W(x))
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from cnninv._checks import check_finite, check_positive_int, is_int
from cnninv.operators.base import LinearOperator

__all__ = ["MatrixOperator"]


def _sample_shape(shape: object, size: int, name: str) -> tuple[int, ...]:
    if shape is None:
        return (size,)
    if (
        not isinstance(shape, Sequence)
        or isinstance(shape, str)
        or len(shape) == 0
        or not all(is_int(s) and s >= 1 for s in shape)
    ):
        raise ValueError(f"{name} must be a non-empty tuple of positive integers, got {shape!r}")
    shape = tuple(int(s) for s in shape)
    if math.prod(shape) != size:
        raise ValueError(f"{name} {shape} has {math.prod(shape)} entries, the matrix {size}")
    return shape


class MatrixOperator(LinearOperator):
    """A dense matrix ``(rows, cols)`` with the operator interface.

    ``in_shape`` (default ``(cols,)``) and ``out_shape`` (default ``(rows,)``) are the
    per-sample shapes; their sizes must be ``cols`` and ``rows``. A sample is flattened
    row-major before the product, and the result reshaped to ``out_shape``.
    """

    _main_buffer = "matrix"

    def __init__(
        self,
        matrix: torch.Tensor,
        in_shape: Sequence[int] | None = None,
        out_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(matrix, torch.Tensor) or matrix.dim() != 2:
            what = tuple(matrix.shape) if isinstance(matrix, torch.Tensor) else type(matrix)
            raise ValueError(f"matrix must be a 2-d tensor, got {what}")
        if not matrix.is_floating_point():
            raise ValueError(f"matrix must be a floating-point tensor, got dtype {matrix.dtype}")
        if matrix.numel() == 0:
            raise ValueError(f"matrix must not be empty, got shape {tuple(matrix.shape)}")
        check_finite(matrix, "matrix")
        self.in_shape = _sample_shape(in_shape, matrix.shape[1], "in_shape")
        self.out_shape = _sample_shape(out_shape, matrix.shape[0], "out_shape")
        self.register_buffer("matrix", matrix.detach().clone())

    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        y = x.reshape(x.shape[0], self.matrix.shape[1]) @ self.matrix.T
        return y.view(x.shape[0], *self.out_shape)

    def _rmatvec(self, z: torch.Tensor) -> torch.Tensor:
        y = z.reshape(z.shape[0], self.matrix.shape[0]) @ self.matrix
        return y.view(z.shape[0], *self.in_shape)

    def dense(self, max_entries: int = 50_000_000) -> torch.Tensor:
        """A copy of the matrix (it exists already: ``max_entries`` is only checked)."""
        check_positive_int(max_entries, "max_entries")
        return self.matrix.clone()
