"""Every public function of the core library, called with generated bad arguments
(negative, zero, NaN, inf, huge, floats for integers, bools, strings, wrong shapes, wrong
dtypes): it either works or raises ``ValueError`` — no ``TypeError``, ``RuntimeError``,
``IndexError``, ``OverflowError`` from deep inside — and never returns NaN silently.

Two kinds of functions:

* *checked* ones get every kind of bad value, NaN and inf inside tensors included;
* the *metadata-only* kernels that solvers loop on (``matvec``/``rmatvec``, the functional
  convolutions, ``per_sample_norm``, ``model_sparse(check=False)``, ``native_layout``,
  ``support``) check type, shape, dtype and device but by design never scan the values,
  so NaN in gives NaN out: they get every bad value except NaN/inf inside tensors.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnninv import metrics, sparsity
from cnninv.operators import (
    ConvOperator,
    MatrixOperator,
    ProductOperator,
    ScaledOperator,
    SumOperator,
    dottest,
    functional,
)
from cnninv.recovery import algorithm2, fista, iht, lam_max, lasso_gap, lasso_objective
from cnninv.theory import (
    bracket_summary,
    coherence,
    delta_bracket,
    empirical_delta,
    exact_delta,
    gram_ratios,
    model_rip_ratios,
    reconstruction_errors,
    sample_model_sparse,
    support_delta,
    theorem31_condition,
    theorem33_bound,
)
from cnninv.theory.delta import block_ids, support_size

nan, inf = math.nan, math.inf

# ------------------------------------------------------------------ pools of values

BAD_INTS = [0, -1, -(2**62), 2.5, 1.0, nan, inf, True, False, "3", None, (2,), [1, 2]]
SIZES = [*BAD_INTS, 1, 2, 3, 2**62, 10**30]  # sizes: huge ones must be refused, not hang
COUNTS = [*BAD_INTS, 1, 2]  # iteration counts: a huge valid count would just run long
NUMBERS = [-1.0, 0.0, 1e-300, 1e300, -1e300, nan, inf, -inf, 0.5, 2, True, "1", None, [1.0]]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.bool, torch.complex64,
          "float32", None, float]  # fmt: skip
DEVICES = ["cpu", "tpu", "cuda:7", 3, None, "", torch.device("cpu"), True]
BOOLS = [True, False, 0, 1, "yes", None, nan]
POOLS = [None, 1, 2, 3, 0, -1, 2.5, True, (2,), (2, 2), (2, 2, 2), "2", [0, 1], 2**62]
VARIANTS = ["abs", "relu", "max", "", None, 3, ["abs"]]
SEEDS = [0, -1, 2**70, -(2**70), 1.5, "0", True, None, nan]
SHAPES = [(4, 6), (4, 6, 6), (5,), (), (0, 3), (4, -1), (4, 2.5), "46", None, (4, 6, 6, 6), 7]


def tensor_variants(t: torch.Tensor, values: bool = True) -> list:
    """``t`` and ways to get it wrong; with ``values``, NaN, inf and huge entries too."""
    out = [t, t[..., :-1], t.unsqueeze(-1), t[0], t.to(torch.int64), t.bool(),
           t.to(torch.complex64), t.half(), t.double(), t.float(), t[:0], torch.zeros_like(t),
           t.tolist(), 1.0, None, "t", torch.tensor(1.0)]  # fmt: skip
    if t.dim() >= 2:
        out += [t[..., :1, :], t[0, 0], t.transpose(-1, -2)]
    if values and t.numel():
        big = torch.finfo(t.dtype).max / 4 if t.is_floating_point() else 2**60
        for v in (nan, inf, -inf, 1e30, big):
            if t.is_floating_point() or math.isfinite(v):
                bad = t.clone(memory_format=torch.contiguous_format)
                bad.view(-1)[t.numel() // 2] = v if abs(v) <= big or not math.isfinite(v) else big
                out.append(bad)
        out.append(t * 1e30)
    return out


# ------------------------------------------------------------------ the objects used

_g = torch.Generator().manual_seed(0)
W1 = ConvOperator.gaussian(K=4, M=2, ell=3, input_size=10, seed=0)  # float32, 1-d
W2 = ConvOperator.gaussian(K=3, M=2, ell=3, input_size=(6, 6), seed=1, dtype=torch.float64)
D = MatrixOperator(torch.randn(6, 4, generator=_g))
X1 = torch.randn(3, *W1.in_shape, generator=_g)
Z1 = sample_model_sparse(3, W1.out_shape, 2, seed=2)
X2 = torch.randn(2, *W2.in_shape, generator=_g, dtype=torch.float64)
Z2 = sample_model_sparse(2, W2.out_shape, 3, 2, seed=3, dtype=torch.float64)
H = torch.randn(2, 3, 4, 4, generator=_g)
OPERATORS = [W1, W2, D, W1.T, W2 @ W2.T, "W", None, W1.weight, 3]
IHT_RESULT = iht(W1, X1, 2, max_iter=2, z_true=Z1)
W_TINY = ConvOperator.gaussian(K=3, M=2, ell=2, input_size=4, seed=4, dtype=torch.float64)
BRACKETS = [delta_bracket(W_TINY, 2, order=o, samples=4, seed=0) for o in (1, 2)]


def _values(t: torch.Tensor, checked: bool) -> list:
    return tensor_variants(t, values=checked)


@dataclass
class Case:
    """One public function: its valid arguments and, per parameter, the values to try."""

    name: str
    fn: Callable
    kwargs: dict
    params: dict
    checked: bool = True  # NaN/inf inside tensors are fuzzed too, and must be refused
    args: tuple = field(default_factory=tuple)


def _cases() -> list[Case]:
    values, switches = sparsity.max_pool_switches(H, 2)
    T = lambda t, checked=True: _values(t, checked)  # noqa: E731
    return [
        # ---------------------------------------------------------------- operators
        Case("ConvOperator", ConvOperator,
             dict(weight=W1.weight, input_size=10, stride=1, padding="valid", dilation=1,
                  groups=1),
             dict(weight=T(W1.weight), input_size=SIZES, stride=SIZES, dilation=SIZES,
                  groups=SIZES, padding=["valid", "same", "full", *SIZES])),
        Case("gaussian", ConvOperator.gaussian,
             dict(K=4, M=2, ell=3, input_size=10, stride=1, padding="valid"),
             dict(K=SIZES, M=SIZES, ell=SIZES, input_size=SIZES, stride=SIZES,
                  padding=["valid", "same", *SIZES], dilation=SIZES, groups=SIZES,
                  ndim=[None, 1, 2, 3, 0, 1.0, "1"], unit_norm_rows=BOOLS, seed=SEEDS,
                  generator=[None, torch.Generator(), "g", 3], dtype=DTYPES,
                  device=DEVICES)),
        Case("from_conv", ConvOperator.from_conv,
             dict(conv=torch.nn.Conv2d(2, 4, 3), input_size=(8, 8)),
             dict(conv=[torch.nn.Conv2d(2, 4, 3, padding="same"), torch.nn.Linear(2, 2),
                        torch.nn.Conv1d(2, 2, 2, padding="same"),
                        torch.nn.Conv2d(2, 4, 3, padding_mode="circular", padding=1),
                        torch.nn.Conv3d(2, 2, 3), None, "conv"],
                  input_size=[*SIZES, (8, 8), (2, 2), (8,)])),
        Case("orthonormal", ConvOperator.orthonormal, dict(M=2, ell=2, input_size=6),
             dict(M=SIZES, ell=SIZES, input_size=SIZES, seed=SEEDS, dtype=DTYPES,
                  device=DEVICES)),
        Case("MatrixOperator", MatrixOperator, dict(matrix=D.matrix),
             dict(matrix=T(D.matrix), in_shape=[None, (4,), (2, 2), (5,), (0, 4), (4, 1.0),
                                                "4", 4],
                  out_shape=[None, (6,), (3, 2), (7,), (-6,), (), [6]])),
        Case("forward", W1, dict(x=X1), dict(x=T(X1))),
        Case("forward2d", W2, dict(x=X2), dict(x=T(X2))),
        Case("adjoint", W1.adjoint, dict(z=Z1), dict(z=T(Z1))),
        Case("T", lambda z: W2.T(z), dict(z=Z2), dict(z=T(Z2))),
        Case("matrix", D, dict(x=torch.randn(2, 4)), dict(x=T(torch.randn(2, 4)))),
        Case("matvec", W1.matvec, dict(x=X1), dict(x=T(X1, False)), checked=False),
        Case("rmatvec", W2.rmatvec, dict(z=Z2), dict(z=T(Z2, False)), checked=False),
        Case("native_layout", W1.native_layout, dict(t=X1), dict(t=T(X1, False)),
             checked=False),
        Case("dense", W1.dense, dict(), dict(max_entries=SIZES)),
        Case("norm_sq", W2.norm_sq, dict(n_iter=5), dict(n_iter=COUNTS, tol=NUMBERS,
                                                          seed=SEEDS)),
        Case("unit_norm_filters", W2.unit_norm_filters, dict(), dict()),
        Case("dottest", dottest, dict(op=W1),
             dict(op=OPERATORS, batch=[*COUNTS, 2 ** 62], seed=SEEDS, dtype=DTYPES)),
        Case("product", ProductOperator, dict(A=W2, B=W2.T), dict(A=OPERATORS, B=OPERATORS)),
        Case("sum", SumOperator, dict(A=W1, B=W1), dict(A=OPERATORS, B=OPERATORS)),
        Case("scaled", ScaledOperator, dict(op=W1, scalar=2.0),
             dict(op=OPERATORS, scalar=[*NUMBERS, torch.tensor(2.0)])),
        Case("functional.conv", functional.conv,
             dict(x=X2, weight=W2.weight, stride=1, padding=0, dilation=1, groups=1),
             dict(x=T(X2, False), weight=T(W2.weight, False), stride=SIZES, padding=SIZES,
                  dilation=SIZES, groups=SIZES), checked=False),
        Case("functional.conv_transpose", functional.conv_transpose,
             dict(z=Z2, weight=W2.weight, stride=1, padding=0, dilation=1, groups=1,
                  output_padding=0),
             dict(z=T(Z2, False), weight=T(W2.weight, False), stride=SIZES, padding=SIZES,
                  dilation=SIZES, groups=SIZES, output_padding=SIZES), checked=False),
        Case("pad_circular", functional.pad_circular, dict(x=X2, padding=1),
             dict(x=T(X2, False), padding=SIZES), checked=False),
        Case("pad_circular_adjoint", functional.pad_circular_adjoint, dict(y=X2, padding=1),
             dict(y=T(X2, False), padding=SIZES), checked=False),
        Case("ConvOperator_circular", ConvOperator,
             dict(weight=W1.weight, input_size=10, padding=1, padding_mode="circular"),
             dict(weight=T(W1.weight), input_size=SIZES, padding=SIZES, stride=SIZES,
                  padding_mode=["zeros", "circular", "reflect", None, 1])),
        Case("functional.channels_last", functional.channels_last, dict(t=X2),
             dict(t=T(X2, False)), checked=False),
        # ---------------------------------------------------------------- sparsity
        Case("block_shape", sparsity.block_shape, dict(spatial=(6, 6), pool=2),
             dict(spatial=SHAPES, pool=POOLS)),
        Case("num_blocks", sparsity.num_blocks, dict(shape=(4, 6, 6), pool=2),
             dict(shape=SHAPES, pool=POOLS)),
        Case("pool_shape", sparsity.pool_shape, dict(spatial=(6, 6), pool=2),
             dict(spatial=SHAPES, pool=POOLS)),
        Case("check_k", sparsity.check_k, dict(k=2, shape=(4, 6), pool=None),
             dict(k=SIZES, shape=SHAPES, pool=POOLS)),
        Case("check_variant", sparsity.check_variant, dict(variant="abs"),
             dict(variant=VARIANTS)),
        Case("max_pool_switches", sparsity.max_pool_switches, dict(h=H, pool=2),
             dict(h=T(H), pool=POOLS, variant=VARIANTS)),
        Case("unpool", sparsity.unpool,
             dict(values=values, switches=switches, output_size=(4, 4)),
             dict(values=T(values), switches=[switches, switches.float(), switches + 100,
                                                switches[..., :1], -switches - 1, None],
                  output_size=[*SHAPES, (4, 4), (4,), (2, 2)])),
        Case("naive_switches", sparsity.naive_switches,
             dict(pooled_shape=(2, 3, 2, 2), pool=2, output_size=(4, 4)),
             dict(pooled_shape=[*SHAPES, (2, 3, 2, 2)], pool=POOLS,
                  output_size=[*SHAPES, (4, 4)], device=DEVICES)),
        Case("unpool_naive", sparsity.unpool_naive,
             dict(values=values, pool=2, output_size=(4, 4)),
             dict(values=T(values), pool=POOLS, output_size=[*SHAPES, (4, 4)])),
        Case("model_sparse", sparsity.model_sparse, dict(h=H, k=3, pool=2),
             dict(h=T(H), k=SIZES, pool=POOLS, variant=VARIANTS, check=[True, 1, "no"])),
        Case("model_sparse_unchecked", sparsity.model_sparse,
             dict(h=H, k=3, pool=2, check=False), dict(h=T(H, False), variant=VARIANTS),
             checked=False),
        Case("support", sparsity.support, dict(z=H), dict(z=T(H, False)), checked=False),
        Case("crelu", sparsity.crelu, dict(h=H), dict(h=T(H), dim=[*SIZES, -1, -5, 3])),
        # ---------------------------------------------------------------- recovery
        Case("iht", iht, dict(W=W1, x=X1, k=2, max_iter=2),
             dict(W=OPERATORS, x=T(X1), k=SIZES, pool=POOLS, variant=VARIANTS,
                  max_iter=COUNTS, tol=NUMBERS, step=[*NUMBERS, "normalized", "big"],
                  z0=T(Z1), z_true=T(Z1), callback=[None, 3, "f", lambda *a: None],
                  max_backtrack=COUNTS)),
        Case("iht2d", iht, dict(W=W2, x=X2, k=3, pool=2, max_iter=2, step="normalized"),
             dict(x=T(X2), k=SIZES, pool=POOLS, z0=T(Z2), z_true=T(Z2),
                  max_backtrack=COUNTS)),
        Case("fista", fista, dict(W=W1, x=X1, lam=0.1, max_iter=3),
             dict(W=OPERATORS, x=T(X1), lam=NUMBERS, mask=[None, Z1 != 0, Z1, (Z1 != 0)[0],
                                                          (Z1 != 0)[..., :1], "m"],
                  nonneg=BOOLS, max_iter=COUNTS, tol=NUMBERS,
                  criterion=["gap", "rel_change", "objective", None, 1], z0=T(Z1),
                  z_true=T(Z1), lipschitz=NUMBERS, restart=BOOLS,
                  callback=[None, 3], max_backtrack=COUNTS)),
        Case("lam_max", lam_max, dict(W=W2, x=X2),
             dict(W=OPERATORS, x=T(X2), mask=[None, Z2 != 0, Z2, "m"], nonneg=BOOLS)),
        Case("lasso_objective", lasso_objective, dict(W=W1, x=X1, z=Z1, lam=0.1),
             dict(W=OPERATORS, x=T(X1), z=T(Z1), lam=NUMBERS)),
        Case("lasso_gap", lasso_gap, dict(W=W1, x=X1, z=Z1, lam=0.1),
             dict(W=OPERATORS, x=T(X1), z=T(Z1), lam=NUMBERS, mask=[None, Z1 != 0, "m"],
                  nonneg=BOOLS)),
        Case("algorithm2", algorithm2, dict(W=W2, x=X2, lam=0.5, pool=2, max_iter=3),
             dict(W=OPERATORS, x=T(X2), lam=NUMBERS, pool=POOLS, k=SIZES, variant=VARIANTS,
                  nonneg=BOOLS, max_iter=COUNTS, tol=NUMBERS,
                  criterion=["gap", "rel_change", "x"], restart=BOOLS, lipschitz=NUMBERS,
                  z_true=T(Z2))),
        Case("history_array", IHT_RESULT.history_array, dict(name="residual"),
             dict(name=["residual", "code_error", "iteration", "nope", None, 3, ["step"]])),
        # ---------------------------------------------------------------- theory
        Case("theorem31_condition", theorem31_condition,
             dict(M=32, ell=5, D=32, K=96, k=10, delta=0.5, eps=0.01, C=0.01),
             dict(M=SIZES, ell=SIZES, D=SIZES, K=SIZES, k=SIZES, delta=NUMBERS, eps=NUMBERS,
                  C=NUMBERS, stride=SIZES)),
        Case("theorem33_bound", theorem33_bound, dict(delta_k=0.1, delta_2k=0.2),
             dict(delta_k=NUMBERS, delta_2k=NUMBERS)),
        Case("sample_model_sparse", sample_model_sparse, dict(batch=2, shape=(4, 6), k=2),
             dict(batch=SIZES, shape=SHAPES, k=SIZES, pool=POOLS, low=NUMBERS,
                  high=NUMBERS, seed=SEEDS, generator=[None, torch.Generator(), 3],
                  dtype=DTYPES, device=DEVICES)),
        Case("model_rip_ratios", model_rip_ratios, dict(W=W1, z=Z1),
             dict(W=OPERATORS, z=T(Z1))),
        Case("gram_ratios", gram_ratios, dict(W=W2, z=Z2),
             dict(W=OPERATORS, z=T(Z2), restrict=BOOLS)),
        Case("reconstruction_errors", reconstruction_errors, dict(W=W2, x=X2, k=3, pool=2),
             dict(W=OPERATORS, x=T(X2), k=SIZES, pool=POOLS, variant=VARIANTS,
                  switches=["known", "naive", "other", None])),
        Case("empirical_delta", empirical_delta, dict(ratios=torch.tensor([0.9, 1.1])),
             dict(ratios=[*T(torch.tensor([0.9, 1.1])), [], [0.5, "a"], [[1.0], [2.0, 3.0]],
                          torch.tensor([-1.0]), [1e200]],
                  squared=BOOLS)),
        Case("delta_bracket", delta_bracket, dict(W=W1, k=2, samples=4, sweeps=2, tpm_iters=2),
             dict(W=OPERATORS, k=SIZES, pool=POOLS, order=[1, 2, 3, 0, 1.0, True, "1"],
                  samples=COUNTS, starts=COUNTS, sweeps=COUNTS, tpm_iters=COUNTS,
                  lanczos_steps=COUNTS, upper=BOOLS, seed=SEEDS, dense_max=COUNTS)),
        Case("exact_delta", exact_delta, dict(W=W_TINY, k=2),
             dict(W=[W_TINY, *OPERATORS], k=SIZES, pool=POOLS, order=[1, 2, 3, None],
                  max_supports=COUNTS)),
        Case("support_delta", support_delta, dict(W=W_TINY, supports=torch.tensor([[0, 3]])),
             dict(W=OPERATORS, supports=[torch.tensor([[0, 3]]), torch.tensor([[0, 0]]),
                                         torch.tensor([0, 3]), torch.tensor([[0.0, 3.0]]),
                                         torch.tensor([[-1, 3]]), torch.tensor([[0, 10**6]]),
                                         torch.zeros((1, 0), dtype=torch.long), None, [[0, 3]]])),
        Case("block_ids", block_ids, dict(shape=(4, 6, 6), pool=2),
             dict(shape=SHAPES, pool=POOLS)),
        Case("support_size", support_size, dict(shape=(4, 6), k=2),
             dict(shape=SHAPES, k=SIZES, pool=POOLS, order=[1, 2, 3, None])),
        Case("bracket_summary", bracket_summary,
             dict(delta_k=BRACKETS[0], delta_2k=BRACKETS[1]),
             dict(delta_k=[*BRACKETS, None, 3], delta_2k=[*BRACKETS, None, 3],
                  shape=[None, (3, 3), W_TINY.out_shape])),
        Case("coherence", coherence, dict(weight=W2.weight),
             dict(weight=T(W2.weight), shifts=BOOLS, stride=SIZES)),
        # ---------------------------------------------------------------- metrics
        Case("per_sample_norm", metrics.per_sample_norm, dict(t=X1), dict(t=T(X1, False)),
             checked=False),
        Case("relative_error", metrics.relative_error, dict(estimate=X1, target=X1 + 1),
             dict(estimate=T(X1), target=T(X1))),
        Case("rescale_to", metrics.rescale_to, dict(estimate=X1, target=X1 + 1),
             dict(estimate=T(X1), target=T(X1))),
    ]  # fmt: skip


CASES = _cases()


def _has_nan(out: object) -> bool:
    if isinstance(out, torch.Tensor):
        return out.is_floating_point() and bool(torch.isnan(out).any())
    if isinstance(out, float):
        return math.isnan(out)
    if isinstance(out, list | tuple):
        return any(_has_nan(o) for o in out)
    if dataclasses.is_dataclass(out):
        return any(_has_nan(getattr(out, f.name)) for f in dataclasses.fields(out))
    if isinstance(out, torch.nn.Module):
        return any(_has_nan(b) for b in out.buffers())
    return False


def _call(case: Case, kwargs: dict) -> None:
    try:
        out = case.fn(*case.args, **kwargs)
    except ValueError:
        return
    if case.checked:
        assert not _has_nan(out), f"{case.name}({kwargs!r}) returned NaN"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_valid_arguments_work(case):
    case.fn(*case.args, **case.kwargs)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_bad_value_alone(case):
    """Every value of every parameter's pool, one parameter at a time."""
    for name, pool in case.params.items():
        for value in pool:
            _call(case, {**case.kwargs, name: value})


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_bad_values_in_combination(data):
    """Two or three parameters wrong at once, for a random public function."""
    case = data.draw(st.sampled_from([c for c in CASES if len(c.params) >= 2]))
    names = data.draw(
        st.lists(st.sampled_from(sorted(case.params)), min_size=2, max_size=4, unique=True)
    )
    kwargs = dict(case.kwargs)
    for name in names:
        kwargs[name] = data.draw(st.sampled_from(case.params[name]), label=name)
    _call(case, kwargs)
