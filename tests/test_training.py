"""The training machinery shared by the decoders and the Table 1 classifiers."""

from __future__ import annotations

import math

import pytest
import torch

from cnninv.classify.models import ConvClassifier, SeededDropout
from cnninv.training import (
    cosine_lr,
    derive_seed,
    load_checkpoint,
    save_checkpoint,
    step_generator,
    torch_threads,
)


def test_cosine_schedule_by_formula():
    for step in (0, 1, 7, 50, 99, 100):
        want = 0.5 * 2e-3 * (1 + math.cos(math.pi * step / 100))
        assert cosine_lr(step, 100, 2e-3) == pytest.approx(want, abs=1e-15)
    assert cosine_lr(0, 0, 1.0) == 1.0  # no division by zero


def test_seeds_depend_on_their_parts_only():
    assert derive_seed("a", 1, {"x": 2}) == derive_seed("a", 1, {"x": 2})
    assert derive_seed("a", 1) != derive_seed("a", 2)
    assert 0 <= derive_seed("z") < 2**63
    a = torch.rand(4, generator=step_generator(3, 10))
    assert torch.equal(a, torch.rand(4, generator=step_generator(3, 10)))
    assert not torch.equal(a, torch.rand(4, generator=step_generator(3, 11)))


def test_checkpoints_round_trip_and_bad_files_name_the_way_out(tmp_path):
    state = {"step": 3, "w": torch.arange(4.0), "history": [1.0, 0.5]}
    path = save_checkpoint(tmp_path / "c.ckpt", state)
    back = load_checkpoint(path)
    assert back["step"] == 3 and torch.equal(back["w"], state["w"])
    (tmp_path / "bad.ckpt").write_bytes(b"\x00truncated")
    with pytest.raises(ValueError, match=r"bad\.ckpt.*--restart"):
        load_checkpoint(tmp_path / "bad.ckpt", restart_hint="rerun with --restart")
    torch.save([1, 2], tmp_path / "list.ckpt")
    with pytest.raises(ValueError, match="holds a list"):
        load_checkpoint(tmp_path / "list.ckpt")


def test_thread_count_is_restored():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_dropout_masks_come_from_the_generator_passed_in():
    """No generator is stored on the module (no state mutated by training)."""
    drop = SeededDropout(0.5).train()
    x = torch.ones(2, 64)
    a = drop(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, drop(x, torch.Generator().manual_seed(1)))
    assert not hasattr(drop, "generator")
    model = ConvClassifier(1, 4, 3, in_channels=1, seed=0).train()
    img = torch.randn(2, 1, 32, 32)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(model(img, g1), model(img, g2))
