r"""Algorithm 2 of Gilbert et al. (2017), §4.4: sparse hidden activation recovery.

An :math:`\ell_1`-regularised least-squares fit of the activation, max pooling with
switches to pick one entry per pooling region and channel, and the same fit restricted to
that support.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnninv._checks import check_number
from cnninv.operators import LinearOperator
from cnninv.recovery._common import check_code, check_criterion, check_lipschitz, check_signal
from cnninv.recovery.l1 import L1Result, fista
from cnninv.sparsity import Pool, check_k, check_variant, model_sparse

__all__ = ["Algorithm2Result", "algorithm2"]


@dataclass
class Algorithm2Result:
    """Output of :func:`algorithm2`.

    z : the final code (step 3), model-sparse: supported in ``mask``
    z_init : the unconstrained Lasso solution (step 1)
    z_model : max pooling and unpooling of ``z_init`` with its switches (step 2)
    mask : :math:`\\mathrm{supp}(z^{\\text{model}})`, the support allowed in step 3
    switches : the pooling switches of step 2
    x_hat : :math:`\\mathbf W^T z`
    init, restricted : the solver results of steps 1 and 3
    """

    z: torch.Tensor
    z_init: torch.Tensor
    z_model: torch.Tensor
    mask: torch.Tensor
    switches: torch.Tensor
    x_hat: torch.Tensor
    init: L1Result
    restricted: L1Result


def algorithm2(
    W: LinearOperator,
    x: torch.Tensor,
    lam: float,
    pool: Pool = None,
    *,
    k: int | None = None,
    variant: str = "abs",
    nonneg: bool = False,
    max_iter: int = 1000,
    tol: float = 1e-6,
    criterion: str = "gap",
    restart: bool = True,
    lipschitz: float | None = None,
    z_true: torch.Tensor | None = None,
    z0: torch.Tensor | None = None,
) -> Algorithm2Result:
    r"""Algorithm 2 of Gilbert et al. (2017), §4.4: sparse hidden activation recovery.

    1. :math:`z^{\text{init}} = \arg\min_z \|x - \mathbf W^Tz\|_2^2 + \lambda\|z\|_1`;
    2. :math:`z^{\text{model}} = \text{unpool}(\text{maxpool}(z^{\text{init}}), s)` with the
       switches :math:`s` of :math:`z^{\text{init}}`: one entry per pooling region and
       channel (``model_sparse(z_init, k, pool, variant=variant)``; ``k=None`` keeps
       every block, as in the paper, an integer keeps only the ``k`` largest);
    3. :math:`z = \arg\min_z \|x - \mathbf W^Tz\|_2^2 + \lambda\|z\|_1` s.t. :math:`z_i = 0`
       where :math:`z^{\text{model}}_i = 0`, warm-started from :math:`z^{\text{model}}`.

    Both problems are solved by :func:`fista` (same ``lam``, ``tol``, ``criterion``,
    ``max_iter``, ``restart``, ``nonneg``; one Lipschitz estimate for both). ``z0``
    warm-starts step 1 (e.g. from the solution at a larger λ, along a λ path); the problems
    and so the result, to the solver's tolerance, are the same. The result is
    model-sparse: at most one non-zero per pooling region per channel (and at most ``k``
    non-zeros when ``k`` is given). With ``variant="relu"`` the support is chosen among the
    positive entries; give ``nonneg=True`` as well to keep the code non-negative in step 3.

    >>> import torch
    >>> from cnninv.operators import ConvOperator
    >>> W = ConvOperator.gaussian(K=8, M=4, ell=3, input_size=(10, 10), seed=0,
    ...                           dtype=torch.float64)
    >>> x = torch.randn(2, 4, 10, 10, generator=torch.Generator().manual_seed(0),
    ...                 dtype=torch.float64)
    >>> res = algorithm2(W, x, lam=1.0, pool=2)
    >>> res.z.shape, bool((res.z[~res.mask] == 0).all())
    (torch.Size([2, 8, 8, 8]), True)
    """
    xb, unbatched = check_signal(W, x)
    lam = check_number(lam, "lam", minimum=0.0)
    k = check_k(k, W.out_shape, pool)
    check_variant(variant)
    check_criterion(criterion, tol, lam)
    lipschitz, source = check_lipschitz(W, lipschitz)
    opts = dict(
        nonneg=nonneg,
        max_iter=max_iter,
        tol=tol,
        criterion=criterion,
        restart=restart,
        lipschitz=lipschitz,
        z_true=check_code(W, z_true, "z_true", xb.shape[0]),
    )
    init = fista(W, xb, lam, z0=check_code(W, z0, "z0", xb.shape[0]), **opts)
    proj = model_sparse(init.z, k, pool, variant=variant)
    mask = proj.code != 0
    restricted = fista(W, xb, lam, mask=mask, z0=proj.code, **opts)
    init.lipschitz_source = restricted.lipschitz_source = source  # one L for both
    out = (restricted.z, init.z, proj.code, mask, proj.switches, restricted.x_hat)
    if unbatched:
        out = tuple(o[0] for o in out)
    return Algorithm2Result(*out, init=init, restricted=restricted)
