r"""A convolutional layer as a linear operator :math:`\mathbf W` and its adjoint.

Gilbert et al. (2017), §2.2: an input :math:`x \in \mathbb R^{MD}` has :math:`M`
channels of length :math:`D`; a filter bank holds :math:`K` filters
:math:`w_{i,m}` of length :math:`\ell` per channel; with stride :math:`t` there
are :math:`n = (D-\ell)/t + 1` shifts, and the layer is the :math:`Kn \times MD`
matrix :math:`\mathbf W` whose rows are the shifted filters. In 2-d the filters
are :math:`\ell\times\ell` and the maps :math:`D\times D` (or any rectangle).

``W(x)`` is the convolution (cross-correlation, as every CNN computes it),
``W.T(z)`` the transposed convolution, which is the exact adjoint
:math:`\langle \mathbf W x, z\rangle = \langle x, \mathbf W^T z\rangle`, stride,
padding, dilation and groups included. Both take a batch: ``x`` of shape
``(..., M, *input_size)``, ``z`` of shape ``(..., K, *output_size)``.

Beyond the paper's layer, ``dilation`` spaces the taps of each filter and ``groups``
splits the channels into independent groups (``groups = M = K`` is a depthwise
convolution): :math:`\mathbf W` is then block-diagonal, one block per group.
``padding_mode="circular"`` pads periodically instead of with zeros, so every row of
:math:`\mathbf W` is a whole (wrapped) filter: a block-circulant matrix.

>>> import torch
>>> W = ConvOperator.gaussian(K=96, M=32, ell=5, input_size=32, seed=0)
>>> W.shape                      # (K n, M D) with n = 28
(2688, 1024)
>>> x = torch.randn(4, 32, 32)
>>> W(x).shape, W.T(W(x)).shape
(torch.Size([4, 96, 28]), torch.Size([4, 32, 32]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from cnninv._checks import (
    allocating,
    check_bool,
    check_finite,
    check_float_dtype,
    check_positive_int,
    int_tuple,
    is_int,
    make_generator,
    resolve_device,
)
from cnninv.operators.base import LANCZOS_STEPS, LinearOperator, NormSqEstimate
from cnninv.operators.functional import (
    _conv,
    _conv_transpose,
    _pad_circular,
    _pad_circular_adjoint,
    channels_last,
)
from cnninv.operators.sparse import SparseCode, SparseKernels

__all__ = ["PADDING_MODES", "ConvOperator", "dft_cost"]

#: Padding modes of :class:`ConvOperator`: zeros (every CNN's default) or circular.
PADDING_MODES = ("zeros", "circular")


def _check_weight(weight: object) -> torch.Tensor:
    if not isinstance(weight, torch.Tensor) or weight.dim() not in (3, 4):
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(
            f"weight must be a tensor of shape (K, M, ell) or (K, M, ell, ell), got {shape}"
        )
    if not weight.is_floating_point():
        raise ValueError(f"weight must be a floating-point tensor, got dtype {weight.dtype}")
    if weight.numel() == 0:
        raise ValueError(f"weight must not be empty, got shape {tuple(weight.shape)}")
    check_finite(weight, "weight")
    return weight


class ConvOperator(LinearOperator):
    r"""The conv layer :math:`\mathbf W \in \mathbb R^{Kn\times MD}` (1-d or 2-d).

    Parameters
    ----------
    weight : Tensor
        Filter bank of shape ``(K, M/groups, ell)`` (1-d) or ``(K, M/groups, ell_h,
        ell_w)`` (2-d), as in ``torch.nn.Conv1d/Conv2d.weight``; floating point. It is
        copied into the buffer ``W.weight``, in the memory layout the convolutions compute
        in (channels-last on the CPU; same shape and values).
    input_size : int or tuple
        :math:`D` (or ``(H, W)``): the matrix depends on it, so it is part of the operator.
    stride : int or tuple
        The stride :math:`t`.
    padding : ``"valid"`` or int or tuple
        ``"valid"`` is the paper's setting, :math:`n = (D-\ell)/t + 1`, which must be an
        integer; an explicit zero-padding ``p`` gives :math:`n = \lfloor (D+2p-\ell)/t\rfloor+1`.
    dilation : int or tuple
        Spacing :math:`a` of the taps: a filter spans :math:`a(\ell-1)+1` inputs, which
        takes the place of :math:`\ell` in the sizes above.
    groups : int
        Channel groups (dividing ``K``; ``M = weight.shape[1] * groups``): filter ``i`` reads
        only the channels of its group, so :math:`\mathbf W` is block-diagonal.
    padding_mode : ``"zeros"`` or ``"circular"``
        What the ``padding`` entries hold: zeros, or the other end of the map (periodic
        boundary, ``padding <= D``; :math:`\mathbf W^T` then folds the borders back, see
        :func:`~cnninv.operators.functional.pad_circular_adjoint`).

    Raises
    ------
    ValueError
        If a size does not fit: a filter longer than the padded input, a stride that leaves
        :math:`n` fractional under ``"valid"``, non-positive or non-integer sizes, a weight
        that is not a finite floating-point tensor.
    """

    _main_buffer = "weight"

    def __init__(
        self,
        weight: torch.Tensor,
        input_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: str | int | Sequence[int] = "valid",
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        _check_weight(weight)
        if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        ndim = weight.dim() - 2
        self.ndim = ndim
        self.groups = check_positive_int(groups, "groups")
        if weight.shape[0] % self.groups:
            raise ValueError(
                f"groups={groups} must divide the number of filters K={weight.shape[0]}"
            )
        self.input_size = int_tuple(input_size, ndim, "input_size")
        self.stride = int_tuple(stride, ndim, "stride")
        self.dilation = int_tuple(dilation, ndim, "dilation")
        kernel = tuple(weight.shape[2:])
        # the inputs one filter spans
        span = tuple(a * (ell - 1) + 1 for a, ell in zip(self.dilation, kernel, strict=True))
        if isinstance(padding, str) and padding == "valid":
            self.padding = (0,) * ndim
            for d, s, t in zip(self.input_size, span, self.stride, strict=True):
                if d < s:
                    raise ValueError(f"input_size {d} is smaller than the filter length {s}")
                if (d - s) % t:
                    raise ValueError(
                        f"stride={t} does not give an integer n = (D - ell)/t + 1 under 'valid' "
                        f"padding (D={d}, ell={s}); choose D - ell divisible by the stride "
                        "or give an explicit padding"
                    )
        elif isinstance(padding, str):
            raise ValueError(
                f"padding must be 'valid' or a non-negative integer (or one per axis), got "
                f"{padding!r}; for 'same', give the explicit padding"
            )
        else:
            self.padding = int_tuple(padding, ndim, "padding", minimum=0)
            for d, s, p in zip(self.input_size, span, self.padding, strict=True):
                if d + 2 * p < s:
                    raise ValueError(f"input_size {d} with padding {p} is shorter than filter {s}")
                if padding_mode == "circular" and p > d:
                    raise ValueError(
                        f"circular padding {p} is larger than input_size {d} (it would wrap "
                        "more than once)"
                    )
        self.output_size = tuple(
            (d + 2 * p - s) // t + 1
            for d, s, p, t in zip(self.input_size, span, self.padding, self.stride, strict=True)
        )
        # conv_transpose needs output_padding to land exactly on input_size
        self.output_padding = tuple(
            d - ((n - 1) * t - 2 * p + s)
            for d, n, t, p, s in zip(
                self.input_size, self.output_size, self.stride, self.padding, span, strict=True
            )
        )
        # the filters are stored in the layout the kernels compute in (channels-last on the
        # CPU), so no call converts them: it is the buffer itself, not a cached copy, so
        # .to(), load_state_dict and in-place changes all act on what the kernels read
        self.register_buffer("weight", channels_last(weight.detach().clone()))

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
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        ndim: int | None = None,
        unit_norm_rows: bool = False,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> ConvOperator:
        r"""Gaussian random filters, Theorem 3.1's :math:`\mathbf W`.

        Entries i.i.d. :math:`N(0,1)` scaled by :math:`1/\sqrt{M\ell}` in 1-d and
        :math:`1/\sqrt{M\ell^2}` in 2-d (:math:`M/\text{groups}` in place of :math:`M` for
        a grouped layer), so that :math:`\mathbb E\,\mathbf W\mathbf W^T = I` (Lemma A.1).
        With ``unit_norm_rows`` every filter (and so, under ``'valid'`` padding, every row
        of :math:`\mathbf W`) is normalised to unit :math:`\ell_2` norm. The dimension is
        taken from ``ndim``, else from ``ell`` or ``input_size`` when one is a sequence,
        else 1.
        """
        K = check_positive_int(K, "K")
        M = check_positive_int(M, "M")
        groups = check_positive_int(groups, "groups")
        if K % groups or M % groups:
            raise ValueError(f"groups={groups} must divide both K={K} and M={M}")
        if ndim is None:
            ndim = next(
                (
                    len(v)
                    for v in (ell, input_size)
                    if isinstance(v, Sequence) and not isinstance(v, str)
                ),
                1,
            )
        elif not is_int(ndim) or ndim not in (1, 2):
            raise ValueError(f"ndim must be None, 1 or 2, got {ndim!r}")
        if ndim not in (1, 2):
            raise ValueError(f"ell and input_size must have 1 or 2 entries, got ell={ell!r}")
        kernel = int_tuple(ell, ndim, "ell")
        check_bool(unit_norm_rows, "unit_norm_rows")
        dtype = check_float_dtype(dtype)
        device = resolve_device(device)
        gen = make_generator(seed, generator, device)
        fan_in = (M // groups) * math.prod(kernel)
        with allocating(f"K={K}, M={M}, ell={ell!r}"):
            w = torch.randn((K, M // groups, *kernel), generator=gen, dtype=dtype, device=device)
        w = w / math.sqrt(fan_in)
        if unit_norm_rows:
            w = w / w.flatten(1).norm(dim=1).view(K, *([1] * (ndim + 1)))
        return cls(w, input_size, stride, padding, dilation, groups, padding_mode)

    def gaussian_like(
        self, *, unit_norm_rows: bool = False, seed: int | None = None, generator=None
    ) -> ConvOperator:
        """Gaussian filters of this layer's every size (K, M, kernel, input size, stride,
        padding, dilation, groups), drawn as :meth:`gaussian` draws them."""
        return ConvOperator.gaussian(
            self.K, self.M, self.kernel_size, self.input_size, self.stride, self.padding,
            dilation=self.dilation, groups=self.groups, unit_norm_rows=unit_norm_rows,
            seed=seed, generator=generator, dtype=self.weight.dtype, device=self.weight.device,
        )  # fmt: skip

    @classmethod
    def from_conv(
        cls,
        conv: torch.nn.Conv1d | torch.nn.Conv2d,
        input_size: int | Sequence[int],
    ) -> ConvOperator:
        """:math:`\\mathbf W` of a ``torch.nn.Conv1d/Conv2d`` (its weight, stride, padding,
        dilation, groups and padding mode; the bias is an offset, not part of the linear
        operator, and is left out). Zero and circular padding are supported (reflect and
        replicate are refused), and ``padding='same'`` is converted to its explicit padding
        when that is symmetric (else refused)."""
        if not isinstance(conv, torch.nn.Conv1d | torch.nn.Conv2d):
            raise ValueError(f"conv must be torch.nn.Conv1d or Conv2d, got {type(conv).__name__}")
        if conv.padding_mode not in PADDING_MODES:
            raise ValueError(
                f"padding_mode {conv.padding_mode!r} is not supported, only {PADDING_MODES}"
            )
        padding = conv.padding
        if padding == "same":
            total = [a * (k - 1) for a, k in zip(conv.dilation, conv.kernel_size, strict=True)]
            if any(t % 2 for t in total):
                raise ValueError(
                    f"padding='same' with kernel {conv.kernel_size} and dilation "
                    f"{conv.dilation} pads unevenly; give an explicit (symmetric) padding"
                )
            padding = tuple(t // 2 for t in total)
        elif padding == "valid":
            padding = 0
        return cls(
            conv.weight,
            input_size,
            conv.stride,
            padding,
            conv.dilation,
            conv.groups,
            conv.padding_mode,
        )

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
        M = check_positive_int(M, "M")
        ell = check_positive_int(ell, "ell")
        input_size = check_positive_int(input_size, "input_size")
        if input_size % ell:
            raise ValueError(f"input_size={input_size} must be a multiple of ell={ell}")
        dtype = check_float_dtype(dtype)
        device = resolve_device(device)
        gen = make_generator(seed, None, device)
        # QR has no half-precision kernels: those draw in float32 and cast at the end
        work = dtype if dtype in (torch.float32, torch.float64) else torch.float32
        with allocating(f"M={M}, ell={ell}"):
            a = torch.randn((M * ell, M * ell), generator=gen, dtype=work, device=device)
            q, r = torch.linalg.qr(a)
        q = q * torch.sign(torch.diagonal(r))  # Haar-distributed
        return cls(q.reshape(M * ell, M, ell).to(dtype), input_size, stride=ell, padding=0)

    # ------------------------------------------------------------------ sizes
    @property
    def K(self) -> int:
        return self.weight.shape[0]

    @property
    def M(self) -> int:
        return self.weight.shape[1] * self.groups

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

    def extra_repr(self) -> str:
        extra = ""
        if any(a != 1 for a in self.dilation):
            extra += f", dilation={self.dilation}"
        if self.groups != 1:
            extra += f", groups={self.groups}"
        if self.padding_mode != "zeros":
            extra += f", padding_mode={self.padding_mode!r}"
        return (
            f"K={self.K}, M={self.M}, kernel={self.kernel_size}, input_size={self.input_size}, "
            f"stride={self.stride}, padding={self.padding}{extra}, "
            f"output_size={self.output_size}"
        )

    # ------------------------------------------------------------------ application
    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding_mode == "circular":
            x = _pad_circular(x, self.padding)
            zero = (0,) * self.ndim
            return _conv(x, self.weight, self.stride, zero, self.dilation, self.groups)
        return _conv(x, self.weight, self.stride, self.padding, self.dilation, self.groups)

    def _rmatvec(self, z: torch.Tensor) -> torch.Tensor:
        # circular: the transposed convolution onto the padded map (the same output_padding
        # lands on D + 2p), then the adjoint of the padding folds the borders back
        circular = self.padding_mode == "circular"
        y = _conv_transpose(
            z,
            self.weight,
            self.stride,
            (0,) * self.ndim if circular else self.padding,
            self.dilation,
            self.groups,
            self.output_padding,
        )
        return _pad_circular_adjoint(y, self.padding) if circular else y

    def native_layout(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` in the layout the convolutions compute in: channels-last on the CPU for a
        3-d or 4-d tensor (a 3-d one as a 4-d one of height 1; masks included, so that an
        element-wise operation between the state and a mask keeps it), ``t`` itself
        elsewhere (see :mod:`cnninv.operators.functional`). Same shape and values."""
        return channels_last(t)

    # ------------------------------------------------------------------ variants
    def unit_norm_filters(self) -> ConvOperator:
        """The same layer with every filter scaled to unit :math:`\\ell_2` norm (over its
        channels and taps). ``ValueError`` when a filter is all zero."""
        norms = self.weight.flatten(1).norm(dim=1)
        if bool((norms == 0).any()):
            raise ValueError("cannot scale an all-zero filter to unit norm")
        w = self.weight / norms.view(-1, *([1] * (self.ndim + 1)))
        return ConvOperator(
            w,
            self.input_size,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.padding_mode,
        )

    # ------------------------------------------------------------------ the norm, for free
    def norm_sq_bound(self) -> float:
        r"""An upper bound on :math:`\|\mathbf W\|_2^2` from the filters' DFTs, without
        iterations (computed once, kept until the filters change).

        A stride-1 convolution on inputs zero-padded to :math:`N = D + 2p` (per axis) is a
        block of rows and columns of the circular convolution of length :math:`N`, whose
        singular values are those of the :math:`K\times M` matrices of the filters' DFTs
        :math:`\hat w(\omega)` at the :math:`N` frequencies (a block-circulant matrix is
        block-diagonalised by the DFT). So :math:`\|\mathbf W\|^2 \le \max_\omega
        \sigma_{\max}(\hat w(\omega))^2`, one batched Hermitian eigenvalue problem of size
        :math:`\min(K, M)` per frequency (half of them: the filters are real). A stride
        :math:`t` keeps a subset of the rows, so the bound holds, but loosely (about
        :math:`t` times :math:`\|\mathbf W\|^2`); dilation and groups are exact. The
        boundary makes :math:`\mathbf W` a little smaller than the circulant: the bound is
        within 0.4-2.5% of the norm at the sizes of ``benchmarks/bench_lipschitz.py``.
        Only for zero padding (``ValueError`` for ``padding_mode="circular"``, whose
        periodic copies of the border are not an embedding into that circulant).
        """
        if self._wraps():
            raise ValueError(
                "norm_sq_bound holds for zero padding only, not padding_mode='circular'"
            )
        return self._derived("norm_sq_bound", _dft_norm_sq)

    def _wraps(self) -> bool:
        """Whether the layer pads periodically (a border that is not zeros)."""
        return self.padding_mode == "circular" and any(p > 0 for p in self.padding)

    def _norm_sq_estimate(self) -> NormSqEstimate:
        """The DFT bound where it is tight (stride 1, zero padding) and cheaper than Lanczos
        by the cost model of :func:`dft_cost`, else Lanczos."""
        cost = dft_cost(self)
        if cost["tight"] and not self._wraps() and cost["dft"] < cost["lanczos"]:
            return NormSqEstimate(self.norm_sq_bound(), "dft", True)
        return super()._norm_sq_estimate()

    # ------------------------------------------------------------------ sparse codes
    def sparse_kernels(self) -> SparseKernels:
        """The tables of the sparse products (see :mod:`cnninv.operators.sparse`), built
        once per filter bank. Zero padding only (``ValueError`` for a circular one)."""
        if self._wraps():
            raise ValueError(
                "sparse products hold for zero padding only, not padding_mode='circular'"
            )
        return self._derived("sparse_kernels", SparseKernels)

    def sparse_rmatvec(self, code: SparseCode) -> torch.Tensor:
        r""":math:`\mathbf W^T z` for a code given by its entries (:class:`SparseCode`,
        ``(B, s)`` each): ``s`` scaled filter placements per sample, :math:`O(s\,M\ell)`
        instead of the transposed convolution's :math:`O(KM\ell n)`. Returns
        ``(B, M, *input_size)`` in :meth:`native_layout` (channels-last on the CPU). No
        checks beyond shapes (a solver's inner loop); indices must lie in the code."""
        return self.sparse_kernels().rmatvec(_check_sparse(code, self))

    def sparse_gram(self, code: SparseCode) -> torch.Tensor:
        r""":math:`\mathbf W\mathbf W^T z` for a code given by its entries, through the
        Gram operator (the filters' cross-correlations, :math:`2\ell-1` taps per axis at
        stride 1): :math:`O(s\,K(2\ell-1))` per sample. Only for a layer without padding
        (``ValueError`` otherwise: a padded layer's Gram operator is not a convolution).
        Returns ``(B, K, *output_size)`` in :meth:`native_layout`."""
        return self.sparse_kernels().gram(_check_sparse(code, self))


#: The cost model of :func:`dft_cost`, in nanoseconds of one CPU core, measured once by
#: ``benchmarks/bench_lipschitz.py``: per frequency, a Hermitian eigenvalue problem of
#: size m = min(K, M) (``eig`` per m^3) and the Gram matrix of the filters' DFT (``gram``
#: per K M m); per Lanczos step, the two products on one sample (``mac`` per multiply-add),
#: their calls (``call``) and the recurrence (``elem`` per entry of the input, five passes).
_DFT_COST = {"eig": 1.1, "gram": 0.22, "mac": 0.05, "call": 50e3, "elem": 1.0}


def dft_cost(op: ConvOperator) -> dict:
    """Estimated nanoseconds of :meth:`ConvOperator.norm_sq_bound` (``"dft"``) and of
    Lanczos' 30 steps (``"lanczos"``), and whether the bound is tight (stride 1);
    :meth:`~LinearOperator.norm_sq_estimate` uses the bound when it is tight and cheaper."""
    m = min(op.K, op.M)
    sizes = [d + 2 * p for d, p in zip(op.input_size, op.padding, strict=True)]
    freqs = math.prod(sizes[:-1]) * (sizes[-1] // 2 + 1)
    dft = freqs * (m**3 * _DFT_COST["eig"] + op.K * op.M * m * _DFT_COST["gram"])
    macs = 2 * op.K * (op.M // op.groups) * math.prod(op.kernel_size) * math.prod(op.output_size)
    # per step: the two products and the recurrence's few passes over the input
    step = (
        macs * _DFT_COST["mac"] + _DFT_COST["call"] + 5 * math.prod(op.in_shape) * _DFT_COST["elem"]
    )
    lanczos = LANCZOS_STEPS * step
    return {"dft": dft, "lanczos": lanczos, "tight": all(t == 1 for t in op.stride)}


def _dft_norm_sq(op: ConvOperator) -> float:
    """:meth:`ConvOperator.norm_sq_bound`, computed (complex64, frequencies in chunks)."""
    # single precision, then a margin far above its rounding (eigvalsh is backward stable:
    # an error of about m eps ||A||, FFT and Gram products a few eps more)
    w = op.weight.detach().to(torch.float32).contiguous()
    K, Mg = w.shape[:2]
    ndim = w.dim() - 2
    spans = [a * (ell - 1) + 1 for a, ell in zip(op.dilation, w.shape[2:], strict=True)]
    full = w.new_zeros((K, op.M, *spans))  # block-diagonal over the groups, dilated taps
    per = K // op.groups
    taps = tuple(slice(None, None, a) for a in op.dilation)
    for g in range(op.groups):
        full[(slice(g * per, (g + 1) * per), slice(g * Mg, (g + 1) * Mg), *taps)] = w[
            g * per : (g + 1) * per
        ]
    sizes = [d + 2 * p for d, p in zip(op.input_size, op.padding, strict=True)]
    spectrum = torch.fft.rfftn(full, s=sizes, dim=tuple(range(2, 2 + ndim)))
    spectrum = spectrum.flatten(2).permute(2, 0, 1)  # (frequencies, K, M)
    chunk = max(1, 2**24 // max(1, K * op.M))
    best = 0.0
    for start in range(0, spectrum.shape[0], chunk):
        # contiguous: the batched product of the permuted view copies matrix by matrix
        # (4x slower at a 64-filter layer); the same products, so the same values
        f = spectrum[start : start + chunk].contiguous()
        gram = f.mH @ f if op.M <= K else f @ f.mH
        best = max(best, float(torch.linalg.eigvalsh(gram)[:, -1].max()))
    return best * (1 + 1e-4)


def _check_sparse(code: object, op: ConvOperator) -> SparseCode:
    if not isinstance(code, SparseCode):
        raise ValueError(f"code must be a SparseCode (index, values), got {type(code).__name__}")
    idx, val = code
    if idx.dim() != 2 or idx.shape != val.shape or idx.dtype != torch.long:
        raise ValueError(
            f"code: index (int64) and values must both be (B, s), got {tuple(idx.shape)} "
            f"{idx.dtype} and {tuple(val.shape)}"
        )
    if val.dtype != op.dtype or val.device != op.device or idx.device != op.device:
        raise ValueError(
            f"code values ({val.dtype} on {val.device}) must match the operator's dtype and "
            f"device ({op.dtype} on {op.device})"
        )
    return code
