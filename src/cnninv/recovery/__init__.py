r"""Recovery algorithms: model-based Iterative Hard Thresholding (Algorithm 1), and
l1-regularised least squares with the support fixed by max pooling (Algorithm 2).

With :math:`\Phi = \mathbf W^T` (the synthesis matrix, :math:`x = \mathbf W^T z`),
Algorithm 1 of Gilbert et al. (2017) is

.. math::

    \hat z_0 = 0,\quad d = x;\qquad
    b \leftarrow \hat z_{i-1} + \mu\,\mathbf W d,\quad
    \hat z_i \leftarrow \mathbb M(b, k),\quad
    d \leftarrow x - \mathbf W^T \hat z_i .

From :math:`\hat z_0 = 0` with :math:`\mu = 1`, one iteration is exactly a feed-forward
layer: convolution, max pooling, unpooling with the switches; and
:math:`\hat x = \mathbf W^T\hat z_1` is the reconstruction of Theorem 3.3. More
iterations are the "recurrent" inversion of the paper's footnote 4.

>>> import torch
>>> from cnninv.operators import ConvOperator
>>> from cnninv.theory import sample_model_sparse
>>> W = ConvOperator.gaussian(K=96, M=32, ell=5, input_size=32, seed=0)
>>> z = sample_model_sparse(4, W.out_shape, k=10, seed=1)
>>> res = iht(W, W.T(z), k=10, max_iter=20, z_true=z)
>>> res.stop_reason, res.n_iter < 20       # the code stopped changing before 20
('converged', True)
>>> err = res.history_array("code_error")  # (iterations, samples)
>>> [round(float(e), 2) for e in err[0]]   # one iteration, the CNN layer: approximate
[0.44, 0.21, 0.27, 0.14]
>>> bool(err[-1].max() < 1e-4), bool((res.history_array("support_recovery")[-1] == 1).all())
(True, True)

Algorithm 2 (§4.4, "sparse hidden activation recovery") finds a model-sparse code for a
real activation ``x`` that need not be exactly :math:`\mathbf W^T z`: an
:math:`\ell_1`-regularised least-squares fit :math:`\min_z \|x-\mathbf W^Tz\|_2^2 +
\lambda\|z\|_1` (:func:`fista`, certified by the duality gap of :func:`lasso_gap`), max
pooling with switches to pick one entry per pooling region and channel, and the same fit
restricted to that support (:func:`algorithm2`).

Every solver takes any :class:`~cnninv.operators.LinearOperator` ``W``: a conv layer, its
dense matrix ``MatrixOperator(W.dense(), W.in_shape, W.out_shape)`` (an oracle that gives
the same results to rounding), a product of layers.

* :mod:`cnninv.recovery.iht` — :func:`iht`;
* :mod:`cnninv.recovery.l1` — :func:`fista`, :func:`lam_max`, :func:`lasso_gap`,
  :func:`lasso_objective`;
* :mod:`cnninv.recovery.algorithm2` — :func:`algorithm2`.
"""

from cnninv.recovery.algorithm2 import Algorithm2Result, algorithm2
from cnninv.recovery.iht import IHTResult, IHTStat, iht
from cnninv.recovery.l1 import (
    DualityGap,
    L1Result,
    L1Stat,
    fista,
    lam_max,
    lasso_gap,
    lasso_objective,
)

__all__ = [
    "Algorithm2Result",
    "DualityGap",
    "IHTResult",
    "IHTStat",
    "L1Result",
    "L1Stat",
    "algorithm2",
    "fista",
    "iht",
    "lam_max",
    "lasso_gap",
    "lasso_objective",
]
