r"""The linear-operator algebra: :class:`LinearOperator` and its adjoint, products, sums
and multiples, the dot test.

A :class:`LinearOperator` :math:`\mathbf A` maps a sample of shape ``in_shape`` to one of
shape ``out_shape``; as a matrix it is ``shape = (prod(out_shape), prod(in_shape))``, with
samples flattened in row-major order. Subclasses implement two unchecked kernels on
batches, ``_matvec(xb)`` for ``(B, *in_shape) -> (B, *out_shape)`` and ``_rmatvec(zb)``
for the adjoint; the public calls wrap them:

* ``A.matvec(x)``, ``A.rmatvec(z)``: any leading batch dims ``(..., *in_shape)``; type,
  shape and device are checked and the dtype cast, from metadata only (no pass over the
  values), so that solvers can loop on them;
* ``A(x)`` (``forward``) and ``A.adjoint(z)``: the same, plus a check that the input and
  the result hold no NaN or inf — the calls for user code;
* ``A.T`` (the adjoint, itself an operator), ``A @ B`` (apply ``B`` then ``A``), ``A + B``,
  ``A - B``, ``c * A``; ``A @ x`` for a tensor ``x`` is ``A.matvec(x)``;
* ``A.dense()``, ``A.norm_sq()`` (power method), ``A.norm_sq_lanczos()``,
  ``A.norm_sq_bound()`` (a proven bound, without iterations, where the operator has one),
  ``A.norm_sq_estimate()`` (the cheapest good one, cached), ``dottest(A)``, and
  ``A.native_layout(t)``, the memory layout ``A`` computes in, for solvers that keep their
  state in it.

>>> import torch
>>> from cnninv.operators import ConvOperator, MatrixOperator
>>> W1 = ConvOperator.gaussian(K=8, M=3, ell=3, input_size=16, seed=0, dtype=torch.float64)
>>> W2 = ConvOperator.gaussian(K=4, M=8, ell=3, input_size=14, seed=1, dtype=torch.float64)
>>> A = W2 @ W1                          # two layers: a product of operators
>>> A.in_shape, A.out_shape, A.shape
((3, 16), (4, 12), (48, 48))
>>> lhs, rhs = dottest(A.T)              # <A^T u, v> = <u, A v>
>>> abs(lhs - rhs) < 1e-10
True
>>> D = MatrixOperator(A.dense(), A.in_shape, A.out_shape)   # its dense oracle
>>> x = torch.randn(5, 3, 16, dtype=torch.float64)
>>> torch.allclose(D(x), A(x))
True
"""

from __future__ import annotations

import copy
import math
import weakref
from typing import NamedTuple

import torch

from cnninv._checks import (
    allocating,
    as_batch,
    check_float_dtype,
    check_number,
    check_positive_int,
    check_seed,
    is_number,
    make_generator,
)

__all__ = [
    "AdjointOperator",
    "LinearOperator",
    "NormSqEstimate",
    "ProductOperator",
    "ScaledOperator",
    "SumOperator",
    "dottest",
]


class NormSqEstimate(NamedTuple):
    r"""An estimate of :math:`\|\mathbf A\|_2^2` for a solver's step size
    (:meth:`LinearOperator.norm_sq_estimate`).

    value : the estimate
    method : ``"dft"`` (the filters' DFTs: a proven upper bound, so a safe step) or
        ``"power"`` (1.02 times the power method's estimate, which approaches from below)
    upper_bound : whether ``value`` is proven to be at least :math:`\|\mathbf A\|^2`
    """

    value: float
    method: str
    upper_bound: bool


#: The Lanczos steps of :meth:`LinearOperator.norm_sq_estimate`, and the margin put on
#: their estimate (it approaches the norm from below): 30 steps get closer to the norm than
#: 100 power iterations (``benchmarks/bench_lipschitz.py``).
LANCZOS_STEPS, ESTIMATE_MARGIN = 30, 1.02


class LinearOperator(torch.nn.Module):
    r"""A linear map :math:`\mathbf A` from ``in_shape`` samples to ``out_shape`` samples.

    Subclasses set ``in_shape`` and ``out_shape`` (tuples, per sample), hold their tensors
    as registered buffers (so ``.to()`` moves and casts them), and implement ``_matvec`` and
    ``_rmatvec`` on batches. ``dtype`` and ``device`` are those of the buffers (float32 on
    the CPU for an operator without any).
    """

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    #: the names the checks give the input and the output in their messages
    _in_name: str = "x"
    _out_name: str = "z"
    #: the name of the buffer that holds the operator (its dtype and device are the
    #: operator's), for operators with one; the others look through all their buffers
    _main_buffer: str | None = None

    # ------------------------------------------------------------------ metadata
    @property
    def shape(self) -> tuple[int, int]:
        """The matrix shape ``(prod(out_shape), prod(in_shape))``."""
        return (math.prod(self.out_shape), math.prod(self.in_shape))

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the operator's buffers (float32 when it has none)."""
        if self._main_buffer is not None:
            return getattr(self, self._main_buffer).dtype
        for b in self.buffers():
            if b.is_floating_point():
                return b.dtype
        return torch.float32

    @property
    def device(self) -> torch.device:
        """The device of the operator's buffers (the CPU when it has none)."""
        if self._main_buffer is not None:
            return getattr(self, self._main_buffer).device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    def extra_repr(self) -> str:
        return f"in_shape={self.in_shape}, out_shape={self.out_shape}"

    # ------------------------------------------------------------------ kernels
    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\mathbf A x` for a batch ``(B, *in_shape)`` of the operator's dtype and
        device; no checks."""
        raise NotImplementedError

    def _rmatvec(self, z: torch.Tensor) -> torch.Tensor:
        """:math:`\\mathbf A^T z` for a batch ``(B, *out_shape)``; no checks."""
        raise NotImplementedError

    def native_layout(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` in the memory layout the operator computes in (same shape and values).

        The products return that layout; a solver converts its state once with this method,
        since an element-wise operation returns the layout of its first operand and mixing
        layouts would cost a copy at every product. The identity here; see
        :meth:`ConvOperator.native_layout`.
        """
        return t

    # ------------------------------------------------------------------ application
    def _checked(self, t, core, out_core, kernel, name: str, finite: bool) -> torch.Tensor:
        tb, lead = as_batch(t, core, name, dtype=self.dtype, device=self.device, finite=finite)
        out = kernel(tb)
        if finite and out.is_floating_point() and out.numel():
            if not bool(torch.isfinite(out.abs().amax())):
                raise ValueError(
                    f"the product of {name} overflowed {out.dtype} (the result holds inf or "
                    f"NaN): {name} or the operator is too large"
                )
        return out if lead is None else out.reshape(*lead, *out_core)

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\mathbf A x` for ``x`` of shape ``(..., *in_shape)``.

        Checks type, shape and device and casts to the operator's dtype (metadata only: no
        pass over the values, so an inner loop can call it); the result is in
        :meth:`native_layout`. ``ValueError`` names the argument and both shapes."""
        return self._checked(x, self.in_shape, self.out_shape, self._matvec, self._in_name, False)

    def rmatvec(self, z: torch.Tensor) -> torch.Tensor:
        """:math:`\\mathbf A^T z` for ``z`` of shape ``(..., *out_shape)``; checks as
        :meth:`matvec`."""
        return self._checked(z, self.out_shape, self.in_shape, self._rmatvec, self._out_name, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A(x)``: :meth:`matvec`, and ``ValueError`` when ``x`` or the result holds NaN
        or inf."""
        return self._checked(x, self.in_shape, self.out_shape, self._matvec, self._in_name, True)

    def adjoint(self, z: torch.Tensor) -> torch.Tensor:
        """:math:`\\mathbf A^T z`: :meth:`rmatvec` with the checks of :meth:`forward`."""
        return self._checked(z, self.out_shape, self.in_shape, self._rmatvec, self._out_name, True)

    @property
    def T(self) -> LinearOperator:
        r""":math:`\mathbf A^T`, lazily: an operator whose ``.T`` is ``A`` again."""
        return AdjointOperator(self)

    # ------------------------------------------------------------------ algebra
    def __matmul__(self, other: LinearOperator | torch.Tensor):
        if isinstance(other, LinearOperator):
            return ProductOperator(self, other)
        if isinstance(other, torch.Tensor):
            return self.matvec(other)
        raise ValueError(
            f"A @ B needs B to be a LinearOperator or a tensor, got {type(other).__name__}"
        )

    def __add__(self, other: LinearOperator) -> LinearOperator:
        return SumOperator(self, other)

    def __sub__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            raise ValueError(f"A - B needs B to be a LinearOperator, got {type(other).__name__}")
        return SumOperator(self, ScaledOperator(other, -1.0))

    def __neg__(self) -> LinearOperator:
        return ScaledOperator(self, -1.0)

    def __mul__(self, scalar: float) -> LinearOperator:
        return ScaledOperator(self, scalar)

    __rmul__ = __mul__

    # ------------------------------------------------------------------ matrices and norms
    def dense(self, max_entries: int = 50_000_000) -> torch.Tensor:
        """The matrix of the operator, ``shape`` = ``(prod(out_shape), prod(in_shape))``,
        samples flattened row-major (channel-major for ``(C, *spatial)`` samples).

        Computed column block by column block, by applying the operator to columns of the
        identity. Refuses more than ``max_entries`` entries: at VGG sizes the matrix would
        take tens of GB.
        """
        max_entries = check_positive_int(max_entries, "max_entries")
        rows, cols = self.shape
        if rows * cols > max_entries:
            raise ValueError(
                f"dense() would materialise a {rows}x{cols} matrix ({rows * cols} entries) "
                f"> max_entries={max_entries}; use the operator instead"
            )
        dtype, device = self.dtype, self.device
        chunk = max(1, min(cols, max_entries // cols))
        blocks = []
        for start in range(0, cols, chunk):
            n = min(chunk, cols - start)
            if n == cols:
                eye = torch.eye(cols, dtype=dtype, device=device)
            else:
                eye = torch.zeros((n, cols), dtype=dtype, device=device)
                idx = torch.arange(n, device=device)
                eye[idx, idx + start] = 1
            blocks.append(self._matvec(eye.reshape(n, *self.in_shape)).reshape(n, rows))
        return torch.cat(blocks).T.contiguous()

    # ------------------------------------------------------------------ derived state
    def _derived(self, name: str, build):
        """A quantity derived from the operator's buffers (``build(self)``), computed once and
        kept until one of them changes: an in-place change (its version counter),
        ``load_state_dict``, ``.to()``, or a new tensor assigned to it. Not kept for buffers
        made under ``torch.inference_mode`` (they have no version counter)."""
        buffers = list(self.buffers())
        if any(b.is_inference() for b in buffers):
            return build(self)  # inference tensors keep no version counter: not cached
        key = tuple((b._version, b.dtype, b.device, b.shape, b.stride()) for b in buffers)
        cache = self.__dict__.setdefault("_derived_cache", {})
        hit = cache.get(name)
        if (
            hit is not None
            and hit[1] == key
            and len(hit[0]) == len(buffers)
            and all(ref() is b for ref, b in zip(hit[0], buffers, strict=True))
        ):
            return hit[2]
        value = build(self)
        cache[name] = ([weakref.ref(b) for b in buffers], key, value)
        return value

    def norm_sq_bound(self) -> float | None:
        r"""A proven upper bound on :math:`\|\mathbf A\|_2^2` that costs no iterations, or None
        when the operator has none (see :meth:`ConvOperator.norm_sq_bound`)."""
        return None

    def norm_sq_estimate(self) -> NormSqEstimate:
        r""":math:`\|\mathbf A\|_2^2` for a solver's step (FISTA's :math:`L = 2\|\mathbf A\|^2`):
        the operator's upper bound where it has a tight and cheap one (a stride-1
        convolution: :meth:`ConvOperator.norm_sq_bound`), else ``1.02 *
        norm_sq_lanczos(30)``. Computed once and kept on the operator until its buffers
        change; ``method`` says which was used."""
        return self._derived("norm_sq_estimate", lambda op: op._norm_sq_estimate())

    def _norm_sq_estimate(self) -> NormSqEstimate:
        """:meth:`norm_sq_estimate` without the cache: Lanczos here."""
        value = ESTIMATE_MARGIN * self.norm_sq_lanczos(LANCZOS_STEPS)
        return NormSqEstimate(value, "lanczos", False)

    def norm_sq_lanczos(self, n_iter: int = 30, seed: int | None = 0) -> float:
        r""":math:`\|\mathbf A\|_2^2` by ``n_iter`` steps of Lanczos on
        :math:`\mathbf A^T\mathbf A`: the largest eigenvalue of the tridiagonal matrix of the
        Krylov space, which approaches the norm from below, much faster than the power method
        (:meth:`norm_sq`) for the same number of products (Golub & Van Loan, §10.1). The
        plain three-term recurrence: the loss of orthogonality that it lets in shows as
        copies of converged Ritz values, which do not move the largest one (Paige), and
        reorthogonalising changed no estimate at the benchmarked sizes while taking 2-6 times
        as long. ``seed`` draws the starting vector.
        """
        n_iter = check_positive_int(n_iter, "n_iter")
        seed = check_seed(seed)
        dtype, device = self.dtype, self.device
        gen = make_generator(seed, None, device)
        with allocating(f"in_shape={self.in_shape}"):
            v = torch.randn((1, *self.in_shape), generator=gen, dtype=dtype, device=device)
        v = self.native_layout(v / v.norm())
        v_prev, b = None, 0.0
        alpha, beta = [], []
        for _ in range(min(n_iter, math.prod(self.in_shape))):
            w = self._rmatvec(self._matvec(v))
            a = float((w * v).sum(dtype=torch.float64))
            alpha.append(a)
            w = w - a * v if v_prev is None else w - a * v - b * v_prev
            b = float(w.norm())
            if not (math.isfinite(b) and math.isfinite(a)):
                raise ValueError(f"norm_sq_lanczos overflowed {dtype}: the operator is too large")
            if b <= 1e-12 * max(abs(alpha[0]), 1e-300):  # an invariant subspace: exact
                break
            beta.append(b)
            v_prev, v = v, w / b
        T = torch.diag(torch.tensor(alpha, dtype=torch.float64))
        off = torch.tensor(beta[: len(alpha) - 1], dtype=torch.float64)
        T += torch.diag(off, 1) + torch.diag(off, -1)
        return max(0.0, float(torch.linalg.eigvalsh(T)[-1]))

    def norm_sq(self, n_iter: int = 50, tol: float = 1e-6, seed: int | None = 0) -> float:
        r""":math:`\|\mathbf A\|_2^2`, by the power method on :math:`\mathbf A^T\mathbf A`.

        Stops after ``n_iter`` (``>= 1``) iterations, or when the estimate changes by at
        most ``tol`` relative; it approaches the true value from below. ``seed`` draws the
        starting vector.
        """
        n_iter = check_positive_int(n_iter, "n_iter")
        tol = check_number(tol, "tol", minimum=0.0)
        seed = check_seed(seed)
        dtype, device = self.dtype, self.device
        gen = make_generator(seed, None, device)
        with allocating(f"in_shape={self.in_shape}"):
            v = torch.randn((1, *self.in_shape), generator=gen, dtype=dtype, device=device)
        v = v / v.norm()
        value = 0.0
        for _ in range(n_iter):
            u = self._rmatvec(self._matvec(v))
            new = float(u.norm())
            if new == 0.0:
                return 0.0
            if not math.isfinite(new):
                raise ValueError(f"norm_sq overflowed {dtype}: the operator is too large")
            v = u / new
            if abs(new - value) <= tol * new:
                value = new
                break
            value = new
        return value


def _check_operator(op: object, name: str) -> LinearOperator:
    if not isinstance(op, LinearOperator):
        raise ValueError(f"{name} must be a LinearOperator, got {type(op).__name__}")
    return op


class AdjointOperator(LinearOperator):
    r""":math:`\mathbf A^T`: ``_matvec`` and ``_rmatvec`` of ``op`` swapped; ``.T`` is
    ``op``. Its input is named ``z`` and its output ``x`` in messages, as for ``A``."""

    _in_name = "z"
    _out_name = "x"

    def __init__(self, op: LinearOperator) -> None:
        super().__init__()
        self.op = _check_operator(op, "op")

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.op.out_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.op.in_shape

    @property
    def dtype(self) -> torch.dtype:
        return self.op.dtype

    @property
    def device(self) -> torch.device:
        return self.op.device

    @property
    def T(self) -> LinearOperator:
        return self.op

    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        return self.op._rmatvec(x)

    def _rmatvec(self, z: torch.Tensor) -> torch.Tensor:
        return self.op._matvec(z)

    def native_layout(self, t: torch.Tensor) -> torch.Tensor:
        return self.op.native_layout(t)

    def dense(self, max_entries: int = 50_000_000) -> torch.Tensor:
        return self.op.dense(max_entries).T.contiguous()

    def norm_sq_bound(self) -> float | None:
        return self.op.norm_sq_bound()  # ||A^T|| = ||A||

    def _norm_sq_estimate(self) -> NormSqEstimate:
        return self.op.norm_sq_estimate()


class _PairOperator(LinearOperator):
    """An operator made of two, ``A`` and ``B`` (same dtype and device), checked."""

    _symbol = ""

    def __init__(self, A: LinearOperator, B: LinearOperator) -> None:
        super().__init__()
        _check_operator(A, "A")
        _check_operator(B, "B")
        self._check_shapes(A, B)
        if A.dtype != B.dtype or A.device != B.device:
            raise ValueError(
                f"A {self._symbol} B: the operators differ in dtype or device ({A.dtype} on "
                f"{A.device} vs {B.dtype} on {B.device}); move one with .to()"
            )
        self.A, self.B = A, B

    def _check_shapes(self, A: LinearOperator, B: LinearOperator) -> None:
        raise NotImplementedError

    def native_layout(self, t: torch.Tensor) -> torch.Tensor:
        return self.A.native_layout(self.B.native_layout(t))


class ProductOperator(_PairOperator):
    r""":math:`\mathbf A\mathbf B`: apply ``B``, then ``A``; the adjoint is
    :math:`\mathbf B^T\mathbf A^T`. ``A.in_shape`` must equal ``B.out_shape``."""

    _symbol = "@"

    def _check_shapes(self, A: LinearOperator, B: LinearOperator) -> None:
        if tuple(A.in_shape) != tuple(B.out_shape):
            raise ValueError(
                f"A @ B: A.in_shape {tuple(A.in_shape)} must equal B.out_shape {tuple(B.out_shape)}"
            )

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.B.in_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.A.out_shape

    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        return self.A._matvec(self.B._matvec(x))

    def norm_sq_bound(self) -> float | None:
        a, b = self.A.norm_sq_bound(), self.B.norm_sq_bound()
        return None if a is None or b is None else a * b  # ||AB|| <= ||A|| ||B||

    def _rmatvec(self, z: torch.Tensor) -> torch.Tensor:
        return self.B._rmatvec(self.A._rmatvec(z))


class SumOperator(_PairOperator):
    r""":math:`\mathbf A + \mathbf B` (same ``in_shape`` and ``out_shape``)."""

    _symbol = "+"

    def _check_shapes(self, A: LinearOperator, B: LinearOperator) -> None:
        if (tuple(A.in_shape), tuple(A.out_shape)) != (tuple(B.in_shape), tuple(B.out_shape)):
            raise ValueError(
                f"A + B: the shapes differ, A maps {tuple(A.in_shape)} -> "
                f"{tuple(A.out_shape)} and B {tuple(B.in_shape)} -> {tuple(B.out_shape)}"
            )

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.A.in_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.A.out_shape

    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        return self.A._matvec(x) + self.B._matvec(x)

    def norm_sq_bound(self) -> float | None:
        a, b = self.A.norm_sq_bound(), self.B.norm_sq_bound()
        return None if a is None or b is None else (math.sqrt(a) + math.sqrt(b)) ** 2

    def _rmatvec(self, z: torch.Tensor) -> torch.Tensor:
        return self.A._rmatvec(z) + self.B._rmatvec(z)


class ScaledOperator(LinearOperator):
    r""":math:`c\,\mathbf A` for a real finite scalar :math:`c`."""

    def __init__(self, op: LinearOperator, scalar: float) -> None:
        super().__init__()
        self.op = _check_operator(op, "op")
        if isinstance(scalar, torch.Tensor) and scalar.dim() == 0:
            scalar = scalar.item()
        if not is_number(scalar):
            raise ValueError(
                f"an operator can only be scaled by a real number, got {type(scalar).__name__}"
            )
        self.scalar = check_number(scalar, "scalar")

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.op.in_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.op.out_shape

    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        return self.op._matvec(x) * self.scalar

    def _rmatvec(self, z: torch.Tensor) -> torch.Tensor:
        return self.op._rmatvec(z) * self.scalar

    def native_layout(self, t: torch.Tensor) -> torch.Tensor:
        return self.op.native_layout(t)

    def norm_sq_bound(self) -> float | None:
        b = self.op.norm_sq_bound()
        return None if b is None else self.scalar**2 * b

    def _norm_sq_estimate(self) -> NormSqEstimate:
        e = self.op.norm_sq_estimate()
        return e._replace(value=self.scalar**2 * e.value)

    def extra_repr(self) -> str:
        return f"scalar={self.scalar}"


def dottest(
    op: LinearOperator,
    batch: int = 2,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> tuple[float, float]:
    r"""Dot test: :math:`(\langle \mathbf A u, v\rangle, \langle u, \mathbf A^T v\rangle)` for
    random ``u`` (``batch`` samples of ``in_shape``) and ``v``; they agree to rounding when
    ``A.T`` is the adjoint of ``A``.

    Computed on a copy of ``op`` cast to ``dtype`` (float64 by default), on ``op``'s device;
    ``op`` itself is never changed.
    """
    _check_operator(op, "op")
    batch = check_positive_int(batch, "batch")
    seed = check_seed(seed)
    dtype = check_float_dtype(dtype)
    device = op.device
    gen = make_generator(seed, None, device)
    with allocating(f"batch={batch} samples of {op.in_shape} and {op.out_shape}"):
        u = torch.randn((batch, *op.in_shape), generator=gen, dtype=dtype, device=device)
        v = torch.randn((batch, *op.out_shape), generator=gen, dtype=dtype, device=device)
    op64 = copy.deepcopy(op).to(dtype)  # never change the caller's operator
    lhs = float((op64(u) * v).sum())
    rhs = float((u * op64.T(v)).sum())
    for name, value in (("<A u, v>", lhs), ("<u, A^T v>", rhs)):
        if not math.isfinite(value):
            raise ValueError(f"dottest: {name} overflowed {dtype}")
    return lhs, rhs
