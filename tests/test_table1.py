"""Table 1: the paper's small CNNs, the data readers, checkpoints that resume, the Dask
sweep. Everything runs on tiny synthetic data written by the tests themselves."""

import json
import os
import pickle
import re

import numpy as np
import pytest
import torch

from cnninv.classify.data import (
    RestrictedUnpickler,
    load_cifar10,
    load_fashion_mnist,
    read_cifar_batch,
    read_idx,
    split_indices,
    write_idx,
)
from cnninv.classify.models import ConvClassifier, arch_name, trainable_parameters
from cnninv.classify.train import (
    _model,
    config_key,
    evaluate_test,
    make_spec,
    train_config,
)
from cnninv.experiments import table1
from cnninv.io import to_jsonable
from cnninv.training import load_checkpoint

try:
    import distributed  # noqa: F401

    HAVE_DASK = True
except ImportError:  # the optional 'classify' extra
    HAVE_DASK = False
needs_dask = pytest.mark.skipif(not HAVE_DASK, reason="dask[distributed] is not installed")


def _images(n, rng, size=28, channels=None):
    """n images whose class (0..9) is a bright horizontal bar at row 2 + 2*label: easy to
    learn, so that accuracies are above chance."""
    labels = rng.integers(0, 10, n)
    shape = (n, size, size) if channels is None else (n, channels, size, size)
    x = rng.integers(0, 60, shape).astype(np.uint8)
    for i, y in enumerate(labels):
        row = 2 + 2 * int(y)
        if channels is None:
            x[i, row : row + 2, 4:-4] = 230
        else:
            x[i, :, row : row + 2, 4:-4] = 230
    return x, labels.astype(np.uint8)


@pytest.fixture(scope="module")
def fmnist_dir(tmp_path_factory):
    """A Fashion-MNIST-shaped folder: 300 training and 100 test images in IDX files."""
    folder = tmp_path_factory.mktemp("fmnist")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 300), ("t10k", 100)):
        x, y = _images(n, rng)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
    return folder


def _cifar_pickle(data, labels, numpy1_names=True):
    """A batch as the CIFAR-10 python files hold it: a dict with bytes keys. Protocol 3
    writes globals as text, so the array's reconstructor can be given the module name of
    the original files (``numpy.core.multiarray``, pickled by NumPy 1)."""
    batch = {
        b"batch_label": b"testing batch",
        b"labels": [int(v) for v in labels],
        b"data": data.reshape(len(labels), -1),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    raw = pickle.dumps(batch, protocol=3)
    if numpy1_names:
        raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    return raw


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x, y = _images(40, rng, size=32, channels=3)
        (folder / name).write_bytes(_cifar_pickle(x, y, numpy1_names=name != "data_batch_2"))
    return folder


def _spec(fmnist_dir, ckpt, **kw):
    values = dict(
        dataset="fashion-mnist",
        data_path=str(fmnist_dir),
        val_size=60,
        train_subset=200,
        seed=0,
        variant="random",
        depth=2,
        width=6,
        kernel_size=3,
        dropout=0.3,
        epochs=2,
        batch_size=32,
        lr=1e-2,
        device="cpu",
        threads=1,
        checkpoint_dir=str(ckpt),
    )
    values.update(kw)
    return make_spec(**values)


# --- data -------------------------------------------------------------------------


def test_idx_round_trip_and_corrupt_files(tmp_path):
    x = np.arange(2 * 5 * 7, dtype=np.uint8).reshape(2, 5, 7)
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        path = write_idx(tmp_path / name, x)
        np.testing.assert_array_equal(read_idx(path), x)
    bad = tmp_path / "bad-idx3-ubyte"
    bad.write_bytes(b"\x01\x02\x08\x03" + bytes(20))
    with pytest.raises(ValueError, match=r"bad-idx3-ubyte is not an IDX file"):
        read_idx(bad)
    short = tmp_path / "short-idx3-ubyte"
    short.write_bytes((tmp_path / "a-idx3-ubyte").read_bytes()[:-3])
    with pytest.raises(ValueError, match=r"short-idx3-ubyte is a corrupt IDX file"):
        read_idx(short)
    notgz = tmp_path / "x-idx1-ubyte.gz"
    notgz.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"x-idx1-ubyte\.gz"):
        read_idx(notgz)
    with pytest.raises(ValueError, match="does not exist"):
        read_idx(tmp_path / "missing-idx1-ubyte")


def test_fashion_mnist_reader_pads_to_32(fmnist_dir, tmp_path):
    data = load_fashion_mnist(fmnist_dir)
    assert data.train_x.shape == (300, 1, 32, 32) and data.test_x.shape == (100, 1, 32, 32)
    assert data.train_x.dtype == torch.uint8 and data.train_y.dtype == torch.int64
    raw = read_idx(fmnist_dir / "train-images-idx3-ubyte.gz")
    assert torch.equal(data.train_x[:, 0, 2:30, 2:30], torch.from_numpy(raw))
    assert int(data.train_x[:, :, :2].sum()) == 0  # zero padding
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "train-images-idx3-ubyte.gz"))):
        load_fashion_mnist(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        load_fashion_mnist(tmp_path / "nowhere")


@pytest.mark.skipif(
    not os.path.isdir("/usr/share/datasets/fashion-mnist"),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_real_fashion_mnist_counts():
    data = load_fashion_mnist()
    assert data.train_x.shape == (60000, 1, 32, 32) and data.test_x.shape == (10000, 1, 32, 32)
    assert sorted(data.train_y.unique().tolist()) == list(range(10))
    assert torch.bincount(data.test_y).tolist() == [1000] * 10


def test_cifar_reader(cifar_dir):
    data = load_cifar10(cifar_dir)
    assert data.train_x.shape == (200, 3, 32, 32) and data.test_x.shape == (40, 3, 32, 32)
    raw = pickle.loads((cifar_dir / "test_batch").read_bytes(), encoding="bytes")
    # channel-major rows: the first 1024 values are the red plane
    assert torch.equal(data.test_x[3, 0].flatten(), torch.from_numpy(raw[b"data"][3, :1024]))
    assert data.test_y.tolist() == raw[b"labels"]
    with pytest.raises(ValueError, match="data_batch_1 does not exist"):
        read_cifar_batch(cifar_dir.parent / "data_batch_1")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_reader_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "data_batch_1"
    evil.write_bytes(pickle.dumps({b"data": _Exploit(marker), b"labels": []}, protocol=3))
    with pytest.raises(ValueError, match=r"data_batch_1.*refused to load global"):
        read_cifar_batch(evil)
    assert not marker.exists()
    for module, name in (("builtins", "eval"), ("numpy", "load"), ("os", "system")):
        with pytest.raises(pickle.UnpicklingError, match="refused"):
            RestrictedUnpickler(open(evil, "rb")).find_class(module, name)
    wrong = tmp_path / "test_batch"
    wrong.write_bytes(pickle.dumps([1, 2, 3], protocol=3))
    with pytest.raises(ValueError, match="test_batch is not a CIFAR-10 batch"):
        read_cifar_batch(wrong)


def test_missing_data_is_a_value_error_naming_the_path(tmp_path):
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "nope" / "data_batch_1"))):
        table1.run(table1.Config(dataset="cifar10", data_path=str(tmp_path / "nope")))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz is missing"):
        table1.check_data("fashion-mnist", tmp_path)


def test_validation_split_is_seeded_and_disjoint():
    a, b = split_indices(1000, 100, 300, seed=3), split_indices(1000, 100, 300, seed=3)
    assert torch.equal(a.train, b.train) and torch.equal(a.val, b.val)
    assert not set(a.train.tolist()) & set(a.val.tolist())
    assert len(split_indices(1000, 100, None, seed=3).train) == 900
    assert not torch.equal(split_indices(1000, 100, 300, seed=4).val, a.val)
    with pytest.raises(ValueError, match="train_subset=950"):
        split_indices(1000, 100, 950, seed=0)


# --- models ----------------------------------------------------------------------


def test_architecture_names_are_the_papers():
    assert ConvClassifier(1, 2048, 3, in_channels=3).arch == "(2048)3c-2pmax-4pave"
    assert ConvClassifier(2, 8, 5, in_channels=3).arch == "(8)5c-2pmax-(8)5c-2pmax-2pave"
    for by_depth in table1.PAPER["arch"].values():
        for depth, name in by_depth.items():
            widths = [int(p.split(")")[0][1:]) for p in name.split("-") if p.startswith("(")]
            assert arch_name(widths, [3] * int(depth)) == name
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        ConvClassifier(1, 4, 4)
    with pytest.raises(ValueError, match="variant must be one of"):
        ConvClassifier(1, 4, 3, variant="frozen")


def test_random_filters_are_gaussian_and_frozen():
    model = ConvClassifier(2, 64, 5, in_channels=3, variant="random", seed=0)
    w = model.features[1].conv.weight
    assert not w.requires_grad and abs(float(w.std()) - 1) < 0.01 and abs(float(w.mean())) < 0.01
    frozen = {id(b.conv.weight) for b in model.features}
    assert frozen.isdisjoint(id(p) for p in trainable_parameters(model))
    learned = ConvClassifier(2, 64, 5, in_channels=3, variant="learned", seed=0)
    assert all(p.requires_grad for p in learned.parameters())
    assert (
        abs(float(learned.features[1].conv.weight.detach().std()) - (2 / (64 * 25)) ** 0.5) < 0.005
    )


def test_training_leaves_random_filters_bit_identical(fmnist_dir, tmp_path):
    """After training through the real loop, the random filters are those drawn at
    initialisation, bit for bit, while BN scale and bias and the classifier moved; the
    optimiser state holds only the trainable parameters. Learned filters move."""
    for variant in ("random", "learned"):
        spec = _spec(fmnist_dir, tmp_path, variant=variant)
        train_config(spec)
        state = load_checkpoint(tmp_path / f"{config_key(spec)}.pt")
        init = _model(spec, load_fashion_mnist(fmnist_dir)).state_dict()
        trained = state["model"]
        for i in range(2):
            same = torch.equal(
                trained[f"features.{i}.conv.weight"], init[f"features.{i}.conv.weight"]
            )
            assert same == (variant == "random")
            assert not torch.equal(
                trained[f"features.{i}.bn.weight"], init[f"features.{i}.bn.weight"]
            )
            assert not torch.equal(trained[f"features.{i}.bn.bias"], init[f"features.{i}.bn.bias"])
        assert not torch.equal(trained["classifier.weight"], init["classifier.weight"])
        n_trainable = 2 * 2 + 2 + (2 if variant == "learned" else 0)
        assert len(state["optimizer"]["param_groups"][0]["params"]) == n_trainable
        assert len(state["optimizer"]["state"]) == n_trainable


# --- training, checkpoints, determinism ------------------------------------------------


def test_same_seed_same_accuracy(fmnist_dir, tmp_path):
    # 6 epochs: the bars are learned for every seed tried (0.85-1.0 over seeds 0-5); with 2
    # the accuracy of seed 0 sat at the chance line on another CPU.
    a = train_config(_spec(fmnist_dir, tmp_path / "a", variant="learned", epochs=6))
    b = train_config(_spec(fmnist_dir, tmp_path / "b", variant="learned", epochs=6))
    assert not a["cached"] and not b["cached"]
    assert a["val_acc"] == b["val_acc"] and a["history"] == b["history"]
    assert a["val_acc"] > 0.5  # the bars are learnable: well above chance (0.1)
    c = train_config(_spec(fmnist_dir, tmp_path / "c", variant="learned", seed=1, epochs=6))
    assert c["history"] != a["history"]


def test_interrupted_configuration_resumes_at_saved_epoch(fmnist_dir, tmp_path):
    whole = train_config(_spec(fmnist_dir, tmp_path / "whole", epochs=3))
    spec = _spec(fmnist_dir, tmp_path / "cut", epochs=3)

    def stop_after_first(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_config(spec, on_epoch_end=stop_after_first)
    record = json.loads((tmp_path / "cut" / f"{config_key(spec)}.json").read_text())
    assert record["status"] == "running" and record["epoch"] == 1
    epochs_run = []
    resumed = train_config(spec, on_epoch_end=epochs_run.append)
    assert resumed["resumed_from_epoch"] == 1 and epochs_run == [2, 3]
    assert resumed["val_acc"] == whole["val_acc"] and resumed["history"] == whole["history"]
    a = load_checkpoint(tmp_path / "whole" / f"{config_key(spec)}.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / f"{config_key(spec)}.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    again = train_config(spec, on_epoch_end=epochs_run.append)
    assert again["cached"] and epochs_run == [2, 3] and again["val_acc"] == whole["val_acc"]
    test = evaluate_test(spec)
    assert 0 <= test["test_acc"] <= 1 and test["n_test"] == 100 and not test["cached"]
    assert evaluate_test(spec) == {**test, "cached": True}


def test_checkpoint_key_ignores_device_but_not_hyper_parameters(fmnist_dir, tmp_path):
    s = _spec(fmnist_dir, tmp_path)
    assert config_key(s) == config_key({**s, "device": "cuda", "threads": 8})
    assert config_key(s) != config_key({**s, "lr": 0.02})
    assert config_key(s) != config_key({**s, "data_path": "/elsewhere"})


# --- the experiment: Dask sweep, selection, report --------------------------------------


def _config(fmnist_dir, ckpt, **kw):
    values = dict(
        data_path=str(fmnist_dir),
        widths=(4, 8),
        kernel_sizes=(3,),
        depths=(1, 2),
        epochs=1,
        batch_size=32,
        train_subset=160,
        val_size=60,
        threads=1,
        checkpoint_dir=str(ckpt),
    )
    values.update(kw)
    return table1.Config(**values)


@pytest.fixture(scope="module")
def sweep(fmnist_dir, tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("ckpt")
    config = _config(fmnist_dir, ckpt)
    return config, ckpt, table1.run(config, progress=True)


@needs_dask
def test_sweep_result(sweep):
    _, ckpt, r = sweep
    assert r["dataset"] == "fashion-mnist" and set(r["depths"]) == {"1", "2"}
    assert len(r["grid"]) == 2 * 2 * 2 and r["trained_now"] == 8
    for depth, row in r["depths"].items():
        for variant in ("random", "learned"):
            assert 0 <= row[variant] <= 1 and 0 <= row[f"{variant}_val"] <= 1
            best = max(
                g["val_acc"]
                for g in r["grid"]
                if g["variant"] == variant and g["depth"] == int(depth)
            )
            assert row[f"{variant}_val"] == best
            assert row[f"{variant}_arch"].startswith(f"({row[f'{variant}_width']})3c-2pmax")
    assert set(r["paper"]["accuracy"]["learned"]) >= set(r["depths"])  # paper beside ours
    assert "not comparable number for number" in r["paper_note"]
    assert "smaller than the paper's" in r["width_note"]
    assert r["n_train"] == 160 and r["n_val"] == 60 and r["n_test"] == 100
    # the test split was used for the chosen configurations only
    assert len(list(ckpt.glob("*.test.json"))) == 4
    json.dumps(to_jsonable(r))


@needs_dask
def test_sweep_again_retrains_nothing(sweep):
    config, ckpt, r = sweep
    mtimes = {p: p.stat().st_mtime_ns for p in ckpt.iterdir()}
    again = table1.run(config)
    assert again["trained_now"] == 0 and again["reused_from_checkpoints"] == 8
    assert again["depths"] == r["depths"]
    assert [g["val_acc"] for g in again["grid"]] == [g["val_acc"] for g in r["grid"]]
    assert {p: p.stat().st_mtime_ns for p in ckpt.iterdir()} == mtimes


@needs_dask
def test_sweep_on_a_given_scheduler_and_same_seed(sweep, fmnist_dir, tmp_path):
    from distributed import LocalCluster

    _, _, r = sweep
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
    ) as cluster:
        other = table1.run(
            _config(fmnist_dir, tmp_path, scheduler=cluster.scheduler_address, n_workers=2)
        )
    assert other["trained_now"] == 8 and other["scheduler"].startswith("dask scheduler at")
    assert [g["val_acc"] for g in other["grid"]] == [g["val_acc"] for g in r["grid"]]
    assert other["depths"] == r["depths"]


@needs_dask
def test_cifar10_sweep_end_to_end(cifar_dir, tmp_path):
    r = table1.run(
        table1.Config(
            dataset="cifar10",
            data_path=str(cifar_dir),
            widths=(4,),
            kernel_sizes=(3,),
            depths=(1,),
            epochs=1,
            batch_size=32,
            train_subset=150,
            val_size=50,
            threads=1,
            checkpoint_dir=str(tmp_path),
        )
    )
    assert r["dataset"] == "cifar10" and r["n_test"] == 40
    assert r["depths"]["1"]["random_arch"] == "(4)3c-2pmax-4pave"
    assert "comparable" not in r["paper_note"]


@needs_dask
def test_report_section_and_figure(sweep):
    from cnninv.report.sections import Section
    from cnninv.report.table1 import table1_section

    _, _, r = sweep
    section = table1_section(json.loads(json.dumps(to_jsonable(r))))  # as read back from JSON
    assert isinstance(section, Section)
    assert section.figures["table1.png"].startswith(b"\x89PNG")
    table = section.tables[0]
    assert [row[0] for row in table.rows] == ["1", "2"]
    assert table.rows[0][5] == "66.5%" and table.rows[1][6] == "83.3%"
    assert any("not comparable" in n for n in section.notes)


# --- configuration ----------------------------------------------------------------------


def test_config_defaults_full_and_cli_strings():
    c = table1.Config()
    assert c.widths == (16, 32, 64) and c.epochs == 2 and c.train_subset == 10_000
    full = table1.Config(full=True)
    assert full.widths == (64, 128, 256, 1024, 2048) and full.epochs == 30
    assert full.train_subset == 0  # every training image
    assert table1.Config(widths="16,32", depths="1").widths == (16, 32)
    # what registry._coerce makes of --set widths=16,32 against a tuple default
    c = table1.Config(widths=tuple("16,32"), kernel_sizes=tuple("3,5"), variants=tuple("random"))
    assert c.widths == (16, 32) and c.kernel_sizes == (3, 5) and c.variants == ("random",)
    assert table1.Config(epochs="3", train_subset="all", threads=2).train_subset == 0
    q = table1.Config(quick=True, **table1.QUICK)
    assert q.widths == (16,) and q.kernel_sizes == (3,) and q.epochs == 1
    for bad, match in (
        ({"dataset": "mnist"}, "dataset must be one of"),
        ({"kernel_sizes": (3, 4)}, "kernel_sizes must be odd"),
        ({"depths": (1, 4)}, "depths must lie in 1..3"),
        ({"variants": ("random", "frozen")}, "variants must be among"),
        ({"widths": (16, 16)}, "without repeats"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"batch_size": 1}, "batch_size must be at least 2"),
        ({"n_workers": 0}, "n_workers must be a positive integer"),
        ({"device": "nonsense"}, "device"),
    ):
        with pytest.raises(ValueError, match=match):
            table1.Config(**bad)
