import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnninv.operators import (
    AdjointOperator,
    ConvOperator,
    LinearOperator,
    MatrixOperator,
    ProductOperator,
    ScaledOperator,
    SumOperator,
    dottest,
    functional,
)

f64 = torch.float64


def _gauss(device, seed=0, **kw):
    return ConvOperator.gaussian(**kw, seed=seed, dtype=f64, device=device)


def _conv1d(device):
    return _gauss(device, K=4, M=3, ell=3, input_size=11)


def _conv2d(device):
    return _gauss(device, K=5, M=2, ell=(3, 2), input_size=(8, 7), seed=1)


# One list of operators, every one run through the same checks (deepinv's habit).
OPERATORS = {
    "conv1d": _conv1d,
    "conv2d": _conv2d,
    "strided": lambda d: _gauss(d, K=4, M=2, ell=3, input_size=11, stride=2, seed=2),
    "padded": lambda d: _gauss(
        d, K=5, M=3, ell=(3, 2), input_size=(8, 7), stride=(2, 3), padding=1, seed=3
    ),
    "dilated": lambda d: _gauss(
        d, K=4, M=2, ell=3, input_size=12, stride=2, padding=1, dilation=2, seed=4
    ),
    "dilated2d": lambda d: _gauss(d, K=3, M=2, ell=(2, 3), input_size=(7, 9), dilation=(3, 2)),
    "grouped": lambda d: _gauss(d, K=6, M=4, ell=(3, 3), input_size=(7, 7), groups=2, seed=5),
    "depthwise": lambda d: _gauss(d, K=3, M=3, ell=3, input_size=10, groups=3, seed=6),
    "circular": lambda d: _gauss(
        d, K=4, M=3, ell=5, input_size=9, stride=2, padding=2, padding_mode="circular", seed=9
    ),
    "circular2d": lambda d: _gauss(
        d, K=3, M=2, ell=(3, 2), input_size=(6, 5), padding=(1, 3), padding_mode="circular"
    ),
    "adjoint": lambda d: _conv2d(d).T,
    "product": lambda d: _gauss(d, K=2, M=4, ell=2, input_size=9, seed=7) @ _conv1d(d),
    "sum": lambda d: _conv1d(d) + _gauss(d, K=4, M=3, ell=3, input_size=11, seed=8),
    "difference": lambda d: _conv1d(d) - _gauss(d, K=4, M=3, ell=3, input_size=11, seed=8),
    "scaled": lambda d: 2.5 * _conv2d(d),
    "product_of_adjoint": lambda d: _conv1d(d).T @ _conv1d(d),
    "matrix": lambda d: MatrixOperator(
        torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=f64).to(d)
    ),
    "matrix_of_conv": lambda d: MatrixOperator(
        _conv2d(d).dense(), _conv2d(d).in_shape, _conv2d(d).out_shape
    ),
}


@pytest.fixture(params=list(OPERATORS))
def op(request, device):
    return OPERATORS[request.param](device)


def _random(shape, seed, device, batch=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((batch, *shape), generator=g, dtype=f64).to(device)


# ------------------------------------------------------------------ every operator


def test_is_an_operator_with_consistent_shapes(op):
    assert isinstance(op, LinearOperator)
    assert op.shape == (math.prod(op.out_shape), math.prod(op.in_shape))
    assert op.T.in_shape == op.out_shape and op.T.out_shape == op.in_shape
    if isinstance(op, AdjointOperator):
        assert op.T is op.op and op.T.T.op is op.op
    else:
        assert op.T.T is op
    assert op.dtype == f64


def test_dot_test(op):
    lhs, rhs = dottest(op, seed=3)
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)
    lhs, rhs = dottest(op.T, seed=4)
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


def test_dense_equals_operator(op, device):
    A = op.dense()
    assert A.shape == op.shape
    x, z = _random(op.in_shape, 0, device), _random(op.out_shape, 1, device)
    torch.testing.assert_close(op(x).reshape(3, -1), x.reshape(3, -1) @ A.T)
    torch.testing.assert_close(op.T(z).reshape(3, -1), z.reshape(3, -1) @ A)
    torch.testing.assert_close(op.matvec(x).reshape(3, -1), x.reshape(3, -1) @ A.T)
    torch.testing.assert_close(op.rmatvec(z).reshape(3, -1), z.reshape(3, -1) @ A)
    torch.testing.assert_close(op.T.dense(), A.T)


def test_dense_in_column_blocks(op):
    rows, cols = op.shape
    if cols < 2:
        pytest.skip("one column")
    A = op.dense()
    # a budget below cols * cols forces several blocks of columns; the matrix is the same
    chunked = LinearOperator.dense(op, max_entries=max(rows * cols, cols * (cols - 1)))
    torch.testing.assert_close(chunked, A, rtol=0, atol=0)


def test_adjoint_equals_autograd_vjp(op, device):
    """deepinv's check: the adjoint is torch.autograd's vector-Jacobian product."""
    x = _random(op.in_shape, 2, device, batch=2).requires_grad_(True)
    v = _random(op.out_shape, 3, device, batch=2)
    (op(x) * v).sum().backward()
    torch.testing.assert_close(x.grad, op.T(v))
    _, vjp = torch.func.vjp(op.matvec, x.detach())
    torch.testing.assert_close(vjp(v)[0], op.rmatvec(v))


def test_norm_sq_is_the_squared_spectral_norm(op):
    exact = torch.linalg.matrix_norm(op.dense(), 2).item() ** 2
    for A in (op, op.T):  # the power method approaches it from below
        estimate = A.norm_sq(n_iter=400, tol=0.0)
        assert estimate <= exact * (1 + 1e-12)
        assert estimate == pytest.approx(exact, rel=1e-3)


def test_batch_dims_unbatched_and_native_layout(op, device):
    x = _random(op.in_shape, 5, device, batch=6).reshape(2, 3, *op.in_shape)
    y = op(x)
    assert y.shape == (2, 3, *op.out_shape)
    torch.testing.assert_close(op(x[1, 2]), y[1, 2])
    torch.testing.assert_close(op @ x, y)  # A @ tensor is matvec
    xn = op.native_layout(x[0])
    assert torch.equal(xn, x[0])
    torch.testing.assert_close(op.matvec(xn), y[0])


def test_dottest_never_changes_the_operator(op):
    before = {k: v.clone() for k, v in op.state_dict().items()}
    dottest(op.to(torch.float32), dtype=torch.float64)
    assert op.dtype == torch.float32
    for k, v in op.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, before[k].float())


def test_operator_values_are_checked_but_matvec_does_not_scan(op, device):
    x = _random(op.in_shape, 6, device, batch=2)
    x[0] = math.nan
    name = op._in_name
    with pytest.raises(ValueError, match=f"{name} contains NaN or inf"):
        op(x)
    # matvec / rmatvec read metadata only (solvers loop on them): NaN propagates
    assert torch.isnan(op.matvec(x)[0]).any()
    z = _random(op.out_shape, 7, device, batch=2)
    z[1].view(-1)[-1] = math.inf
    with pytest.raises(ValueError, match=f"{op._out_name} contains NaN or inf"):
        op.adjoint(z)


def test_shape_errors_name_the_argument_and_both_shapes(op, device):
    bad = (*op.in_shape[:-1], op.in_shape[-1] + 1)
    x = _random(bad, 8, device, batch=4)
    expected = ", ".join(["...", *map(str, op.in_shape)])
    msg = f"{op._in_name}: expected shape ({expected}), got {(4, *bad)}"
    for fn in (op, op.matvec):
        with pytest.raises(ValueError) as info:
            fn(x)
        assert str(info.value) == msg
    with pytest.raises(ValueError, match="must be a real tensor"):
        op.matvec(torch.zeros(op.in_shape, dtype=torch.bool, device=device))
    with pytest.raises(ValueError, match=r"must be a torch\.Tensor"):
        op.rmatvec([1.0, 2.0])
    with pytest.raises(ValueError, match="meta"):  # another device than the operator's
        op.matvec(torch.empty((1, *op.in_shape), device="meta"))


def test_inputs_are_cast_to_the_operators_dtype(op, device):
    x = _random(op.in_shape, 9, device).float()
    assert op(x).dtype == f64
    torch.testing.assert_close(op(x), op(x.double()))


# ------------------------------------------------------------------ the algebra


def test_algebra_is_the_algebra_of_the_matrices(device):
    W1, W2 = _conv1d(device), _gauss(device, K=2, M=4, ell=2, input_size=9, seed=7)
    V = _gauss(device, K=4, M=3, ell=3, input_size=11, seed=8)
    A1, A2, AV = W1.dense(), W2.dense(), V.dense()
    assert isinstance(W2 @ W1, ProductOperator) and isinstance(W1 + V, SumOperator)
    assert isinstance(3 * W1, ScaledOperator) and isinstance(W1 * 3, ScaledOperator)
    assert isinstance(W1.T, AdjointOperator)
    torch.testing.assert_close((W2 @ W1).dense(), A2 @ A1)
    torch.testing.assert_close((W2 @ W1).T.dense(), (A2 @ A1).T)
    torch.testing.assert_close((W1.T @ W2.T).dense(), A1.T @ A2.T)
    torch.testing.assert_close((W1 + V).dense(), A1 + AV)
    torch.testing.assert_close((W1 - V).dense(), A1 - AV)
    torch.testing.assert_close((-W1).dense(), -A1)
    torch.testing.assert_close((0.5 * W1 * 4).dense(), 2 * A1)
    torch.testing.assert_close(((W2 @ W1).T @ W2).dense(), A1.T @ A2.T @ A2)


def test_algebra_errors():
    W1 = ConvOperator.gaussian(K=4, M=3, ell=3, input_size=11, seed=0)
    W2 = ConvOperator.gaussian(K=2, M=4, ell=2, input_size=8, seed=0)
    with pytest.raises(ValueError, match=r"A.in_shape \(4, 8\) must equal B.out_shape \(4, 9\)"):
        W2 @ W1
    with pytest.raises(ValueError, match="shapes differ"):
        W1 + W2
    with pytest.raises(ValueError, match="dtype or device"):
        W1 + ConvOperator(W1.weight.double(), 11)
    for c in (math.nan, math.inf, "2", True, torch.ones(2)):
        with pytest.raises(ValueError, match="scal"):
            W1 * c
    with pytest.raises(ValueError, match="LinearOperator"):
        W1 @ 3
    with pytest.raises(ValueError, match="LinearOperator"):
        W1 - torch.ones(3)
    with pytest.raises(ValueError, match="must be a LinearOperator"):
        ProductOperator(W1, W1.dense())


# ------------------------------------------------------------------ ConvOperator


@st.composite
def conv_setups(draw):
    ndim = draw(st.sampled_from([1, 2]))
    groups = draw(st.sampled_from([1, 1, 2]))
    K = groups * draw(st.integers(1, 3))
    M = groups * draw(st.integers(1, 2))
    ell = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    size = tuple(
        d * (e - 1) + 1 + draw(st.integers(0, 7)) for e, d in zip(ell, dilation, strict=True)
    )
    return dict(
        K=K, M=M, ell=ell, input_size=size, stride=stride, padding=padding, ndim=ndim,
        dilation=dilation, groups=groups,
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(conv_setups(), st.integers(0, 10_000))
def test_dot_test_random_shapes_strides_dilations_groups(setup, seed):
    W = ConvOperator.gaussian(**setup, seed=seed, dtype=f64)
    lhs, rhs = dottest(W, seed=seed)
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((2, *W.in_shape), generator=g, dtype=f64)
    conv = F.conv1d if W.ndim == 1 else F.conv2d
    ref = conv(x, W.weight, None, W.stride, W.padding, W.dilation, W.groups)
    torch.testing.assert_close(W(x), ref)
    assert W.T(W(x)).shape == x.shape
    A = W.dense()  # and the dense matrix is the operator's
    torch.testing.assert_close(W(x).reshape(2, -1), x.reshape(2, -1) @ A.T)


def test_dense_is_the_papers_matrix():
    """Rows are the shifted filters: row (i, j) holds w_{i,m} at offset j*t in channel m."""
    W = ConvOperator.gaussian(K=2, M=3, ell=3, input_size=9, stride=2, seed=0, dtype=f64)
    A = W.dense()
    n, D = 4, 9
    assert W.output_size == (n,) and A.shape == (2 * n, 3 * D)
    for i in range(2):
        for j in range(n):
            expected = torch.zeros(3, D, dtype=f64)
            expected[:, 2 * j : 2 * j + 3] = W.weight[i]
            torch.testing.assert_close(A[i * n + j].view(3, D), expected)


def test_dilated_matrix_rows_skip_inputs():
    W = ConvOperator.gaussian(K=1, M=1, ell=3, input_size=9, dilation=2, seed=0, dtype=f64)
    A = W.dense()
    assert W.output_size == (5,)  # n = (D - (a(ell-1)+1))/t + 1
    expected = torch.zeros(9, dtype=f64)
    expected[[1, 3, 5]] = W.weight[0, 0]
    torch.testing.assert_close(A[1], expected)


def test_grouped_W_is_block_diagonal():
    W = ConvOperator.gaussian(K=4, M=6, ell=3, input_size=8, groups=2, seed=0, dtype=f64)
    assert W.M == 6 and W.weight.shape == (4, 3, 3) and W.in_shape == (6, 8)
    A = W.dense().view(4, 6, 6, 8)  # (filter, shift, channel, position)
    assert bool((A[:2, :, 3:] == 0).all()) and bool((A[2:, :, :3] == 0).all())
    assert bool((A[:2, :, :3] != 0).any()) and bool((A[2:, :, 3:] != 0).any())


def test_paper_n_and_shape():
    W = ConvOperator.gaussian(K=96, M=32, ell=5, input_size=32, seed=0)
    assert W.output_size == (28,)  # n = (D - l)/t + 1
    assert W.shape == (96 * 28, 32 * 32)
    W2 = ConvOperator.gaussian(K=4, M=2, ell=3, input_size=11, stride=2)
    assert W2.output_size == (5,)


def test_gaussian_scaling_and_seed():
    a = ConvOperator.gaussian(K=64, M=16, ell=5, input_size=20, seed=3)
    b = ConvOperator.gaussian(K=64, M=16, ell=5, input_size=20, seed=3)
    c = ConvOperator.gaussian(K=64, M=16, ell=5, input_size=20, seed=4)
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)
    # variance 1/(M l): E ||row||^2 = 1 (Lemma A.1)
    assert a.weight.var().item() == pytest.approx(1 / (16 * 5), rel=0.05)
    w2 = ConvOperator.gaussian(K=64, M=8, ell=3, input_size=(9, 9), seed=0)
    assert w2.weight.var().item() == pytest.approx(1 / (8 * 9), rel=0.1)
    g = ConvOperator.gaussian(K=256, M=16, ell=5, input_size=20, groups=4, seed=0)
    assert g.weight.var().item() == pytest.approx(1 / (4 * 5), rel=0.1)  # fan-in M/groups
    u = ConvOperator.gaussian(K=8, M=4, ell=3, input_size=10, unit_norm_rows=True, seed=0)
    row_norms = u.dense().norm(dim=1)
    torch.testing.assert_close(row_norms, torch.ones_like(row_norms))


def test_generator_is_used_and_global_rng_untouched():
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(7)
    ConvOperator.gaussian(K=3, M=2, ell=3, input_size=8, generator=g)
    assert torch.equal(torch.rand(1), before)


def test_from_conv_matches_torch_layer():
    conv = torch.nn.Conv2d(3, 6, 3, stride=2, padding=1, bias=False)
    W = ConvOperator.from_conv(conv, (11, 10))
    x = torch.randn(4, 3, 11, 10)
    torch.testing.assert_close(W(x), conv(x).detach())
    conv1 = torch.nn.Conv1d(2, 4, 5, bias=True)
    W1 = ConvOperator.from_conv(conv1, 20)
    x1 = torch.randn(2, 2, 20)
    torch.testing.assert_close(W1(x1), conv1(x1).detach() - conv1.bias.detach()[:, None])


@pytest.mark.parametrize(
    "conv",
    [
        torch.nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2, bias=False),
        torch.nn.Conv2d(4, 4, (3, 5), padding="same", groups=4, bias=False),  # depthwise
        torch.nn.Conv1d(3, 6, 3, padding="same", dilation=3, bias=False),
        torch.nn.Conv1d(3, 6, 4, padding="valid", stride=2, bias=False),
    ],
)
def test_from_conv_groups_dilation_and_same_padding(conv):
    size = (9, 10) if isinstance(conv, torch.nn.Conv2d) else 12
    W = ConvOperator.from_conv(conv, size)
    x = torch.randn(2, *W.in_shape)
    torch.testing.assert_close(W(x), conv(x).detach())
    lhs, rhs = dottest(W)
    assert lhs == pytest.approx(rhs, rel=1e-10)


@pytest.mark.parametrize(
    "conv",
    [
        torch.nn.Conv1d(3, 4, 5, stride=2, padding=2, padding_mode="circular", bias=False),
        torch.nn.Conv1d(2, 3, 3, padding=3, dilation=2, padding_mode="circular", bias=False),
        torch.nn.Conv2d(3, 4, (3, 4), stride=(1, 3), padding=(1, 2), padding_mode="circular"),
        torch.nn.Conv2d(4, 4, 3, padding=1, groups=2, padding_mode="circular", bias=False),
    ],
)
def test_circular_padding_is_torchs_and_its_adjoint_exact(conv):
    """W(x) is torch's circular convolution, W.T its autograd adjoint (dot test too), and
    the dense matrix is block-circulant: every row holds a whole, wrapped filter."""
    conv = conv.double()
    if conv.bias is not None:
        torch.nn.init.zeros_(conv.bias)
    size = (9, 8) if isinstance(conv, torch.nn.Conv2d) else 10
    W = ConvOperator.from_conv(conv, size)
    assert W.padding_mode == "circular" and "circular" in repr(W)
    x = torch.randn(2, *W.in_shape, dtype=f64, requires_grad=True)
    y = conv(x)
    torch.testing.assert_close(W(x.detach()), y.detach())
    v = torch.randn_like(y)
    (grad,) = torch.autograd.grad((y * v).sum(), x)
    torch.testing.assert_close(W.T(v), grad)
    lhs, rhs = dottest(W)
    assert lhs == pytest.approx(rhs, rel=1e-10)
    A = W.dense()
    norms = A.norm(dim=1).view(W.K, -1)  # every row of a filter has the filter's norm
    per_filter = conv.weight.detach().flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, per_filter[:, None].expand_as(norms))
    assert W.unit_norm_filters().padding_mode == "circular"


def test_circular_padding_kernels_and_refusals():
    x = torch.arange(5.0).view(1, 1, 5)
    torch.testing.assert_close(
        functional.pad_circular(x, 2), torch.tensor([[[3.0, 4, 0, 1, 2, 3, 4, 0, 1]]])
    )
    g = torch.Generator().manual_seed(0)
    for shape, pad in (((2, 3, 7), (3,)), ((2, 3, 5, 6), (2, 1)), ((1, 2, 4, 4), (0, 4))):
        u = torch.randn(shape, generator=g, dtype=f64)
        p = functional.pad_circular(u, pad)
        v = torch.randn(p.shape, generator=g, dtype=f64)
        back = functional.pad_circular_adjoint(v, pad)
        assert back.shape == u.shape
        assert float((p * v).sum()) == pytest.approx(float((u * back).sum()), rel=1e-12)
    with pytest.raises(ValueError, match="wraps more than once"):
        functional.pad_circular(x, 6)
    with pytest.raises(ValueError, match="not a map circularly padded"):
        functional.pad_circular_adjoint(x, 2)
    with pytest.raises(ValueError, match="padding must be"):
        functional.pad_circular(x, -1)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        ConvOperator(torch.randn(2, 1, 3), 8, padding=1, padding_mode="reflect")
    with pytest.raises(ValueError, match="larger than input_size"):
        ConvOperator(torch.randn(2, 1, 3), 4, padding=5, padding_mode="circular")


def test_from_conv_refusals():
    with pytest.raises(ValueError, match="padding_mode 'reflect'"):
        ConvOperator.from_conv(torch.nn.Conv1d(2, 2, 3, padding=1, padding_mode="reflect"), 8)
    with pytest.raises(ValueError, match="pads unevenly"):
        ConvOperator.from_conv(torch.nn.Conv1d(2, 2, 4, padding="same"), 8)
    with pytest.raises(ValueError, match="conv must be"):
        ConvOperator.from_conv(torch.nn.Linear(2, 2), 8)


def test_orthonormal_conv():
    W = ConvOperator.orthonormal(M=3, ell=4, input_size=12, seed=0)
    A = W.dense()
    assert A.shape == (36, 36)
    torch.testing.assert_close(A.T @ A, torch.eye(36, dtype=f64))


def test_norm_sq_checks_its_parameters():
    W = ConvOperator.gaussian(K=6, M=3, ell=3, input_size=12, seed=1, dtype=f64)
    exact = torch.linalg.matrix_norm(W.dense(), 2).item() ** 2
    assert W.norm_sq(n_iter=500, tol=1e-12) == pytest.approx(exact, rel=1e-6)
    assert W.norm_sq(n_iter=1) > 0
    for n_iter in (0, -1, 2.5, True):  # n_iter=0 used to return 0.0 silently
        with pytest.raises(ValueError, match="n_iter"):
            W.norm_sq(n_iter=n_iter)
    with pytest.raises(ValueError, match="tol"):
        W.norm_sq(tol=-1.0)


def test_unit_norm_filters():
    W = ConvOperator.gaussian(K=5, M=2, ell=(3, 3), input_size=(8, 8), padding=1, seed=0)
    U = W.unit_norm_filters()
    norms = U.weight.flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    assert (U.input_size, U.stride, U.padding) == (W.input_size, W.stride, W.padding)
    w = W.weight.clone()
    w[2] = 0
    with pytest.raises(ValueError, match="all-zero filter"):
        ConvOperator(w, (8, 8), padding=1).unit_norm_filters()


def test_weight_is_a_buffer_changes_are_seen(device):
    """No cached copy of the filters: .to(), in-place changes and load_state_dict are seen."""
    W = ConvOperator.gaussian(K=2, M=2, ell=3, input_size=8, device=device)
    x = torch.randn(2, 2, 8, device=device)
    y = W(x)
    W.weight.mul_(2)
    torch.testing.assert_close(W(x), 2 * y)
    W.load_state_dict({"weight": torch.zeros_like(W.weight)})
    assert bool((W(x) == 0).all())
    W64 = W.to(f64)
    assert W64.weight.dtype == f64 and W64(torch.randn(2, 8, device=device)).dtype == f64
    assert "weight" in dict(W.named_buffers())


def test_weight_is_stored_in_the_compute_layout_as_a_copy():
    w = torch.randn(4, 3, 3, 3)
    W = ConvOperator(w, (8, 8))
    assert torch.equal(W.weight, w) and W.weight.data_ptr() != w.data_ptr()
    assert W.weight.is_contiguous(memory_format=torch.channels_last)  # on the CPU
    w1 = torch.randn(4, 3, 5)
    W1 = ConvOperator(w1, 9)
    assert torch.equal(W1.weight, w1)
    assert W1.weight.unsqueeze(2).is_contiguous(memory_format=torch.channels_last)
    w1.zero_()  # the caller's tensor is not the buffer
    assert bool((W1.weight != 0).any())


def test_matrix_operator_shapes():
    A = torch.randn(6, 4, dtype=f64)
    op = MatrixOperator(A)
    assert (op.in_shape, op.out_shape) == ((4,), (6,))
    shaped = MatrixOperator(A, (2, 2), (3, 2))
    x = torch.randn(5, 2, 2, dtype=f64)
    torch.testing.assert_close(shaped(x).reshape(5, 6), op(x.reshape(5, 4)))
    with pytest.raises(ValueError, match="in_shape"):
        MatrixOperator(A, (3, 2))
    with pytest.raises(ValueError, match="matrix must be a 2-d"):
        MatrixOperator(torch.randn(3))
    with pytest.raises(ValueError, match="floating-point"):
        MatrixOperator(torch.ones(3, 3, dtype=torch.long))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(K=2, M=2, ell=5, input_size=32, stride=2), "stride=2"),
        (dict(K=2, M=2, ell=5, input_size=3), "smaller than the filter"),
        (dict(K=0, M=2, ell=3, input_size=8), "K must be"),
        (dict(K=True, M=2, ell=3, input_size=8), "K must be"),
        (dict(K=2, M=2, ell=3, input_size=8, padding="same"), "padding"),
        (dict(K=2, M=2, ell=3, input_size=8, stride=0), "stride must be positive"),
        (dict(K=2, M=2, ell=3, input_size=8, stride=1.5), "stride must be an integer"),
        (dict(K=2, M=2, ell=3, input_size=10.5), "input_size must be an integer"),
        (dict(K=2, M=2, ell=2.5, input_size=8), "ell must be an integer"),
        (dict(K=2, M=2, ell=(3, 3), input_size=8, ndim=1), "ell must have 1"),
        (dict(K=4, M=3, ell=3, input_size=8, groups=2), "groups=2 must divide"),
        (dict(K=2, M=2, ell=3, input_size=8, dilation=0), "dilation must be positive"),
        (dict(K=2, M=2, ell=3, input_size=8, dilation=5), "smaller than the filter"),
        (dict(K=2, M=2, ell=3, input_size=8, dtype=torch.int64), "floating-point"),
        (dict(K=2, M=2, ell=3, input_size=8, device="tpu"), "device 'tpu'"),
        (dict(K=2, M=2, ell=3, input_size=8, device="cuda:7"), "cuda:7"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvOperator.gaussian(**kwargs)


def test_bad_weights_and_orthonormal_sizes():
    with pytest.raises(ValueError, match="weight contains NaN"):
        ConvOperator(torch.full((2, 2, 3), math.inf), 8)
    with pytest.raises(ValueError, match="floating-point"):
        ConvOperator(torch.ones((2, 2, 3), dtype=torch.int64), 8)
    with pytest.raises(ValueError, match="empty"):
        ConvOperator(torch.ones((0, 2, 3)), 8)
    with pytest.raises(ValueError, match="ell must be a positive"):
        ConvOperator.orthonormal(M=2, ell=0, input_size=8)
    with pytest.raises(ValueError, match="M must be a positive"):
        ConvOperator.orthonormal(M=0, ell=2, input_size=8)


def test_dottest_checks_its_arguments():
    W = ConvOperator.gaussian(K=2, M=2, ell=3, input_size=8)
    for bad in (W.weight, "W", None):
        with pytest.raises(ValueError, match="op must be a LinearOperator"):
            dottest(bad)
    for batch in (0, -1, 1.5):
        with pytest.raises(ValueError, match="batch"):
            dottest(W, batch=batch)
    with pytest.raises(ValueError, match="dtype"):
        dottest(W, dtype=torch.int64)


def test_dense_refuses_vgg_size():
    W = ConvOperator.gaussian(K=512, M=512, ell=(3, 3), input_size=(14, 14), padding=1)
    with pytest.raises(ValueError, match="max_entries"):
        W.dense()


# ------------------------------------------------------------------ functional kernels


@pytest.mark.parametrize("ndim", [1, 2])
def test_functional_kernels_equal_torch_and_compute_channels_last(ndim):
    g = torch.Generator().manual_seed(0)
    size = (13,) if ndim == 1 else (9, 10)
    x = torch.randn((2, 4, *size), generator=g)
    w = torch.randn((6, 2, *([3] * ndim)), generator=g)
    conv = F.conv1d if ndim == 1 else F.conv2d
    conv_t = F.conv_transpose1d if ndim == 1 else F.conv_transpose2d
    z = functional.conv(x, w, stride=2, padding=1, dilation=2, groups=2)
    torch.testing.assert_close(z, conv(x, w, None, 2, 1, 2, 2))
    back = functional.conv_transpose(z, w, stride=2, padding=1, dilation=2, groups=2)
    torch.testing.assert_close(back, conv_t(z, w, None, 2, 1, 0, 2, 2))
    if ndim == 2:
        assert z.is_contiguous(memory_format=torch.channels_last)
    else:
        assert z.unsqueeze(2).is_contiguous(memory_format=torch.channels_last)
    assert functional.channels_last(x).stride() != x.stride()
    assert torch.equal(functional.channels_last(x), x)


def test_functional_errors():
    x, w = torch.randn(2, 4, 10), torch.randn(3, 4, 3)
    with pytest.raises(ValueError, match="x must have 8 channels"):
        functional.conv(x, torch.randn(4, 4, 3), groups=2)
    with pytest.raises(ValueError, match="groups=2 must divide"):
        functional.conv(torch.randn(2, 8, 10), w, groups=2)
    with pytest.raises(ValueError, match="same dtype"):
        functional.conv(x.double(), w)
    with pytest.raises(ValueError, match="shorter than the filters"):
        functional.conv(torch.randn(2, 4, 2), w)
    with pytest.raises(ValueError, match="output_padding"):
        functional.conv_transpose(torch.randn(2, 3, 5), w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="stride must be positive"):
        functional.conv(x, w, stride=0)


def test_circular_layers_refuse_the_zero_padding_shortcuts_and_still_get_a_safe_step():
    """The DFT bound and the sparse products assume zero padding: a circular layer refuses
    them by name, and its default norm estimate (Lanczos, with its 2% margin) is a safe step."""
    from cnninv.operators import ConvOperator

    W = ConvOperator.gaussian(6, 3, (3,), (16,), padding=1, seed=0)
    Wc = ConvOperator(W.weight, (16,), padding=1, padding_mode="circular")
    with pytest.raises(ValueError, match="circular"):
        Wc.norm_sq_bound()
    with pytest.raises(ValueError, match="circular"):
        Wc.sparse_kernels()
    dense = torch.stack([Wc.matvec(e.view(1, 3, 16))[0].flatten() for e in torch.eye(48)], 1)
    exact = torch.linalg.matrix_norm(dense.double(), 2).item() ** 2
    est = Wc.norm_sq_estimate()
    assert exact * (1 - 1e-5) <= est.value <= 1.03 * exact and est.method == "lanczos"
