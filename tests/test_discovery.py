"""Discovery of every convolution in models of every kind, in Python and as TorchScript:
the layers found, their properties, folded batch norm against the module, dot tests of
every discovered W."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from zoo import AudioNet, Conv1dNet, PReLUNet, ResNetBlock, randomise_batch_norm

from cnninv.models.discovery import discover, record_ops
from cnninv.operators import dottest

# torch.jit.trace / script are deprecated in favour of torch.export, but real TorchScript
# archives exist and must be read
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


CASES = {
    "resnet": (lambda: randomise_batch_norm(ResNetBlock()), (1, 3, 16, 16)),
    "audio": (AudioNet, (1, 1, 64, 1)),
    "prelu": (PReLUNet, (1, 3, 24, 24)),
    "conv1d": (Conv1dNet, (1, 2, 40)),
}


def _as(kind: str, model: nn.Module, x: torch.Tensor) -> nn.Module:
    if kind == "python":
        return model
    if kind == "traced":
        return torch.jit.trace(model, x)
    return torch.jit.script(model)


@pytest.fixture(params=["python", "traced", "scripted"])
def flavour(request):
    return request.param


def _found(case: str, flavour: str):
    make, shape = CASES[case]
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    return model, discover(_as(flavour, model, x), x), x


def test_resnet_block(flavour):
    _, found, _ = _found("resnet", flavour)
    by = {layer.name: layer for layer in found.layers}
    assert list(by) == ["stem", "c1", "c2", "dw", "grouped"]
    stem, c1, c2, dw, grouped = by.values()
    assert stem.stride == (2, 2) and stem.in_shape == (3, 16, 16) and stem.out_shape == (8, 8, 8)
    assert stem.batch_norm is not None and stem.activation == "relu"
    assert stem.residual  # its output is also the skip connection
    assert c1.batch_norm is not None and not c1.residual
    assert c2.residual and c2.activation == "relu"  # relu after the sum
    assert dw.dilation == (2, 2) and dw.groups == 8 and dw.batch_norm is None
    assert grouped.groups == 2 and grouped.pool.kind == "avg" and not grouped.pool.overlapping
    assert all(layer.kind == "conv2d" for layer in found.layers)


def test_audio_net_with_singleton_width_and_functional_calls(flavour):
    _, found, _ = _found("audio", flavour)
    c1, c2 = found.layers
    assert c1.kind == "conv2d (1-d, one wide)" and c1.singleton_axis == 1
    assert c1.pre_pad == ("constant_pad_nd", [0, 0, 1, 2])
    assert c1.in_shape == (1, 67, 1) and c1.stride == (2, 1)
    assert c1.activation == "relu" and c1.pool.kind == "max" and c1.pool.kernel == (2, 1)
    # (67 + 8 - 9) // 2 + 1 = 34 outputs of c1, pooled by 2
    assert c2.in_shape == (4, 17, 1) and c2.pool.stride == (2, 1)


def test_prelu_net_with_overlapping_ceil_pool(flavour):
    _, found, _ = _found("prelu", flavour)
    conv1, conv2 = found.layers
    assert conv1.activation == "prelu" and conv2.activation == "prelu"
    pool = conv1.pool
    assert pool.kind == "max" and pool.kernel == (3, 3) and pool.stride == (2, 2)
    assert pool.ceil_mode and pool.overlapping
    assert conv2.in_shape == (10, 11, 11)  # ceil mode: 22 -> 11
    assert conv2.pool is None


def test_conv1d_net(flavour):
    _, found, _ = _found("conv1d", flavour)
    a, b = found.layers
    assert a.kind == "conv1d" and a.stride == (2,) and a.out_shape == (6, 18)
    assert a.activation == "leaky_relu" and a.activation_args == [0.2]
    assert a.pool.kind == "max" and a.pool.kernel == (2,)  # a 1-d pool, run as 2-d inside
    assert b.activation == "gelu" and b.in_shape == (6, 9)


@pytest.mark.parametrize("case", list(CASES))
def test_every_discovered_w_passes_the_dot_test_and_is_the_layer(case):
    """W is adjoint-consistent, and W x + b is what the model computed at that layer: the
    convolution's output, or the batch norm's when it was folded in."""
    model, found, x = _found(case, "python")
    ops = record_ops(model, x)
    for layer in found.layers:
        W = layer.operator(dtype=torch.float64)
        lhs, rhs = dottest(W)
        assert lhs == pytest.approx(rhs, rel=1e-10), layer.name
        x_in = ops[layer.op_index].tensors[0].double()
        after = (
            layer.op_index + 1
            if layer.batch_norm is None
            else next(i for i in range(layer.op_index + 1, len(ops)) if "batch_norm" in ops[i].name)
        )
        want = ops[layer.op_index if layer.batch_norm is None else after].outputs[0]
        got = W(x_in)
        if layer.bias is not None:
            got = got + layer.bias.double().view(1, -1, *([1] * layer.ndim))
        torch.testing.assert_close(got.float(), want, rtol=1e-4, atol=1e-5, msg=layer.name)


def test_folded_batch_norm_equals_the_module():
    model = randomise_batch_norm(ResNetBlock(), seed=3)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    found = discover(model, x[:1])
    stem = found.layer("stem")
    with torch.no_grad():
        want = model.bn0(model.stem(x))
        W = stem.operator()
        got = W(x) + stem.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_no_convolution_and_a_failing_forward_are_clear_errors():
    with pytest.raises(ValueError, match="no convolution"):
        discover(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), torch.randn(1, 3, 2, 2))
    match = r"forward pass failed on an input of shape \(1, 5, 8, 8\)"
    with pytest.raises(ValueError, match=match):
        discover(nn.Conv2d(3, 4, 3), torch.randn(1, 5, 8, 8))
    found = discover(nn.Conv2d(3, 4, 3), torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="not a convolution of this model"):
        found.layer("nope")


def test_vgg16_and_alexnet_are_found_with_their_pools():
    from cnninv.models import build_model

    vgg = build_model("vgg16")
    vgg.classifier = nn.Sequential()
    found = discover(vgg.eval(), torch.randn(1, 3, 64, 64))
    assert len(found.layers) == 13
    pooled = [layer.name for layer in found.layers if layer.pool is not None]
    assert pooled == ["features.2", "features.7", "features.14", "features.21", "features.28"]
    assert all(layer.activation == "relu" for layer in found.layers)
    alex = build_model("alexnet").eval()
    found = discover(alex, torch.randn(1, 3, 224, 224))
    assert found.layers[0].stride == (4, 4)
    assert all(
        layer.pool.overlapping for layer in found.layers if layer.pool is not None
    )  # AlexNet's 3×3/2 pools
