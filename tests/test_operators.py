import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnninv.operators import ConvOperator, MatrixOperator, dottest


@st.composite
def conv_setups(draw):
    ndim = draw(st.sampled_from([1, 2]))
    K = draw(st.integers(1, 4))
    M = draw(st.integers(1, 3))
    ell = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(ndim))
    size = tuple(e + draw(st.integers(0, 7)) for e in ell)
    return dict(K=K, M=M, ell=ell, input_size=size, stride=stride, padding=padding, ndim=ndim)


@settings(max_examples=60, deadline=None)
@given(conv_setups(), st.integers(0, 10_000))
def test_dot_test_random_shapes_and_strides(setup, seed):
    W = ConvOperator.gaussian(**setup, seed=seed, dtype=torch.float64)
    lhs, rhs = dottest(W, seed=seed)
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


@settings(max_examples=30, deadline=None)
@given(conv_setups(), st.integers(0, 10_000))
def test_dense_equals_operator(setup, seed):
    W = ConvOperator.gaussian(**setup, seed=seed, dtype=torch.float64)
    A = W.dense()
    assert A.shape == W.shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((3, *W.in_shape), generator=g, dtype=torch.float64)
    z = torch.randn((3, *W.out_shape), generator=g, dtype=torch.float64)
    torch.testing.assert_close(W(x).reshape(3, -1), x.reshape(3, -1) @ A.T)
    torch.testing.assert_close(W.T(z).reshape(3, -1), z.reshape(3, -1) @ A)
    torch.testing.assert_close(W.T.dense(), A.T)


def test_dense_is_the_papers_matrix():
    """Rows are the shifted filters: row (i, j) holds w_{i,m} at offset j*t in channel m."""
    W = ConvOperator.gaussian(K=2, M=3, ell=3, input_size=9, stride=2, seed=0, dtype=torch.float64)
    A = W.dense()
    n, D = 4, 9
    assert W.output_size == (n,) and A.shape == (2 * n, 3 * D)
    for i in range(2):
        for j in range(n):
            expected = torch.zeros(3, D, dtype=torch.float64)
            expected[:, 2 * j : 2 * j + 3] = W.weight[i]
            torch.testing.assert_close(A[i * n + j].view(3, D), expected)


def test_adjoint_agrees_with_autograd():
    W = ConvOperator.gaussian(K=5, M=3, ell=(3, 2), input_size=(8, 7), stride=(2, 3), padding=1)
    x = torch.randn(2, *W.in_shape, requires_grad=True)
    v = torch.randn(2, *W.out_shape)
    (W(x) * v).sum().backward()
    torch.testing.assert_close(x.grad, W.T(v))


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


def test_orthonormal_conv():
    W = ConvOperator.orthonormal(M=3, ell=4, input_size=12, seed=0)
    A = W.dense()
    assert A.shape == (36, 36)
    torch.testing.assert_close(A.T @ A, torch.eye(36, dtype=torch.float64))


def test_norm_sq_power_method():
    W = ConvOperator.gaussian(K=6, M=3, ell=3, input_size=12, seed=1, dtype=torch.float64)
    exact = torch.linalg.matrix_norm(W.dense(), 2).item() ** 2
    assert W.norm_sq(n_iter=500, tol=1e-12) == pytest.approx(exact, rel=1e-6)


def test_batch_dims_and_unbatched():
    W = ConvOperator.gaussian(K=4, M=2, ell=3, input_size=(6, 6))
    x = torch.randn(2, 3, 2, 6, 6)
    assert W(x).shape == (2, 3, 4, 4, 4)
    torch.testing.assert_close(W(x[0, 1]), W(x)[0, 1])
    assert W.T(W(x)).shape == x.shape


def test_device_and_dtype_follow_to():
    W = ConvOperator.gaussian(K=2, M=2, ell=3, input_size=8).to(torch.float64)
    assert W.weight.dtype == torch.float64
    assert W(torch.randn(2, 8)).dtype == torch.float64


def test_dottest_leaves_operator_unchanged():
    W = ConvOperator.gaussian(K=2, M=2, ell=3, input_size=8)
    dottest(W)
    assert W.weight.dtype == torch.float32


def test_matrix_operator():
    A = torch.randn(5, 3, dtype=torch.float64)
    op = MatrixOperator(A)
    lhs, rhs = dottest(op)
    assert lhs == pytest.approx(rhs)
    with pytest.raises(ValueError, match="Dimension mismatch"):
        op(torch.randn(4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(K=2, M=2, ell=5, input_size=32, stride=2), "stride=2"),
        (dict(K=2, M=2, ell=5, input_size=3), "smaller than the filter"),
        (dict(K=0, M=2, ell=3, input_size=8), "K must be"),
        (dict(K=2, M=2, ell=3, input_size=8, padding="same"), "padding"),
        (dict(K=2, M=2, ell=3, input_size=8, stride=0), "stride must be positive"),
        (dict(K=2, M=2, ell=(3, 3), input_size=8, ndim=1), "ell must have 1"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvOperator.gaussian(**kwargs)


def test_channel_mismatch_and_nan():
    W = ConvOperator.gaussian(K=2, M=3, ell=3, input_size=8)
    with pytest.raises(ValueError, match="Dimension mismatch: x"):
        W(torch.randn(1, 2, 8))
    with pytest.raises(ValueError, match="Dimension mismatch: z"):
        W.T(torch.randn(1, 2, 5))
    x = torch.randn(1, 3, 8)
    x[0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        W(x)
    with pytest.raises(ValueError, match="weight contains NaN"):
        ConvOperator(torch.full((2, 2, 3), math.inf), 8)


def test_dense_refuses_vgg_size():
    W = ConvOperator.gaussian(K=512, M=512, ell=(3, 3), input_size=(14, 14), padding=1)
    with pytest.raises(ValueError, match="max_entries"):
        W.dense()
