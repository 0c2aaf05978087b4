"""Network analyses (any nn.Module) and the issue-3 experiments at toy cost."""

import json

import pytest
import torch
from torch import nn

from cnninv.analysis import (
    activation_sparsity,
    filter_coherence,
    k_for_fraction,
    next_layer,
    reconstruct_activation,
)
from cnninv.experiments import get, make_config
from cnninv.metrics import relative_error
from cnninv.models import build_model, pool_conv_pairs
from cnninv.operators import ConvOperator
from cnninv.recovery import iht
from cnninv.sparsity import model_sparse
from cnninv.theory import coherence


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(self.act(self.conv(x)))


def test_activation_sparsity_of_any_module_matches_manual_count():
    torch.manual_seed(0)
    model = TinyCNN().eval()
    x = torch.randn(5, 3, 8, 8)
    got = activation_sparsity(model, x, [("conv", "act"), ("pool", "pool")], batch_size=2)
    with torch.no_grad():
        a = torch.relu(model.conv(x))
        p = model.pool(a)
    per_image = [(a[i] != 0).float().mean().item() * 100 for i in range(5)]
    assert got["conv"] == pytest.approx(sum(per_image) / 5)
    assert got["pool"] == pytest.approx(
        sum((p[i] != 0).float().mean().item() * 100 for i in range(5)) / 5
    )
    with pytest.raises(ValueError, match="non-empty batch"):
        activation_sparsity(model, x[:0], [("conv", "act")])


def test_filter_coherence_columns():
    w = torch.randn(8, 3, 3, 3)
    c = filter_coherence(w, seed=1)
    assert c["learned_noshift"] == pytest.approx(coherence(w))
    assert c["learned_shift"] >= c["learned_noshift"] - 1e-12
    assert 0 < c["random_noshift"] <= 1 and c["random_shift"] >= c["random_noshift"] - 1e-12
    assert filter_coherence(w, seed=1) == c  # seeded


def test_k_for_fraction():
    assert k_for_fraction(0.25, (4, 8, 8), 2) == 16
    assert k_for_fraction(1e-9, (4, 8, 8), 2) == 1
    with pytest.raises(ValueError, match="fraction"):
        k_for_fraction(0.0, (4, 8, 8), 2)


def test_reconstruct_activation_is_one_iht_step_rescaled():
    W = ConvOperator.gaussian(K=6, M=3, ell=(3, 3), input_size=(8, 8), padding=1, seed=0)
    f = torch.relu(torch.randn(2, 3, 8, 8))
    f_hat, err = reconstruct_activation(W, f, k=10, pool=2)
    raw = W.T(model_sparse(W(f), 10, 2).code)
    scale = f.flatten(1).norm(dim=1) / raw.flatten(1).norm(dim=1)
    torch.testing.assert_close(f_hat, raw * scale.view(-1, 1, 1, 1))
    torch.testing.assert_close(f_hat.flatten(1).norm(dim=1), f.flatten(1).norm(dim=1))
    torch.testing.assert_close(err, relative_error(f_hat, f))
    # more iterations use normalised IHT
    f5, _ = reconstruct_activation(W, f, k=10, pool=2, iters=5, rescale=False)
    ref = iht(W, f, 10, pool=2, max_iter=5, step="normalized").x_hat
    torch.testing.assert_close(f5, ref)


def test_pool_conv_pairs():
    stack = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.MaxPool2d(2),
    )  # fmt: skip
    assert pool_conv_pairs(stack) == [("pool1", "conv2_1"), ("pool2", "conv3_1")]
    assert pool_conv_pairs(build_model("alexnet")) == [("pool1", "conv2"), ("pool2", "conv3")]


def test_next_layer_measures_the_density_of_the_next_relu():
    """The one place that turns a pooled activation into (next conv, W, density, k):
    checked against the conv and ReLU applied by hand."""
    torch.manual_seed(0)
    stack = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
    )  # fmt: skip
    f = torch.relu(torch.randn(3, 4, 8, 8))
    nxt = next_layer(stack, "pool1", f, pool=2)
    with torch.no_grad():
        density = float((torch.relu(stack[3](f)) != 0).double().mean())
    assert nxt.conv_name == "conv2_1" and nxt.density == pytest.approx(density)
    assert nxt.k == k_for_fraction(density, (6, 8, 8), 2)
    norms = nxt.W.weight.flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(6))  # unit-norm filters
    assert next_layer(stack, "pool1", f, batch_size=1).density == pytest.approx(density)
    rnd = nxt.operator("random", torch.Generator().manual_seed(0))
    assert rnd.weight.shape == nxt.W.weight.shape and not torch.equal(rnd.weight, nxt.W.weight)
    with pytest.raises(ValueError, match="filters"):
        nxt.operator("magic")


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    from PIL import Image

    d = tmp_path_factory.mktemp("photos")
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        arr = (torch.rand(40, 50, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(d / f"p{i}.png")
    return d


def _run(name, **overrides):
    cfg = make_config(name, overrides=overrides)
    return json.loads(json.dumps(get(name).run(cfg), default=lambda t: t.tolist()))


def test_sparsity_experiment_on_random_alexnet(photo_dir):
    r = _run("table7", images=str(photo_dir))
    assert r["experiment"] == "table7" and r["weights"] == "random"
    assert not r["comparable_to_paper"] and "RANDOM" in r["paper_note"]
    assert list(r["layers"])[:2] == ["conv1", "pool1"]
    for v in r["layers"].values():
        assert 0 <= v["nonzero_percent"] <= 100 and v["paper"] is not None


def test_coherence_experiment_on_random_alexnet():
    r = _run("table6")
    assert set(r["layers"]) == {"conv1", "conv2", "conv3", "conv4", "conv5"}
    assert r["layers"]["conv1"]["stride"] == 4 and r["layers"]["conv1"]["learned_noshift"] is None
    # the Gaussian column is the coherence of Gaussian filters of the layer's shape
    c5 = r["layers"]["conv5"]
    assert c5["filter_shape"] == [256, 256, 3, 3]
    g = torch.Generator().manual_seed(r["config"]["seed"] + 4)
    gaussian = torch.randn(256, 256, 3, 3, generator=g, dtype=torch.float64)
    assert c5["random_noshift"] == pytest.approx(coherence(gaussian))
    assert 0 < c5["random_noshift"] <= c5["random_shift"] < 1


def test_fig3_on_random_alexnet(photo_dir):
    r = _run(
        "fig3",
        model="alexnet",
        weights="random",
        images=str(photo_dir),
        samples=20,
        batch=10,
        max_iter=5,
    )
    assert r["layer"] == "conv5" and r["input_layer"] == "conv4"
    h = r["histograms"]
    assert set(h) == {
        f"{a}_{b}"
        for a in ("synthetic", "before_relu", "after_relu")
        for b in ("learned", "random")
    }
    assert h["synthetic_random"]["n"] == 20 and h["after_relu_learned"]["n"] == 2
    assert 0.5 < h["synthetic_random"]["p50"] < 1.5


def test_table4_activations_on_random_alexnet(photo_dir):
    r = _run(
        "table4-activations", model="alexnet", weights="random", images=str(photo_dir), iters="1,2"
    )
    assert list(r["layers"]) == ["pool1", "pool2"]
    v = r["layers"]["pool1"]
    assert v["next_conv"] == "conv2" and set(v["learned_by_iters"]) == {"1", "2"}
    # a random activation of the same norm is ~sqrt(2) away from a non-negative f
    assert v["random_activations"] == pytest.approx(2**0.5, abs=0.1)
    assert v["learned"] < v["random_activations"]
    with pytest.raises(ValueError, match="not pooling layers"):
        _run("table4-activations", model="alexnet", weights="random", layers="pool9")
