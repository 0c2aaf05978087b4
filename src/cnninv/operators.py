r"""A convolutional layer as a linear operator :math:`\mathbf W` and its adjoint.

Gilbert et al. (2017), §2.2: an input :math:`x \in \mathbb R^{MD}` has :math:`M`
channels of length :math:`D`; a filter bank holds :math:`K` filters
:math:`w_{i,m}` of length :math:`\ell` per channel; with stride :math:`t` there
are :math:`n = (D-\ell)/t + 1` shifts, and the layer is the :math:`Kn \times MD`
matrix :math:`\mathbf W` whose rows are the shifted filters. In 2-d the filters
are :math:`\ell\times\ell` and the maps :math:`D\times D` (or any rectangle).

``W(x)`` is the convolution (cross-correlation, as every CNN computes it),
``W.T(z)`` the transposed convolution, which is the exact adjoint
:math:`\langle \mathbf W x, z\rangle = \langle x, \mathbf W^T z\rangle`, stride and
padding included. Both take a batch: ``x`` of shape ``(..., M, *input_size)``,
``z`` of shape ``(..., K, *output_size)``.

>>> import torch
>>> W = ConvOperator.gaussian(K=96, M=32, ell=5, input_size=32, seed=0)
>>> W.shape                      # (K n, M D) with n = 28
(2688, 1024)
>>> x = torch.randn(4, 32, 32)
>>> W(x).shape, W.T(W(x)).shape
(torch.Size([4, 96, 28]), torch.Size([4, 32, 32]))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cnninv._checks import check_finite, make_generator

__all__ = ["Adjoint", "ConvOperator", "MatrixOperator", "dottest"]

_CONV = {1: F.conv1d, 2: F.conv2d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d}


def _use_channels_last(t: torch.Tensor) -> bool:
    """Whether the conv operators compute channels-last: on the CPU, for floating tensors.

    Measured by ``benchmarks/bench_fastpaths.py`` (figures in BENCHMARKS.md): on the CPU,
    oneDNN's channels-last convolutions (a 1-d one as a 2-d convolution over a dummy height)
    are as fast as or faster than the NCHW/NCW ones at the benchmarked sizes, and max
    pooling, the core of the model-sparse projection, is several times faster on a
    channels-last code. Elsewhere (CUDA) nothing was measured, so the default layout is kept.
    """
    return t.device.type == "cpu" and t.is_floating_point()


def _to_channels_last(t: torch.Tensor) -> torch.Tensor:
    """``t`` (4-d) in channels-last memory format; no copy when it already is."""
    return t.contiguous(memory_format=torch.channels_last)


def _compute_layout(t: torch.Tensor) -> torch.Tensor:
    """A batched signal or code ``(B, C, *spatial)`` in the layout :meth:`ConvOperator.matvec`
    and :meth:`~ConvOperator.rmatvec` compute and return in (channels-last on the CPU, as is
    elsewhere); same values. Solvers convert their state once with it, since an element-wise
    operation returns the layout of its first operand and a mixed layout costs a copy at
    every product."""
    if t.device.type != "cpu" or t.dim() not in (3, 4):
        return t
    if t.dim() == 3:
        return _to_channels_last(t.unsqueeze(2)).squeeze(2)
    return _to_channels_last(t)


def _as_tuple(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        out = (value,) * ndim
    else:
        out = tuple(int(v) for v in value)
    if len(out) != ndim:
        raise ValueError(f"{name} must have {ndim} entries for a {ndim}-d layer, got {value!r}")
    return out


class ConvOperator(torch.nn.Module):
    r"""The conv layer :math:`\mathbf W \in \mathbb R^{Kn\times MD}` (1-d or 2-d).

    Parameters
    ----------
    weight : Tensor
        Filter bank of shape ``(K, M, ell)`` (1-d) or ``(K, M, ell_h, ell_w)`` (2-d),
        as in ``torch.nn.Conv1d/Conv2d.weight``.
    input_size : int or tuple
        :math:`D` (or ``(H, W)``): the matrix depends on it, so it is part of the operator.
    stride : int or tuple
        The stride :math:`t`.
    padding : ``"valid"`` or int or tuple
        ``"valid"`` is the paper's setting, :math:`n = (D-\ell)/t + 1`, which must be an
        integer; an explicit zero-padding ``p`` gives :math:`n = \lfloor (D+2p-\ell)/t\rfloor+1`.

    Raises
    ------
    ValueError
        If a size does not fit: a filter longer than the padded input, a stride that leaves
        :math:`n` fractional under ``"valid"``, non-positive sizes.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        input_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: str | int | Sequence[int] = "valid",
    ) -> None:
        super().__init__()
        if not isinstance(weight, torch.Tensor) or weight.dim() not in (3, 4):
            shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight)
            raise ValueError(
                f"weight must be a tensor of shape (K, M, ell) or (K, M, ell, ell), got {shape}"
            )
        check_finite(weight, "weight")
        ndim = weight.dim() - 2
        self.ndim = ndim
        self.input_size = _as_tuple(input_size, ndim, "input_size")
        self.stride = _as_tuple(stride, ndim, "stride")
        kernel = tuple(weight.shape[2:])
        if any(d <= 0 for d in self.input_size):
            raise ValueError(f"input_size must be positive, got {self.input_size}")
        if any(t <= 0 for t in self.stride):
            raise ValueError(f"stride must be positive, got {self.stride}")
        if padding == "valid":
            self.padding = (0,) * ndim
            for d, ell, t in zip(self.input_size, kernel, self.stride, strict=True):
                if d < ell:
                    raise ValueError(f"input_size {d} is smaller than the filter length {ell}")
                if (d - ell) % t:
                    raise ValueError(
                        f"stride={t} does not give an integer n = (D - ell)/t + 1 under 'valid' "
                        f"padding (D={d}, ell={ell}); choose D - ell divisible by the stride "
                        "or give an explicit padding"
                    )
        elif isinstance(padding, str):
            raise ValueError(f"padding must be 'valid' or an integer, got {padding!r}")
        else:
            self.padding = _as_tuple(padding, ndim, "padding")
            if any(p < 0 for p in self.padding):
                raise ValueError(f"padding must be non-negative, got {self.padding}")
            for d, ell, p in zip(self.input_size, kernel, self.padding, strict=True):
                if d + 2 * p < ell:
                    raise ValueError(
                        f"input_size {d} with padding {p} is shorter than filter {ell}"
                    )
        self.output_size = tuple(
            (d + 2 * p - ell) // t + 1
            for d, ell, p, t in zip(self.input_size, kernel, self.padding, self.stride, strict=True)
        )
        # conv_transpose needs output_padding to land exactly on input_size
        self._output_padding = tuple(
            d - ((n - 1) * t - 2 * p + ell)
            for d, n, t, p, ell in zip(
                self.input_size, self.output_size, self.stride, self.padding, kernel, strict=True
            )
        )
        self.register_buffer("weight", weight.detach().clone())

    # ------------------------------------------------------------------ constructors
    @classmethod
    def gaussian(
        cls,
        K: int,
        M: int,
        ell: int | Sequence[int],
        input_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: str | int | Sequence[int] = "valid",
        *,
        ndim: int | None = None,
        unit_norm_rows: bool = False,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> ConvOperator:
        r"""Gaussian random filters, Theorem 3.1's :math:`\mathbf W`.

        Entries i.i.d. :math:`N(0,1)` scaled by :math:`1/\sqrt{M\ell}` in 1-d and
        :math:`1/\sqrt{M\ell^2}` in 2-d, so that :math:`\mathbb E\,\mathbf W\mathbf W^T = I`
        (Lemma A.1). With ``unit_norm_rows`` every filter (and so, under ``'valid'``
        padding, every row of :math:`\mathbf W`) is normalised to unit :math:`\ell_2` norm.
        The dimension is taken from ``ndim``, else from ``ell`` or ``input_size`` when one
        is a tuple, else 1.
        """
        for name, v in (("K", K), ("M", M)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if ndim is None:
            ndim = next(
                (len(v) for v in (ell, input_size) if not isinstance(v, int)),
                1,
            )
        kernel = _as_tuple(ell, ndim, "ell")
        if any(e < 1 for e in kernel):
            raise ValueError(f"ell must be positive, got {ell!r}")
        gen = make_generator(seed, generator, device)
        w = torch.randn((K, M, *kernel), generator=gen, dtype=dtype, device=device)
        w = w / math.sqrt(M * math.prod(kernel))
        if unit_norm_rows:
            w = w / w.flatten(1).norm(dim=1).view(K, *([1] * (ndim + 1)))
        return cls(w, input_size, stride, padding)

    @classmethod
    def from_conv(
        cls,
        conv: torch.nn.Conv1d | torch.nn.Conv2d,
        input_size: int | Sequence[int],
    ) -> ConvOperator:
        """:math:`\\mathbf W` of a ``torch.nn.Conv1d/Conv2d`` (its weight, stride and padding;
        the bias is an offset, not part of the linear operator, and is left out)."""
        if not isinstance(conv, torch.nn.Conv1d | torch.nn.Conv2d):
            raise ValueError(f"conv must be torch.nn.Conv1d or Conv2d, got {type(conv).__name__}")
        if conv.groups != 1 or any(d != 1 for d in conv.dilation):
            raise ValueError("only groups=1 and dilation=1 convolutions are supported")
        if conv.padding_mode != "zeros":
            raise ValueError(f"padding_mode {conv.padding_mode!r} is not supported, only 'zeros'")
        padding = conv.padding
        if padding == "same":
            raise ValueError("padding='same' is not supported: give the explicit padding")
        if padding == "valid":
            padding = 0
        return cls(conv.weight, input_size, conv.stride, padding)

    @classmethod
    def orthonormal(
        cls,
        M: int,
        ell: int,
        input_size: int,
        *,
        seed: int | None = None,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
    ) -> ConvOperator:
        r"""A conv layer that is an orthonormal basis of :math:`\mathbb R^{MD}`.

        :math:`K = M\ell` filters forming an orthonormal basis of :math:`\mathbb R^{M\ell}`,
        with stride :math:`t=\ell` (non-overlapping shifts): :math:`\mathbf W` is then
        block-diagonal with one orthogonal block per shift, so :math:`\mathbf W^T\mathbf W=I`.
        This is the setting of Proposition 1 realised by a genuine convolution.
        """
        if input_size % ell:
            raise ValueError(f"input_size={input_size} must be a multiple of ell={ell}")
        gen = make_generator(seed, None, device)
        a = torch.randn((M * ell, M * ell), generator=gen, dtype=dtype, device=device)
        q, r = torch.linalg.qr(a)
        q = q * torch.sign(torch.diagonal(r))  # Haar-distributed
        return cls(q.reshape(M * ell, M, ell), input_size, stride=ell, padding=0)

    # ------------------------------------------------------------------ sizes
    @property
    def K(self) -> int:
        return self.weight.shape[0]

    @property
    def M(self) -> int:
        return self.weight.shape[1]

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return tuple(self.weight.shape[2:])

    @property
    def in_shape(self) -> tuple[int, ...]:
        """Shape of one input ``x``: ``(M, *input_size)``."""
        return (self.M, *self.input_size)

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Shape of one code ``z = W x``: ``(K, *output_size)``."""
        return (self.K, *self.output_size)

    @property
    def shape(self) -> tuple[int, int]:
        """The matrix shape :math:`(Kn, MD)`."""
        return (math.prod(self.out_shape), math.prod(self.in_shape))

    @property
    def T(self) -> Adjoint:
        r""":math:`\mathbf W^T`, the transposed convolution (lazy)."""
        return Adjoint(self)

    def extra_repr(self) -> str:
        return (
            f"K={self.K}, M={self.M}, kernel={self.kernel_size}, input_size={self.input_size}, "
            f"stride={self.stride}, padding={self.padding}, output_size={self.output_size}"
        )

    # ------------------------------------------------------------------ application
    def _batch(self, t: torch.Tensor, core: tuple[int, ...], name: str) -> tuple[torch.Tensor, ...]:
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < len(core) or tuple(t.shape[-len(core) :]) != core:
            raise ValueError(
                f"Dimension mismatch: {name} must have shape (..., {', '.join(map(str, core))}), "
                f"got {tuple(t.shape)}"
            )
        lead = tuple(t.shape[: -len(core)])
        return t.reshape(-1, *core), lead

    def _weight_cl(self) -> torch.Tensor:
        """The filter bank as a 4-d channels-last tensor (1-d: ``(K, M, 1, ell)``), cached.

        The cache holds the very ``weight`` tensor it was made from and its version
        counter, so ``.to()``, ``load_state_dict`` or an in-place change of ``weight``
        rebuild it instead of leaving a stale copy. (A weight made under
        ``torch.inference_mode`` has no version counter; it cannot be changed in place
        outside that mode, and changing it in place inside it is not detected.)"""
        w = self.weight
        version = None if w.is_inference() else w._version
        cache = self.__dict__.get("_cl_cache")
        if cache is None or cache[0] is not w or cache[1] != version:
            w4 = w.unsqueeze(2) if self.ndim == 1 else w
            cache = (w, version, w4.contiguous(memory_format=torch.channels_last))
            self.__dict__["_cl_cache"] = cache
        return cache[2]

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\mathbf W x` without input checks (for inner loops). ``x``: ``(B, M, ...)``.

        On the CPU the product is computed channels-last (see :func:`_use_channels_last`) and
        returned in that layout: same shape and values, other strides."""
        if _use_channels_last(x):
            if self.ndim == 1:
                return F.conv2d(
                    _to_channels_last(x.unsqueeze(2)),
                    self._weight_cl(),
                    stride=(1, *self.stride),
                    padding=(0, *self.padding),
                ).squeeze(2)
            return F.conv2d(
                _to_channels_last(x), self._weight_cl(), stride=self.stride, padding=self.padding
            )
        return _CONV[self.ndim](x, self.weight, stride=self.stride, padding=self.padding)

    def rmatvec(self, z: torch.Tensor) -> torch.Tensor:
        """:math:`\\mathbf W^T z` without input checks. ``z``: ``(B, K, ...)``; channels-last
        on the CPU, as :meth:`matvec`."""
        if _use_channels_last(z):
            if self.ndim == 1:
                return F.conv_transpose2d(
                    _to_channels_last(z.unsqueeze(2)),
                    self._weight_cl(),
                    stride=(1, *self.stride),
                    padding=(0, *self.padding),
                    output_padding=(0, *self._output_padding),
                ).squeeze(2)
            return F.conv_transpose2d(
                _to_channels_last(z),
                self._weight_cl(),
                stride=self.stride,
                padding=self.padding,
                output_padding=self._output_padding,
            )
        return _CONV_T[self.ndim](
            z,
            self.weight,
            stride=self.stride,
            padding=self.padding,
            output_padding=self._output_padding,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`h = \\mathbf W x` for ``x`` of shape ``(..., M, *input_size)``."""
        xb, lead = self._batch(x, self.in_shape, "x")
        check_finite(xb, "x")
        return self.matvec(xb.to(self.weight.dtype)).reshape(*lead, *self.out_shape)

    def adjoint(self, z: torch.Tensor) -> torch.Tensor:
        """:math:`\\mathbf W^T z` for ``z`` of shape ``(..., K, *output_size)``."""
        zb, lead = self._batch(z, self.out_shape, "z")
        check_finite(zb, "z")
        return self.rmatvec(zb.to(self.weight.dtype)).reshape(*lead, *self.in_shape)

    # ------------------------------------------------------------------ matrices and norms
    def dense(self, max_entries: int = 50_000_000) -> torch.Tensor:
        """The :math:`Kn \\times MD` matrix (channel-major flattening of ``x`` and ``z``).

        Refuses sizes above ``max_entries`` entries: at VGG sizes it would take tens of GB.
        """
        rows, cols = self.shape
        if rows * cols > max_entries:
            raise ValueError(
                f"dense() would materialise a {rows}x{cols} matrix ({rows * cols} entries) "
                f"> max_entries={max_entries}; use the operator instead"
            )
        eye = torch.eye(cols, dtype=self.weight.dtype, device=self.weight.device)
        return self.matvec(eye.reshape(cols, *self.in_shape)).reshape(cols, rows).T.contiguous()

    def normalized(self) -> ConvOperator:
        """The same layer with every filter scaled to unit :math:`\\ell_2` norm."""
        norms = self.weight.flatten(1).norm(dim=1)
        if bool((norms == 0).any()):
            raise ValueError("cannot normalise a filter bank that contains an all-zero filter")
        w = self.weight / norms.view(-1, *([1] * (self.ndim + 1)))
        return ConvOperator(w, self.input_size, self.stride, self.padding)

    unit_norm_filters = normalized  # TEMPORARY: the core branch renames normalized()

    def norm_sq(self, n_iter: int = 50, tol: float = 1e-6, seed: int | None = 0) -> float:
        r""":math:`\|\mathbf W\|_2^2` by the power method on :math:`\mathbf W^T\mathbf W`."""
        gen = make_generator(seed, None, self.weight.device)
        v = torch.randn(
            (1, *self.in_shape), generator=gen, dtype=self.weight.dtype, device=self.weight.device
        )
        v = v / v.norm()
        value = 0.0
        for _ in range(n_iter):
            u = self.rmatvec(self.matvec(v))
            new = float(u.norm())
            if new == 0.0:
                return 0.0
            v = u / new
            if abs(new - value) <= tol * new:
                value = new
                break
            value = new
        return value


class Adjoint:
    """The adjoint of an operator: ``A.T(z)`` calls ``A.adjoint(z)``; ``A.T.T`` is ``A``."""

    def __init__(self, op: ConvOperator | MatrixOperator) -> None:
        self.op = op

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.op.adjoint(z)

    @property
    def T(self) -> ConvOperator | MatrixOperator:
        return self.op

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.op.shape
        return (cols, rows)

    def dense(self, max_entries: int = 50_000_000) -> torch.Tensor:
        return self.op.dense(max_entries).T

    def __repr__(self) -> str:
        return f"Adjoint({self.op!r})"


class MatrixOperator(torch.nn.Module):
    """A dense matrix with the operator interface (for baselines and small oracles).

    ``x`` has shape ``(..., cols)`` and ``A(x)`` shape ``(..., rows)``.
    """

    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__()
        if not isinstance(matrix, torch.Tensor) or matrix.dim() != 2:
            raise ValueError("matrix must be a 2-d tensor")
        check_finite(matrix, "matrix")
        self.register_buffer("matrix", matrix.detach().clone())
        self.in_shape = (matrix.shape[1],)
        self.out_shape = (matrix.shape[0],)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.matrix.shape)

    @property
    def T(self) -> Adjoint:
        return Adjoint(self)

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.matrix.T

    def rmatvec(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.matrix

    def _check(self, t: torch.Tensor, n: int, name: str) -> None:
        if t.shape[-1] != n:
            raise ValueError(f"Dimension mismatch: {name} must end in {n}, got {tuple(t.shape)}")
        check_finite(t, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.in_shape[0], "x")
        return self.matvec(x.to(self.matrix.dtype))

    def adjoint(self, z: torch.Tensor) -> torch.Tensor:
        self._check(z, self.out_shape[0], "z")
        return self.rmatvec(z.to(self.matrix.dtype))

    def dense(self, max_entries: int = 50_000_000) -> torch.Tensor:
        return self.matrix.clone()


def dottest(
    op: ConvOperator | MatrixOperator,
    batch: int = 2,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> tuple[float, float]:
    r"""Dot test: return :math:`(\langle \mathbf W u, v\rangle, \langle u, \mathbf W^T v\rangle)`
    for random ``u``, ``v``; they agree to rounding when ``W.T`` is the adjoint of ``W``."""
    device = next(iter(op.buffers())).device
    gen = make_generator(seed, None, device)
    u = torch.randn((batch, *op.in_shape), generator=gen, dtype=dtype, device=device)
    v = torch.randn((batch, *op.out_shape), generator=gen, dtype=dtype, device=device)
    op64 = copy.deepcopy(op).to(dtype)  # never change the caller's operator
    return float((op64(u) * v).sum()), float((u * op64.T(v)).sum())
