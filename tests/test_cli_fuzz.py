"""Keep the command line at zero tracebacks: generated argument lists for every command —
numbers of every kind, unknown keys, bad paths, bad images — give exit code 0 or 2, never
a traceback, one line on stderr for an error, and nothing in ``--out`` after an exit 2.

Every generated call holds at least one bad value, so it fails fast (no experiment runs);
the valid calls are tested elsewhere."""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnninv.cli import main

BAD_NUMBERS = ["-1", "0", "nan", "inf", "-inf", "1e20", "99999999999999999999", "abc", "", "1.5",
               "0x10", "  ", "1_000_000_000_000"]  # fmt: skip
BAD_SEEDS = ["-5", str(2**63), "99999999999999999999", "1.0", "seed"]


@pytest.fixture(scope="module")
def world():
    """Files the generated commands point at: a plain file where a folder is wanted,
    images of every mode that cannot be read, a folder without images, unicode and
    spaces in names."""
    from PIL import Image

    root = Path(tempfile.mkdtemp(prefix="cnninv fuzz ü "))
    (root / "a file.txt").write_text("not a folder")
    bad = root / "bad images"
    bad.mkdir()
    (bad / "empty.png").write_bytes(b"")
    (bad / "text.jpg").write_text("plain text")
    (bad / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    arr = np.full((8, 8), 3.5e9, dtype=np.float32)
    Image.fromarray(arr, mode="F").save(bad / "huge_float.tif")
    (root / "empty dir").mkdir()
    (root / "junk.pth").write_bytes(b"\x00\x01garbage")
    (root / "junk.safetensors").write_bytes(b"\x00" * 16)
    (root / "junk.onnx").write_bytes(b"not onnx")
    (root / "junk.h5").write_bytes(b"not hdf5")
    (root / "list.json").write_text("[1, 2, 3]")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _paths(world: Path) -> dict[str, str]:
    return {
        "file": str(world / "a file.txt"),
        "under_file": str(world / "a file.txt" / "sub"),
        "missing": str(world / "nope" / "deeper"),
        "bad_images": str(world / "bad images"),
        "empty_dir": str(world / "empty dir"),
        "junk_pth": str(world / "junk.pth"),
        "junk_st": str(world / "junk.safetensors"),
        "junk_onnx": str(world / "junk.onnx"),
        "junk_h5": str(world / "junk.h5"),
        "unicode": str(world / "données" / "ünïcode"),
    }


def _call(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse
            rc = exc.code
    return rc, err.getvalue()


def _check(argv: list[str], out: Path | None) -> None:
    existed = out is not None and out.exists()
    rc, err = _call(argv)
    assert rc in (0, 2), (argv, rc, err)
    assert "Traceback" not in err, (argv, err)
    if rc == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("cnninv: error")]
        assert len(errors) == 1, (argv, err)
        if out is not None and not existed:
            assert not out.exists(), (argv, "left", list(out.rglob("*")))


def _out(world: Path, data) -> Path:
    name = data.draw(st.sampled_from(["out", "out dir", "ünï"]))
    return world / "outs" / f"{name}-{data.draw(st.integers(0, 10**9))}"


SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(data=st.data())
def test_reproduce_with_bad_values(world, data):
    paths = _paths(world)
    out = _out(world, data)
    names = ["fig2", "prop1", "table2", "table1", "nope", "all", "delta", "phase-transition",
             "fig2-sensitivity"]  # fmt: skip
    name = data.draw(st.sampled_from(names))
    bad = data.draw(
        st.sampled_from(
            [
                ["--samples", data.draw(st.sampled_from(BAD_NUMBERS))],
                ["--seed", data.draw(st.sampled_from(BAD_SEEDS))],
                ["--set", data.draw(st.sampled_from(
                    ["bogus_key=1", "iters", "=3", "k=0", "k=1e9", "samples=-3", "batch=abc",
                     "iters=99999999999999999999", "D=4", "dtype=float16", "device=tpu",
                     "plane_M=0,2", "slice_t=2", "eps=1.5", "variants=magic",
                     "sweep_lambdas=0,2", "layers_image_size=8", "fig2_samples=0",
                     "trials=99999999999999999999"]))],
                ["--device", data.draw(st.sampled_from(["tpu", "cuda:7", "cpu:x", ""]))],
                ["--dataset", "imagenet"],
                ["--dataset", "cifar10", paths["empty_dir"]],
            ]
        )
    )  # fmt: skip
    where = data.draw(st.sampled_from(["file", "under_file", None]))
    target = Path(paths[where]) if where else out
    _check(["reproduce", name, "--quick", *bad, "--out", str(target)], target)


@SETTINGS
@given(data=st.data())
def test_analyze_with_bad_values(world, data):
    paths = _paths(world)
    out = _out(world, data)
    model = data.draw(st.sampled_from(
        ["vgg16", "alexnet", "nope", "no.such.module:f", "builtins:len", paths["junk_pth"],
         paths["junk_onnx"], paths["junk_h5"], paths["empty_dir"]]
    ))  # fmt: skip
    extra = data.draw(st.sampled_from([
        ["--samples", data.draw(st.sampled_from(BAD_NUMBERS))],
        ["--iht-iters", data.draw(st.sampled_from(BAD_NUMBERS))],
        ["--inputs", data.draw(st.sampled_from([paths["bad_images"], paths["empty_dir"],
                                                paths["missing"], paths["file"]]))],
        ["--size", data.draw(st.sampled_from(["0", "-3", "abc", "1,2,3", "99999"]))],
        ["--channels", "GBR"], ["--range", "0"], ["--mean", "1,2"], ["--std", "0,1,1"],
        ["--layers", "conv9_9"], ["--analyses", "magic"], ["--lam", "2"],
        ["--weights", data.draw(st.sampled_from([paths["junk_st"], paths["missing"], "magic"]))],
        ["--model-arg", "noequals"],
    ]))  # fmt: skip
    if model in ("vgg16", "alexnet") and extra[0] == "--weights" and extra[1] == "magic":
        extra = ["--weights", paths["junk_pth"]]
    _check(["analyze", "--model", model, *extra, "--quick", "--out", str(out)], out)


@SETTINGS
@given(data=st.data())
def test_invert_and_train_decoder_with_bad_values(world, data):
    paths = _paths(world)
    out = _out(world, data)
    which = data.draw(st.sampled_from(["invert", "train-decoder"]))
    if which == "invert":
        bad = data.draw(st.sampled_from([
            ["--image", paths["bad_images"], "--layer", "pool1"],
            ["--image", paths["missing"], "--layer", "pool1"],
            ["--image", paths["empty_dir"], "--layer", "pool2"],
            ["--image", paths["bad_images"], "--layer", "pool9"],
            ["--image", paths["bad_images"], "--layer", "pool1", "--size",
             data.draw(st.sampled_from([*BAD_NUMBERS, "6000", "20000"]))],
            ["--image", paths["bad_images"], "--layer", "pool1", "--iters",
             data.draw(st.sampled_from(BAD_NUMBERS))],
            ["--image", paths["bad_images"], "--layer", "pool1", "--method", "magic"],
            ["--image", paths["bad_images"], "--layer", "conv1_1", "--method", "decoder"],
            ["--image", paths["bad_images"], "--layer", "pool1", "--decoder", paths["junk_st"]],
            ["--image", paths["bad_images"], "--layer", "pool1", "--seed",
             data.draw(st.sampled_from(BAD_SEEDS))],
        ]))  # fmt: skip
        where = data.draw(st.sampled_from(["file", "under_file", None]))
        target = Path(paths[where]) if where else out
        _check(["invert", *bad, "--method", "deconvnet", "--out", str(target)], target)
    else:
        bad = data.draw(st.sampled_from([
            ["--layer", "pool9"], ["--layer", "conv1_1"], ["--layer", ""],
            ["--layer", "pool1", "--epochs", data.draw(st.sampled_from(BAD_NUMBERS))],
            ["--layer", "pool1", "--lr", data.draw(st.sampled_from(BAD_NUMBERS))],
            ["--layer", "pool1", "--crop", data.draw(st.sampled_from(BAD_NUMBERS))],
            ["--layer", "pool1", "--images", paths["empty_dir"]],
            ["--layer", "pool1", "--images", paths["file"]],
            ["--layer", "pool1", "--out", paths["empty_dir"]],
            ["--layer", "pool1", "--out", paths["under_file"]],
            ["--layer", "pool1", "--model", paths["junk_pth"]],
        ]))  # fmt: skip
        _check(["train-decoder", *bad, "--quick", "--cache", str(out)], out)


@SETTINGS
@given(data=st.data())
def test_design_with_bad_values(world, data):
    paths = _paths(world)
    sizes = {"--K": "96", "--M": "32", "--ell": "5", "--D": "32", "--k": "10"}
    name = data.draw(st.sampled_from([*sizes, "--stride"]))
    bad = data.draw(st.sampled_from([*BAD_NUMBERS, "97", "31", "40"]))
    argv = ["design"]
    for key, value in sizes.items():
        argv += [key, bad if key == name else value]
    if name == "--stride":
        argv += ["--stride", bad]
    extra = data.draw(st.sampled_from([
        [], ["--delta", data.draw(st.sampled_from([*BAD_NUMBERS, "1", "0.5"]))],
        ["--eps", data.draw(st.sampled_from(BAD_NUMBERS))],
        ["--C", data.draw(st.sampled_from(["-1", "nan", "inf", "0", "abc", paths["file"],
                                            paths["missing"], paths["empty_dir"],
                                            str(world / "list.json")]))],
        ["--samples", data.draw(st.sampled_from(BAD_NUMBERS))],
        ["--seed", data.draw(st.sampled_from(BAD_SEEDS))],
    ]))  # fmt: skip
    rc, err = _call([*argv, *extra, "--no-measure"])
    assert rc in (0, 2) and "Traceback" not in err, (argv, extra, err)
    if rc == 2:
        assert len([line for line in err.splitlines() if line.strip()]) == 1, err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["report"],
        ["report", "{missing}"],
        ["report", "{file}"],
        ["report", "{empty_dir}"],
        ["reproduce"],
        ["reproduce", "fig2"],
        ["list", "--bogus"],
        ["design"],
        ["design", "--K", "96"],
        ["invert", "--layer", "pool1"],
        ["analyze", "--bogus-flag", "--out", "{missing}"],
    ],
)
def test_malformed_command_lines(world, argv):
    paths = _paths(world)
    argv = [a.format(**paths) if a.startswith("{") else a for a in argv]
    rc, err = _call(argv)
    assert rc == 2 and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
