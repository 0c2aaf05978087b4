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
