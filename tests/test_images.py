"""Images: the default photos, reading and preprocessing, and back for display."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from cnninv.data import (
    CAFFE_BGR,
    TORCHVISION_RGB,
    InputConvention,
    default_images,
    imagenet_label,
    load_images,
    to_display,
)

Image = pytest.importorskip("PIL.Image")

CONVENTIONS = [CAFFE_BGR, TORCHVISION_RGB]


def _write(path, rgb: np.ndarray) -> None:
    Image.fromarray(rgb).save(path)


@pytest.fixture
def photo():
    """A 16x16 RGB test image with distinct channels."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)


@pytest.mark.skipif(importlib.util.find_spec("foolbox") is None, reason="needs foolbox")
def test_default_images_are_the_20_imagenet_photos():
    paths = default_images()
    assert len(paths) == 20
    assert [p.name.split("_")[1] for p in paths] == [f"{i:02d}" for i in range(20)]
    assert all(0 <= imagenet_label(p) < 1000 for p in paths)
    x, names = load_images(paths[:2], CAFFE_BGR)
    assert x.shape == (2, 3, 224, 224) and names == [p.stem for p in paths[:2]]
    shown = to_display(x, CAFFE_BGR)
    assert shown.shape == (2, 224, 224, 3)
    assert 0.0 <= float(shown.min()) and float(shown.max()) <= 1.0
    assert float(shown.std()) > 0.1  # a photo, not a constant
    assert imagenet_label("cat.jpg") is None


@pytest.mark.parametrize("convention", CONVENTIONS, ids=["caffe", "torchvision"])
def test_preprocessing_roundtrip(tmp_path, photo, convention):
    _write(tmp_path / "b.png", photo)
    # at the image's own size nothing is resampled: exact up to float rounding
    x, names = load_images([tmp_path / "b.png"], convention, size=16)
    assert names == ["b"] and x.shape == (1, 3, 16, 16)
    back = to_display(x, convention)
    assert back.shape == (1, 16, 16, 3)
    want = torch.from_numpy(photo.astype(np.float32) / 255.0)
    torch.testing.assert_close(back[0], want, rtol=0, atol=1e-5)
    torch.testing.assert_close(to_display(x[0], convention), want, rtol=0, atol=1e-5)
    chw = want.permute(2, 0, 1)
    torch.testing.assert_close(convention.to_rgb(convention.to_input(chw)), chw)


def test_caffe_convention_is_bgr_0_255_minus_mean(tmp_path):
    red = np.zeros((4, 4, 3), dtype=np.uint8)
    red[..., 0] = 255
    _write(tmp_path / "red.png", red)
    x, _ = load_images(tmp_path / "red.png", CAFFE_BGR, size=4)
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([-103.939, -116.779, 255.0 - 123.68]))
    x, _ = load_images(tmp_path / "red.png", TORCHVISION_RGB, size=4)
    want = torch.tensor([(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225])
    torch.testing.assert_close(x[0, :, 0, 0], want)


def test_folder_resize_grey_and_unreadable(tmp_path, photo):
    _write(tmp_path / "b_colour.jpg", photo)
    Image.fromarray(photo[..., 0]).save(tmp_path / "a_grey.png")  # single channel
    (tmp_path / "c_broken.jpg").write_bytes(b"not an image at all")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    with pytest.warns(UserWarning, match=r"c_broken\.jpg"):
        x, names = load_images(tmp_path, TORCHVISION_RGB)
    assert names == ["a_grey", "b_colour"]
    assert x.shape == (2, 3, 224, 224)
    grey = to_display(x[0], TORCHVISION_RGB)
    torch.testing.assert_close(grey[..., 0], grey[..., 1], atol=1e-5, rtol=0)


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_images(tmp_path / "nowhere", CAFFE_BGR)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no readable image"):
        load_images(tmp_path / "empty", CAFFE_BGR)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.warns(UserWarning, match=r"x\.png"), pytest.raises(ValueError, match="no readable"):
        load_images(tmp_path / "bad", CAFFE_BGR)
    with pytest.raises(ValueError, match="convention"):
        load_images(tmp_path / "bad", "caffe")
    with pytest.raises(ValueError, match="size"):
        load_images(tmp_path / "bad", CAFFE_BGR, size=0)
    with pytest.raises(ValueError, match="shape"):
        to_display(torch.zeros(4, 8, 8), CAFFE_BGR)


def test_custom_convention_image_size(tmp_path, photo):
    _write(tmp_path / "p.png", photo)
    conv = InputConvention("RGB", 1.0, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), image_size=32)
    x, _ = load_images([tmp_path / "p.png"], conv)
    assert x.shape == (1, 3, 32, 32)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
