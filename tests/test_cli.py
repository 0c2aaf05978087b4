import json

import pytest

from cnninv.cli import main


def test_threads_option_sets_and_records_the_thread_count(tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    assert main(["reproduce", "prop1", "--out", str(tmp_path), "--threads", "1"]) == 0
    assert json.loads((tmp_path / "prop1.json").read_text())["threads"] == 1
    assert torch.get_num_threads() == before  # restored after the command
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "prop1", "--out", str(tmp_path), "--threads", "0"])
    assert exc.value.code == 2 and "--threads must be between 1" in capsys.readouterr().err


def test_default_threads_leave_half_the_machine(monkeypatch):
    from cnninv.training import MAX_DEFAULT_THREADS, default_threads

    monkeypatch.delenv("CNNINV_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert 1 <= default_threads() <= MAX_DEFAULT_THREADS
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("CNNINV_THREADS", "2")
    assert default_threads() == 2


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "fig2" in out and "prop1" in out


def test_reproduce_fig2_writes_outputs(tmp_path):
    rc = main(
        [
            "reproduce",
            "fig2",
            "--out",
            str(tmp_path),
            "--samples",
            "100",
            "--set",
            "iters=3",
            "--seed",
            "5",
        ]
    )
    assert rc == 0
    data = json.loads((tmp_path / "fig2.json").read_text())
    for key in ("rip_ratio", "gram_ratio", "recon_error"):
        assert {"mean", "p01", "p50", "p99"} <= set(data[key])
    assert len(data["iht_recon_error_by_iter"]) == 3
    assert data["config"]["seed"] == 5 and data["config"]["samples"] == 100
    assert (tmp_path / "fig2.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page
    assert "0.1-0.2" in page or "0.1–0.2" in page  # the paper's statement beside ours


def test_reproduce_prop1(tmp_path):
    assert main(["reproduce", "prop1", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "prop1.json").read_text())["max_relative_error"] < 1e-12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reproduce", "fig2", "--set", "k=200"], "k=200 exceeds"),
        (["reproduce", "fig2", "--set", "k=0"], "k must be a positive integer"),
        (["reproduce", "fig2", "--set", "stride=2"], "stride=2"),
        (["reproduce", "nope"], "unknown experiment 'nope'"),
        (["reproduce", "fig2", "--device", "cuda:7"], "not available"),
        (["reproduce", "fig2", "--set", "iters"], "key=value"),
    ],
)
def test_errors_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnninv: error:") and message in err and "\n" not in err
    assert not out.exists()


def test_reproduce_all_checks_a_named_dataset_folder_before_any_work(tmp_path, capsys):
    """The first experiments of 'all' must not run when Table 1's folder is empty (CI found
    fig2 ... fig4 written before the error)."""
    empty, out = tmp_path / "empty", tmp_path / "out"
    empty.mkdir()
    argv = ["reproduce", "all", "--quick", "--dataset", "cifar10", str(empty), "--out", str(out)]
    assert main(argv) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("cnninv: error")]
    assert len(errors) == 1 and "data_batch_1 is missing" in errors[0]
    assert not out.exists()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    import torch
    from PIL import Image

    d = tmp_path_factory.mktemp("photos")
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        arr = (torch.rand(60, 60, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(d / f"p{i}.png")
    (d / "broken.jpg").write_bytes(b"not an image")
    return d


def test_analyze_user_weights_file(tmp_path, photos, capsys, recwarn):
    """A user's own AlexNet file (here random weights saved as a state dict): every
    convolution found and measured on the user's photos, an unreadable photo skipped
    with a warning."""
    import torch

    from cnninv.models import load_network

    path = tmp_path / "alexnet.pth"
    torch.save(load_network("alexnet", "random", seed=3).model.state_dict(), path)
    out = tmp_path / "out"
    rc = main(
        ["analyze", "--model", str(path), "--images", str(photos), "--out", str(out), "--quick",
         "--analyses", "density,coherence", "--size", "96"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0, err
    r = json.loads((out / "analysis.json").read_text())
    assert [v["paper_name"] for v in r["layers"].values()] == [f"conv{i}" for i in range(1, 6)]
    assert r["inputs"]["names"] == ["p0", "p1"]  # broken.jpg skipped
    assert "broken.jpg" in err  # … with a warning
    assert r["model"]["provenance"]["weights"]["sha256"] or r["model"]["provenance"]["file"]
    assert (out / "report.html").is_file()


def test_analyze_errors(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00garbage")
    out = tmp_path / "out"
    assert main(["analyze", "--model", str(bad), "--out", str(out)]) == 2
    assert "bad.pth" in capsys.readouterr().err
    assert main(["analyze", "--model", "alexnet", "--out", str(out)]) == 2
    assert "weights" in capsys.readouterr().err
    assert not out.exists()
