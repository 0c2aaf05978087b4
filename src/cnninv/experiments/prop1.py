r"""Proposition 1 (§3.1): with an orthonormal :math:`\mathbf W` and
:math:`\Psi=[\mathbf W^T, -\mathbf W^T]`, the CReLU layer
:math:`h=\mathrm{ReLU}(\Psi^T x)=[\mathrm{ReLU}(\mathbf Wx), \mathrm{ReLU}(-\mathbf Wx)]`
reconstructs exactly: :math:`\Psi h = \mathbf W^T(h_+-h_-) = x`.

Checked on (a) a Haar-random orthonormal basis of :math:`\mathbb R^{MD}` and (b) an
orthonormal *convolution* (``ConvOperator.orthonormal``: :math:`K=M\ell` filters, stride
:math:`\ell`). Controls show what each assumption buys: plain ReLU without the negative
pair, and CReLU with a Gaussian (not orthonormal) conv layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from cnninv._checks import check_memory, make_generator, resolve_device
from cnninv.experiments._common import check_config, environment, torch_dtype
from cnninv.metrics import relative_error
from cnninv.operators import ConvOperator, MatrixOperator
from cnninv.sparsity import crelu

__all__ = ["Config", "run"]


@dataclass
class Config:
    samples: int = 256
    M: int = 8
    D: int = 32
    ell: int = 4
    dtype: str = "float64"
    seed: int = 0
    device: str = "cpu"
    quick: bool = False

    def __post_init__(self) -> None:
        check_config(self, ("samples", "M", "D", "ell"))
        torch_dtype(self.dtype)
        if self.D % self.ell:
            raise ValueError(f"D={self.D} must be a multiple of ell={self.ell}")
        n = self.M * self.D
        width = torch_dtype(self.dtype).itemsize
        check_memory(
            (n * n * 3 + self.samples * n * 12) * width,
            f"prop1 with M={self.M}, D={self.D}, samples={self.samples}",
        )


def _crelu_reconstruct(W, x: torch.Tensor) -> torch.Tensor:
    h = crelu(W(x), dim=1)  # ReLU(Psi^T x) = [ReLU(Wx), ReLU(-Wx)]
    h_pos, h_neg = h.chunk(2, dim=1)
    return W.T(h_pos - h_neg)  # Psi h = W^T h+ - W^T h-


def run(config: Config, progress: bool = False) -> dict:
    started = time.perf_counter()
    device = resolve_device(config.device)
    dtype = torch_dtype(config.dtype)
    gen = make_generator(config.seed, None, device)
    n = config.M * config.D
    a = torch.randn((n, n), generator=gen, dtype=dtype, device=device)
    q, r = torch.linalg.qr(a)
    dense = MatrixOperator(q * torch.sign(torch.diagonal(r)))
    conv = ConvOperator.orthonormal(
        config.M, config.ell, config.D, seed=config.seed + 1, dtype=dtype, device=device
    )
    gauss = ConvOperator.gaussian(
        config.M * config.ell,
        config.M,
        config.ell,
        config.D,
        stride=config.ell,
        seed=config.seed + 2,
        dtype=dtype,
        device=device,
    )
    x = torch.randn((config.samples, config.M, config.D), generator=gen, dtype=dtype, device=device)
    err_dense = relative_error(_crelu_reconstruct(dense, x.flatten(1)), x.flatten(1))
    err_conv = relative_error(_crelu_reconstruct(conv, x), x)
    err_relu_only = relative_error(conv.T(torch.relu(conv(x))), x)
    err_gauss = relative_error(_crelu_reconstruct(gauss, x), x)
    return {
        "experiment": "prop1",
        "max_relative_error": float(torch.maximum(err_dense.max(), err_conv.max())),
        "max_relative_error_dense_basis": float(err_dense.max()),
        "max_relative_error_orthonormal_conv": float(err_conv.max()),
        "control_relu_without_negative_pair": float(err_relu_only.mean()),
        "control_crelu_gaussian_conv": float(err_gauss.mean()),
        "machine_epsilon": float(torch.finfo(dtype).eps),
        "paper": {"max_relative_error": 0.0, "note": "exact reconstruction (Proposition 1)"},
        **environment(config, started),
    }
