"""Inversion of any model: the generic deconvnet against the VGG one, IHT's activation
step by hand, the optimisation's progress, refusals, and `cnninv invert` on a callable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from zoo import PReLUNet

from cnninv.cli import main
from cnninv.inversion.generic import activation, deconvnet_any, invert_any
from cnninv.inversion.methods import OptimizeOptions, deconvnet
from cnninv.models import LoadedNetwork

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _vgg_style(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    features = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
    )  # fmt: skip

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = features

        def forward(self, x):
            return self.features(x)

    return Net().eval()


def test_generic_deconvnet_is_zeiler_and_fergus_deconvnet():
    """Autograd with the deconvnet ReLU rule gives what the explicit VGG deconvnet
    (unpool with switches, ReLU, transposed filters) gives."""
    model = _vgg_style()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    want = deconvnet(model, x, "pool2")
    got = deconvnet_any(model, x, "features.5")
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_iht_through_a_convolution_by_hand():
    from cnninv.models.discovery import discover
    from cnninv.sparsity import model_sparse

    model = _vgg_style()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    inv = invert_any(model, x, "features.3", "iht", iters=3)
    f = activation(model, "features.3", of="input")(x).detach()
    W = discover(model, x[:1]).layer("features.3").operator().unit_norm_filters()
    raw = W.T(model_sparse(W(f), inv.info["k"], 2).code)
    f_hat = raw * (f.flatten(1).norm(dim=1) / raw.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)
    want = ((f_hat - f).flatten(1).norm(dim=1) / f.flatten(1).norm(dim=1)).tolist()
    assert inv.info["activation_errors"] == pytest.approx(want, rel=1e-4)
    with torch.no_grad():
        density = float((torch.relu(model.features[3](f)) != 0).double().mean())
    assert inv.info["density"] == pytest.approx(density)
    assert inv.x_hat.shape == x.shape and bool(torch.isfinite(inv.x_hat).all())


def test_optimisation_matches_the_activation_of_a_prelu_net():
    torch.manual_seed(0)
    model = PReLUNet().eval()
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(3))
    inv = invert_any(model, x, "conv2", "optimize", optimize=OptimizeOptions(iters=40, lr=0.1))
    assert inv.info["final_feature_error"] < 0.5
    with pytest.raises(ValueError, match="reconstructs the input of a convolution"):
        invert_any(model, x, "pool1", "iht")


def test_refusals():
    model = _vgg_style()
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(ValueError, match="not a module of the model"):
        invert_any(model, x, "features.99", "optimize")
    with pytest.raises(ValueError, match="method must be one of"):
        invert_any(model, x, "features.0", "nope")
    with pytest.raises(ValueError, match="needs a decoder trained for this model"):
        invert_any(model, x, "features.0", "decoder")
    scripted = torch.jit.trace(model, x)
    with pytest.raises(ValueError, match="TorchScript archive cannot be inverted"):
        invert_any(scripted, x, "features.0", "deconvnet")


def test_cli_invert_any_callable_on_an_array(tmp_path, capsys):
    """`cnninv invert` on a user's callable with a .npy input: every generic method,
    the JSON records the relative error of each."""
    spec = f"{Path(__file__).with_name('zoo.py')}:PReLUNet"
    arr = tmp_path / "x.npy"
    np.save(arr, np.random.default_rng(0).random((2, 3, 24, 24)).astype(np.float32))
    out = tmp_path / "out"
    rc = main(
        ["invert", "--model", spec, "--image", str(arr), "--layer", "conv2",
         "--method", "iht,optimize,deconvnet", "--iters", "5", "--out", str(out)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0, err
    record = json.loads((out / "invert_conv2.json").read_text())
    assert [r["method"] for r in record["results"]] == ["iht"] * 2 + ["optimize"] * 2 + [
        "deconvnet"
    ] * 2
    assert all(np.isfinite(r["relative_error"]) for r in record["results"])
    assert record["inputs_kind"] == "array"


def test_vgg_paper_layer_names_keep_the_decoder_path():
    """On VGG16, pool4 is the paper's layer (decoders, Table 4's IHT); features.23 is the
    same module by its qualified name, taken by the generic path."""
    from cnninv.cli.inversion import _paper_layer
    from cnninv.models import load_model

    loaded = load_model("vgg16", "random", features_only=True)
    assert isinstance(loaded.network, LoadedNetwork)
    assert _paper_layer(loaded, "pool4") and not _paper_layer(loaded, "features.23")


# --------------------------------------------------------------------------- any decoder


def _signals(n: int, seed: int = 0) -> torch.Tensor:
    """Smooth 2-channel signals (sums of a few sines): a decoder can learn them back."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, 64)
    freq = torch.randint(1, 5, (n, 2, 3), generator=g).float()
    phase = torch.rand(n, 2, 3, generator=g) * 6.28
    amp = torch.rand(n, 2, 3, generator=g) + 0.2
    return (amp[..., None] * torch.sin(6.28 * freq[..., None] * t + phase[..., None])).sum(2)


def test_activation_decoder_shapes_for_1d_and_2d_and_odd_sizes():
    from cnninv.inversion.any_decoder import ActivationDecoder

    for c, s_in, c_out, s_out in [(6, (13,), 2, (64,)), (8, (3, 5), 3, (24, 37)),
                                  (4, (7, 1), 1, (60, 1)), (5, (9, 9), 3, (9, 9))]:  # fmt: skip
        dec = ActivationDecoder(c, s_in, c_out, s_out, width=4)
        assert dec(torch.randn(2, c, *s_in)).shape == (2, c_out, *s_out)
    with pytest.raises(ValueError, match="takes activations of shape"):
        ActivationDecoder(6, (13,), 2, (64,))(torch.randn(2, 6, 14))
    with pytest.raises(ValueError, match="same number"):
        ActivationDecoder(6, (13,), 2, (64, 64))


def test_any_decoder_learns_round_trips_and_refuses_other_weights(tmp_path):
    """Trained on smooth signals through a Conv1d net (leaky ReLU, max pooling, GELU), the
    decoder beats its untrained self by far on held-back signals; the file round-trips to
    the same outputs; it is refused for another layer, other weights, a truncated file."""
    from zoo import Conv1dNet

    from cnninv.inversion.any_decoder import (
        AnyDecoderConfig,
        load_any_decoder,
        save_any_decoder,
        train_any_decoder,
    )

    torch.manual_seed(0)
    model = Conv1dNet().eval()
    x = _signals(72)
    cfg = AnyDecoderConfig(steps=300, batch=16, lr=3e-3, width=16, flips=False)
    dec, record = train_any_decoder(model, "a", x[:64], x[64:], cfg)
    assert record["validation_error"] < 0.5 * record["validation_error_before"], record
    assert record["validation_error"] < 0.5
    path = save_any_decoder(dec, tmp_path / "d.safetensors", model=model, layer="a",
                            training=record)  # fmt: skip
    back, info = load_any_decoder(path, model=model, layer="a")
    f = activation(model, "a")(x[64:])
    with torch.no_grad():
        assert torch.equal(back(f), dec(f))
    assert info["training"]["steps"] == 300 and info["architecture"]["in_channels"] == 6
    # the generic invert with it gives the record's error
    inv = invert_any(model, x[64:], "a", "decoder", decoder=back)
    errs = (inv.x_hat - x[64:]).flatten(1).norm(dim=1) / x[64:].flatten(1).norm(dim=1)
    assert float(errs.mean()) == pytest.approx(record["validation_error"], rel=1e-5)
    with pytest.raises(ValueError, match="trained for layer 'a', not 'b'"):
        load_any_decoder(path, model=model, layer="b")
    other = Conv1dNet().eval()
    with pytest.raises(ValueError, match="another model's activations"):
        load_any_decoder(path, model=other, layer="a")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="cannot be read"):
        load_any_decoder(cut)
    with pytest.raises(ValueError, match="does not exist"):
        load_any_decoder(tmp_path / "missing.safetensors")


def test_cli_train_decoder_and_invert_for_any_model(tmp_path, capsys):
    """`cnninv train-decoder --model SPEC --inputs x.npy --layer NAME` trains, caches and
    writes a decoder; `cnninv invert --method decoder` (and 'all') uses the cached one;
    flags of VGG16's decoders are refused by name; a missing decoder says how to train."""
    spec = f"{Path(__file__).with_name('zoo.py')}:Conv1dNet"
    arr = tmp_path / "x.npy"
    np.save(arr, _signals(24).numpy())
    cache, out = tmp_path / "cache", tmp_path / "out"
    base = ["--model", spec, "--layer", "b", "--cache", str(cache), "--seed", "0"]
    rc = main(["invert", *base[:2], "--image", str(arr), "--layer", "b", "--cache",
               str(cache), "--method", "decoder", "--out", str(out)])  # fmt: skip
    assert rc == 2 and "cnninv train-decoder --model" in capsys.readouterr().err
    assert main(["train-decoder", *base, "--inputs", str(arr), "--half", "--quick"]) == 2
    assert "--half apply to VGG16's" in capsys.readouterr().err
    target = str(tmp_path / "b.safetensors")
    rc = main(["train-decoder", *base, "--inputs", str(arr), "--steps", "30", "--epochs", "1",
               "--width", "4", "--out", target, "--no-progress"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "validation error" in captured.out and (tmp_path / "b.safetensors").is_file()
    assert len(list((cache / "decoders" / "any").glob("*-b.safetensors"))) == 1
    rc = main(["invert", *base[:2], "--image", str(arr), "--layer", "b", "--cache",
               str(cache), "--method", "all", "--iters", "3", "--out", str(out)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    record = json.loads((out / "invert_b.json").read_text())
    assert record["methods"] == ["iht", "optimize", "deconvnet", "decoder"]
    assert record["decoder"]["layer"] == "b" and record["decoder"]["training"]["steps"] == 30
    dec_rows = [r for r in record["results"] if r["method"] == "decoder"]
    assert len(dec_rows) == 24 and all(np.isfinite(r["relative_error"]) for r in dec_rows)


def test_any_decoder_same_seed_same_weights():
    """Same seed, same decoder (initial weights and draws from the seed alone, whatever the
    global RNG holds); another seed, another decoder."""
    from zoo import Conv1dNet

    from cnninv.inversion.any_decoder import AnyDecoderConfig, train_any_decoder

    torch.manual_seed(0)
    model = Conv1dNet().eval()
    x = _signals(16)
    cfg = AnyDecoderConfig(steps=5, batch=4, width=4)
    a, ra = train_any_decoder(model, "a", x[:12], x[12:], cfg)
    torch.manual_seed(123)  # the global RNG must not matter
    b, rb = train_any_decoder(model, "a", x[:12], x[12:], cfg)
    c, _ = train_any_decoder(
        model, "a", x[:12], x[12:], AnyDecoderConfig(steps=5, batch=4, width=4, seed=1)
    )
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    assert ra["validation_error"] == rb["validation_error"]
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())
