"""`analyze_model` and `cnninv analyze` on models of every kind: what each layer gets,
the assumptions said, the same numbers as the dedicated Table 2/3 experiments on VGG16,
real third-party networks through the command line, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from zoo import AudioNet, PReLUNet, ResNetBlock, randomise_batch_norm

from cnninv import analyze_model
from cnninv.cli import main
from cnninv.theory import coherence

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TINY = dict(samples=8, iht_iters=20, max_activations=2, alg2_samples=1, alg2_iters=5)
KEYS = (
    "kind", "in_shape", "out_shape", "stride", "activation", "pool", "density_percent",
    "coherence", "coherence_gaussian", "rip_ratio", "rip_ratio_gaussian", "delta_lower",
    "iht_error_by_iter", "assumptions",
)  # fmt: skip


def _holds(layer: dict, words: str) -> bool | None:
    found = [a["holds"] for a in layer["assumptions"] if words in a["text"]]
    assert found, f"no assumption mentions {words!r}: {layer['assumptions']}"
    return found[0]


def test_every_layer_gets_every_field_and_its_assumptions():
    torch.manual_seed(0)
    model = randomise_batch_norm(ResNetBlock())
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    result = analyze_model(model, x, **TINY)
    layers = result.layers
    assert list(layers) == ["stem", "c1", "c2", "dw", "grouped"]
    for name, layer in layers.items():
        assert all(k in layer for k in KEYS), name
        assert len(layer["iht_error_by_iter"]) == 20
        assert {"p01", "p50", "p99"} <= set(layer["rip_ratio"])
        assert 0 <= layer["density_percent"] <= 100
    assert _holds(layers["c2"], "residual sum") is False
    assert _holds(layers["stem"], "batch norm folded") is True
    assert _holds(layers["dw"], "dilation") is True and "block-diagonal" not in str(
        layers["c1"]["assumptions"]
    )
    assert _holds(layers["grouped"], "block-diagonal") is True
    assert _holds(layers["grouped"], "average pooling") is False
    assert _holds(layers["c1"], "no pooling") is False
    # densities are of the ReLU outputs, measured by hand
    with torch.no_grad():
        h = torch.relu(model.bn0(model.stem(x)))
    assert layers["stem"]["density_percent"] == pytest.approx(float((h != 0).double().mean()) * 100)
    frame = result.to_frame()
    assert list(frame.index) == list(layers) and "iht_error_20" in frame.columns
    json.dumps(result.to_dict())


def test_delta_analysis_brackets_every_layer_and_is_not_run_by_default():
    """The optional "delta" analysis: a bracket per layer whose lower end is attained (the
    returned support, recomputed from the layer's W), Babel above it."""
    from cnninv.analysis import DEFAULT_ANALYSES
    from cnninv.theory import support_delta

    assert "delta" not in DEFAULT_ANALYSES
    torch.manual_seed(0)
    model = randomise_batch_norm(ResNetBlock())
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    found = analyze_model(model, x, analyses=("delta",), delta_samples=4, delta_iters=4)
    assert "delta" not in analyze_model(model, x, analyses=("density",)).layers["stem"]
    from cnninv.models.discovery import discover

    layers = {c.name: c for c in discover(model, x[:1]).layers}
    for name, layer in found.layers.items():
        d = layer["delta"]
        for key in ("delta_k", "delta_2k"):
            b = d[key]
            assert b["lower_sampled"] <= b["lower_search"] <= b["upper_babel"] + 1e-9
            assert b["upper_babel"] <= b["upper_coherence"] + 1e-9
        assert d["delta_2k"]["lower_search"] >= d["delta_k"]["lower_search"]
        W = layers[name].operator().unit_norm_filters()
        w = d["worst_support"]["delta_k"]
        lo, hi = support_delta(W, torch.tensor([w["support"]]))[0].tolist()
        attained = hi - 1 if w["side"] == "upper" else 1 - lo
        assert d["delta_k"]["lower_search"] <= attained + 1e-6
    json.dumps(found.to_dict())


def test_prelu_and_overlapping_pooling_are_said_to_fail():
    torch.manual_seed(0)
    result = analyze_model(PReLUNet().eval(), torch.randn(3, 3, 24, 24), **TINY)
    conv1 = result.layers["conv1"]
    assert _holds(conv1, "prelu does not produce zeros") is False
    assert _holds(conv1, "overlapping max pooling") is False
    assert conv1["blocks"]["pool"] == 1  # plain k-sparsity instead
    assert conv1["density_percent"] == pytest.approx(100.0)


def test_iht_error_falls_with_iterations_and_one_step_is_the_layer():
    torch.manual_seed(0)
    model = AudioNet().eval()
    x = torch.randn(4, 1, 64, 1)
    layer = analyze_model(model, x, **TINY).layers["c1"]
    errs = layer["iht_error_by_iter"]
    assert errs[-1] < errs[0]
    assert _holds(layer, "non-overlapping max pooling") is True
    assert layer["blocks"]["pool"] == [2, 1]
    # the paper's one step by hand: W^T M(W f, k), rescaled to ||f||, W unit-norm filters
    from cnninv.models.discovery import discover
    from cnninv.sparsity import model_sparse

    found = discover(model, x[:1])
    W = found.layers[0].operator().unit_norm_filters()
    f = torch.nn.functional.pad(x, (0, 0, 1, 2))[:2]
    f_hat = W.T(model_sparse(W(f), layer["k"], (2, 1)).code)
    f_hat = f_hat * (f.flatten(1).norm(dim=1) / f_hat.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)
    err = ((f_hat - f).flatten(1).norm(dim=1) / f.flatten(1).norm(dim=1)).mean()
    assert layer["iht_error_one_step"] == pytest.approx(float(err), rel=1e-4)


def test_vgg16_through_the_generic_path_gives_table2_and_table3():
    """The generic analysis of VGG16 measures what the dedicated experiments measure."""
    from cnninv.analysis import activation_sparsity, filter_coherence
    from cnninv.data import default_images, load_images
    from cnninv.models import load_network, qualified_name, sparsity_layers

    net = load_network("vgg16", "imagenet", features_only=True)
    x, _ = load_images(default_images()[:2], net.convention)
    names = ["features.0", "features.28"]  # conv1_1 and conv5_3
    result = analyze_model(net.model, x, names, analyses=("density", "coherence"))
    pairs = dict(sparsity_layers(net.model))
    table2 = activation_sparsity(
        net.model, x, [(n, qualified_name(net.model, pairs[n])) for n in ("conv1_1", "conv5_3")]
    )
    assert result.layers["features.0"]["density_percent"] == pytest.approx(table2["conv1_1"])
    assert result.layers["features.28"]["density_percent"] == pytest.approx(table2["conv5_3"])
    # Table 3 seeds the Gaussian filters of the i-th convolution with seed + i
    for name, i in (("features.0", 0), ("features.28", 12)):
        conv = net.model.get_submodule(name)
        want = filter_coherence(conv.weight, stride=1, seed=i)
        got = result.layers[name]
        assert got["coherence"]["noshift"] == pytest.approx(want["learned_noshift"])
        assert got["coherence"]["shift"] == pytest.approx(want["learned_shift"])
        assert got["coherence_gaussian"]["noshift"] == pytest.approx(want["random_noshift"])
    assert result.layers["features.28"]["pool"]["kind"] == "max"
    assert "rip_ratio" not in result.layers["features.0"]  # not asked for


def test_grouped_layers_coherence_counts_filters_of_other_groups_as_orthogonal():
    conv = nn.Conv2d(4, 4, 3, groups=2, bias=False)
    result = analyze_model(nn.Sequential(conv, nn.ReLU()), torch.randn(2, 4, 8, 8),
                           analyses=("coherence",))  # fmt: skip
    w = conv.weight.detach()
    full = torch.zeros(4, 4, 3, 3)
    full[:2, :2], full[2:, 2:] = w[:2], w[2:]
    assert result.layers["0"]["coherence"]["noshift"] == pytest.approx(coherence(full))


def test_bad_arguments_are_value_errors():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="analyses must be among"):
        analyze_model(model, x, analyses=("magic",))
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        analyze_model(model, x, samples=0)
    with pytest.raises(ValueError, match="not a convolution of this model"):
        analyze_model(model, x, ["nope"])
    with pytest.raises(ValueError, match="inputs must be finite"):
        analyze_model(model, x * float("nan"))
    with pytest.raises(ValueError, match="forward pass failed"):
        analyze_model(model, torch.randn(2, 5, 8, 8))


# --------------------------------------------------------------------------- the command
def _run(args, capsys):
    try:
        rc = main(args)
    except SystemExit as exc:  # a parse error: argparse exits
        rc = exc.code
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _asset(package: str, *parts: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)
    assert spec is not None, f"{package} is not installed: run `make setup`"
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)


def test_cli_mtcnn_rnet_real_weights(tmp_path, capsys):
    """A real face detector (facenet-pytorch's RNet state dict) through a file:callable
    SPEC: PReLU, overlapping ceil-mode pooling, said in the report."""
    spec = f"{Path(__file__).with_name('thirdparty_models.py')}:RNet"
    weights = _asset("facenet_pytorch", "data", "rnet.pt")
    out = tmp_path / "out"
    rc, _, err = _run(
        ["analyze", "--model", spec, "--weights", str(weights), "--size", "24",
         "--range", "255", "--mean", "127.5", "--std", "128", "--quick", "--out", str(out)],
        capsys,
    )  # fmt: skip
    assert rc == 0, err
    r = json.loads((out / "analysis.json").read_text())
    assert list(r["layers"])[:3] == ["conv1", "conv2", "conv3"]
    assert r["layers"]["conv1"]["activation"] == "prelu"
    assert r["layers"]["conv1"]["pool"]["overlapping"] and r["layers"]["conv1"]["pool"]["ceil_mode"]
    assert r["model"]["provenance"]["weights"]["sha256"]
    page = (out / "report.html").read_text()
    assert "overlapping max pooling" in page and "prelu does not produce zeros" in page
    assert (out / "analysis_rip.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_one_dimensional_net_on_real_speech(tmp_path, capsys):
    """A 1-d net on the ALSA speech recordings (WAV, read with soundfile), exported to
    TorchScript: the audio layout is found, the (L, 1) layers are 1-d layers."""
    model = AudioNet().eval()
    script = tmp_path / "audio.pt"
    torch.jit.trace(model, torch.randn(1, 1, 4096, 1)).save(str(script))
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    import shutil

    for p in sorted(Path("/usr/share/sounds/alsa").glob("Front_*.wav")):
        shutil.copy(p, wavs / p.name)
    assert list(wavs.iterdir()), "alsa-utils is not installed: run `make setup`"
    out = tmp_path / "out"
    rc, _, err = _run(
        ["analyze", "--model", str(script), "--inputs", str(wavs), "--quick", "--out", str(out)],
        capsys,
    )
    assert rc == 0, err
    r = json.loads((out / "analysis.json").read_text())
    c1 = r["layers"]["c1"]
    assert c1["kind"] == "conv2d (1-d, one wide)" and c1["pool"]["kernel"] == [2, 1]
    assert r["inputs"]["kind"] == "signal" and len(r["inputs"]["names"]) >= 2
    assert len(c1["iht_error_by_iter"]) == 20


def test_cli_onnx_export_of_a_batch_norm_net(tmp_path, capsys):
    model = randomise_batch_norm(ResNetBlock())
    path = tmp_path / "net.onnx"
    torch.onnx.export(
        model, (torch.randn(1, 3, 16, 16),), str(path), dynamo=False, opset_version=17
    )
    arr = tmp_path / "x.npy"
    np.save(arr, np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32))
    out = tmp_path / "out"
    rc, _, err = _run(
        ["analyze", "--model", str(path), "--inputs", str(arr), "--quick",
         "--analyses", "density,coherence", "--out", str(out)],
        capsys,
    )  # fmt: skip
    assert rc == 0, err
    r = json.loads((out / "analysis.json").read_text())
    kinds = [v["kind"] for v in r["layers"].values()]
    assert kinds == ["conv2d"] * 5
    # the ONNX exporter folds batch norm into the convolutions itself: no BN is left
    assert sum(v["residual"] for v in r["layers"].values()) >= 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no_such_package.mod:make"], "no_such_package"),
        (["--model", "builtins:dict"], "dict"),
        (["--model", "vgg16", "--weights", "{bad}"], "does not exist"),
        (["--model", "torch.nn:Flatten", "--inputs", "{npy_wrong}"], "no convolution"),
        (["--model", "vgg16", "--inputs", "{npy_wrong}"], "do not fit the model"),
        (["--model", "torch.nn:Conv1d", "--model-arg", "in_channels=1",
          "--model-arg", "out_channels=2", "--model-arg", "kernel_size=3"], "--inputs"),
        (["--model", "vgg16", "--inputs", "{bad_wavs}"], "no readable"),
        (["--model", "vgg16", "--samples", "0"], "--samples"),
        (["--model", "vgg16", "--layers", "conv9_9", "--analyses", "density"], "conv9_9"),
    ],
)  # fmt: skip
def test_cli_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, args, message):
    npy = tmp_path / "wrong.npy"
    np.save(npy, np.zeros((2, 5, 7), dtype=np.float32))
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    (wavs / "a.wav").write_bytes(b"RIFF garbage")
    subst = {"{bad}": str(tmp_path / "missing.pth"), "{npy_wrong}": str(npy),
             "{bad_wavs}": str(wavs)}  # fmt: skip
    args = [subst.get(a, a) for a in args]
    out = tmp_path / "out"
    rc, _, err = _run(["analyze", *args, "--quick", "--out", str(out)], capsys)
    lines = [line for line in err.splitlines() if line.startswith("cnninv: error")]
    assert rc == 2 and len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert not out.exists()
