"""Decoders, their training (held-out split, checkpoints, resume), the four inversion
methods, the experiments and the CLI, at toy sizes."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from cnninv.data import CAFFE_BGR
from cnninv.data.photos import file_sha256, held_out_photos, photo_split
from cnninv.inversion import (
    Decoder,
    DecoderInfo,
    OptimizeOptions,
    TrainConfig,
    encode,
    encoder_fingerprint,
    get_decoder,
    image_metrics,
    invert,
    load_decoder,
    pool_channels,
    save_decoder,
    train_decoder,
)
from cnninv.inversion.decoder import default_widths, features_of, layer_index
from cnninv.inversion.methods import deconvnet, iht_activation
from cnninv.models import VGG16_LAYERS, LoadedNetwork, block_names, next_conv
from cnninv.operators import ConvOperator
from cnninv.sparsity import model_sparse


# --------------------------------------------------------------------------- fixtures
class Toy(nn.Module):
    """A VGG-style network small enough for tests: 3 macro layers."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in self.features:
                if isinstance(m, nn.Conv2d):
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.02)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)

    def forward(self, x):
        return self.features(x)


def toy_net(seed: int = 0) -> LoadedNetwork:
    model = Toy(seed).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return LoadedNetwork("toy", model, CAFFE_BGR, "random", "test network", seed=seed)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Six small smooth colour photos (training) and two held out."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    g = np.random.default_rng(0)
    paths = []
    for i in range(8):
        low = g.random((5, 5, 3))
        img = Image.fromarray((low * 255).astype("uint8")).resize((40, 40), Image.BILINEAR)
        p = folder / f"photo{i}.png"
        img.save(p)
        paths.append(p)
    return paths[:6], paths[6:]


def tiny_config(**kw) -> TrainConfig:
    base = dict(
        layer="pool2", crop=16, width=2, epochs=2, steps_per_epoch=3, batch=2,
        scales="32", eval_size=32, checkpoint_every=2, lr=1e-2, seed=3,
    )  # fmt: skip
    return TrainConfig(**{**base, **kw})


def images(n: int = 2, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rgb = torch.nn.functional.interpolate(
        torch.rand(n, 3, 4, 4, generator=g), size=(size, size), mode="bilinear"
    )
    return CAFFE_BGR.to_input(rgb)


# --------------------------------------------------------------------------- encoder
def test_layer_names_are_vgg16s():
    from cnninv.models import VGG16

    with torch.device("meta"):
        model = VGG16()
    names = block_names(features_of(model))
    expected = {k: v for k, v in VGG16_LAYERS.items() if v.startswith("features.")}
    assert {n: f"features.{i}" for i, n in enumerate(names)} == expected
    assert pool_channels(model, "pool4") == [64, 128, 256, 512]


def test_encode_matches_the_network_and_its_switches():
    net = toy_net()
    x = images(2, 16)
    enc = encode(net.model, x, "pool3")
    assert torch.equal(enc.f, net.model.features(x))
    assert enc.sizes == [(16, 16), (8, 8), (4, 4)]
    # the switches point at each block's maximum of the pre-pool map
    pre = net.model.features[:2](x)
    flat = pre.flatten(2).gather(2, enc.switches[0].flatten(2)).view_as(enc.switches[0])
    assert torch.equal(flat, nn.functional.max_pool2d(pre, 2))


def test_unknown_layer_and_non_vgg_are_refused():
    net = toy_net()
    with pytest.raises(ValueError, match="layer must be one of"):
        layer_index(net.model, "pool9")
    alex = nn.Sequential(nn.Conv2d(3, 4, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2))
    with pytest.raises(ValueError, match="VGG-style"):
        encode(alex, images(1, 32), "pool1")


# --------------------------------------------------------------------------- decoder files
def make_decoder(net, layer="pool2", seed=0):
    n = int(layer[-1])
    dec = Decoder(pool_channels(net.model, layer), default_widths(n, 2), 255.0, seed=seed)
    info = DecoderInfo(
        layer,
        dec.architecture(),
        {"channel_order": "BGR", "scale": 255.0, "mean": [103.939, 116.779, 123.68],
         "std": [1.0, 1.0, 1.0], "image_size": 224},
        {"name": net.name, "weights": net.weights,
         "fingerprint": encoder_fingerprint(net.model, layer)},
        {"training_images": ["a"], "epochs": 1, "held_out_error": 0.5},
    )  # fmt: skip
    return dec, info


def test_decoder_output_shape_and_seeded_init():
    net = toy_net()
    x = images(2, 16)
    dec, _ = make_decoder(net, "pool3")
    enc = encode(net.model, x, "pool3")
    assert dec(enc.f, enc.switches, enc.sizes).shape == x.shape
    again, _ = make_decoder(net, "pool3")
    for a, b in zip(dec.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


def test_save_load_roundtrip(tmp_path):
    import dataclasses

    net = toy_net()
    dec, info = make_decoder(net)
    info.convention = dataclasses.asdict(net.convention)
    path = save_decoder(dec, info, tmp_path / "d.safetensors")
    back, binfo = load_decoder(path, layer="pool2", model=net.model, convention=net.convention)
    enc = encode(net.model, images(1, 16), "pool2")
    assert torch.equal(back(enc.f, enc.switches, enc.sizes), dec(enc.f, enc.switches, enc.sizes))
    assert binfo.training["held_out_error"] == 0.5
    assert binfo.encoder["fingerprint"] == encoder_fingerprint(net.model, "pool2")


def test_bad_decoder_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    net = toy_net()
    dec, info = make_decoder(net, "pool2")
    path = save_decoder(dec, info, tmp_path / "pool2.safetensors")
    # a pool2 decoder given for pool3
    with pytest.raises(ValueError, match="trained for pool2, not pool3"):
        load_decoder(path, layer="pool3")
    # another encoder (other filters)
    with pytest.raises(ValueError, match="another encoder"):
        load_decoder(path, layer="pool2", model=toy_net(seed=1).model)
    # wrong shapes under the right metadata
    state = {k: v.clone() for k, v in dec.state_dict().items()}
    state["stages.0.0.weight"] = torch.zeros(5, 4, 3, 3)
    save_file(state, str(tmp_path / "shapes.safetensors"), metadata=info.to_metadata())
    with pytest.raises(ValueError, match=r"wrong shapes: stages\.0\.0\.weight"):
        load_decoder(tmp_path / "shapes.safetensors", layer="pool2")
    # metadata whose layer disagrees with the architecture
    meta = {**info.to_metadata(), "layer": "pool3"}
    save_file(dec.state_dict(), str(tmp_path / "meta.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="architecture for 2 pools"):
        load_decoder(tmp_path / "meta.safetensors")
    # not a cnninv decoder, not a safetensors file, no file
    save_file(dec.state_dict(), str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not a cnninv decoder"):
        load_decoder(tmp_path / "plain.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_decoder(tmp_path / "junk.safetensors")
    with pytest.raises(ValueError, match="does not exist"):
        load_decoder(tmp_path / "missing.safetensors")


def test_float16_files_tensor_hash_and_truncation(tmp_path):
    """A float16 file decodes as its float32 weights rounded to float16; a file whose
    tensors were altered, or that was cut short, is refused with one ValueError."""
    net = toy_net()
    dec, info = make_decoder(net, "pool2")
    half = save_decoder(dec, info, tmp_path / "half.safetensors", dtype="float16")
    full = save_decoder(dec, info, tmp_path / "full.safetensors")
    n_params = sum(t.numel() for t in dec.state_dict().values())
    # the same header (same keys, the dtype names differ by the same length) and 2 bytes per
    # weight less; the metadata differ only in the dtype entry and the hash
    saved = full.stat().st_size - half.stat().st_size
    assert 2 * n_params <= saved <= 2 * n_params + 64
    back, _ = load_decoder(half, layer="pool2", model=net.model)
    for (k, a), b in zip(dec.state_dict().items(), back.state_dict().values(), strict=True):
        assert torch.equal(a.half().float(), b), k
    # a tensor changed under the recorded hash
    from safetensors.torch import load_file, save_file

    state = load_file(str(full))
    state["stages.0.0.bias"] = state["stages.0.0.bias"] + 1
    meta = {**info.to_metadata(), "dtype": "float32", "tensors_sha256": _meta(full)}
    save_file(state, str(tmp_path / "altered.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="do not hash to the SHA-256 recorded"):
        load_decoder(tmp_path / "altered.safetensors")
    # cut short
    data = full.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_decoder(tmp_path / "cut.safetensors")
    with pytest.raises(ValueError, match="dtype"):
        save_decoder(dec, info, tmp_path / "x.safetensors", dtype="int8")


def _meta(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return fh.metadata()["tensors_sha256"]


def test_shipped_decoders_are_checked_against_their_manifest(tmp_path):
    """A shipped decoder loads only if its file's SHA-256 is the manifest's; otherwise the
    error says how to retrain it. Networks with other filters have none."""
    from cnninv.inversion.shipping import (
        add_to_manifest,
        read_manifest,
        shipped_decoder,
        shipped_for,
    )

    net = toy_net()
    dec, info = make_decoder(net, "pool2")
    info.convention = dataclasses.asdict(net.convention)
    path = save_decoder(dec, info, tmp_path / "toy_pool2.safetensors", dtype="float16")
    add_to_manifest(tmp_path, path, info, "cnninv train-decoder …")
    entry = read_manifest(tmp_path)["decoders"]["pool2"]
    assert entry["sha256"] == file_sha256(path) and entry["file"] == path.name
    assert shipped_for(net, "pool2", tmp_path)
    assert not shipped_for(toy_net(seed=1), "pool2", tmp_path)
    assert not shipped_for(net, "pool1", tmp_path)
    got, _, about = shipped_decoder(net, "pool2", folder=tmp_path)
    enc = encode(net.model, images(1, 16), "pool2")
    want = dec(enc.f, enc.switches, enc.sizes)
    torch.testing.assert_close(got(enc.f, enc.switches, enc.sizes), want, rtol=1e-2, atol=1.0)
    assert about["path"] == str(path)
    # one byte changed: refused, with the command that retrains it
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"does not match the SHA-256.*cnninv train-decoder"):
        shipped_decoder(net, "pool2", folder=tmp_path)
    with pytest.raises(ValueError, match="no shipped decoder for pool1"):
        shipped_decoder(net, "pool1", folder=tmp_path)


# --------------------------------------------------------------------------- photos
def test_held_out_photos_never_in_training(tmp_path):
    from cnninv.data.photos import DEFAULT_SOURCES, is_validation

    split = photo_split()
    assert len(split.held_out) == 5
    assert not split.missing  # the set-up installs every default source
    assert split.sources == {name: s.count for name, s in DEFAULT_SOURCES.items()}
    assert len(split.train) + len(split.validation) == sum(split.sources.values())
    held = {file_sha256(p) for p in split.held_out}
    train = {file_sha256(p) for p in split.train}
    val = {file_sha256(p) for p in split.validation}
    assert not held & train and not held & val and not train & val
    assert all(is_validation(h) for h in val) and not any(is_validation(h) for h in train)
    assert len(split.validation) >= 5
    assert not {p.name for p in split.held_out} & {p.name for p in split.train}
    # a copy of a held-out photo under another name is dropped from the training photos
    shutil.copyfile(split.held_out[0], tmp_path / "innocent.jpg")
    extra = photo_split(tmp_path)
    assert [p.name for p in extra.dropped] == ["innocent.jpg"]
    assert tmp_path / "innocent.jpg" not in extra.train
    assert held_out_photos() == split.held_out


def test_a_missing_default_photo_source_is_said(monkeypatch):
    """The training set does not silently depend on what is installed: a missing source
    of the documented default is named in a warning and in the split."""
    from cnninv.data import photos as photos_module

    real = photos_module._package_dir
    monkeypatch.setattr(
        photos_module, "_package_dir", lambda name: None if name == "matplotlib" else real(name)
    )
    with pytest.warns(UserWarning, match="matplotlib"):
        split = photos_module.photo_split()
    assert split.missing and "matplotlib" in split.missing[0]
    assert not any("grace_hopper" in str(p) for p in split.train)


def test_the_cache_key_holds_the_photos_contents(photos, tmp_path):
    """Two training sets with the same file names but other contents are other decoders."""
    from cnninv.inversion import decoder_path

    train, _ = photos
    twin = tmp_path / "twin"
    twin.mkdir()
    for i, p in enumerate(train):  # same names, contents of another photo
        shutil.copyfile(train[(i + 1) % len(train)], twin / p.name)
    other = sorted(twin.iterdir())
    assert [p.name for p in other] == [p.name for p in train]
    net, config = toy_net(), tiny_config()
    assert decoder_path(net, config, tmp_path, train) != decoder_path(net, config, tmp_path, other)
    assert decoder_path(net, config, tmp_path, train) == decoder_path(
        net, config, tmp_path, list(train)
    )


def test_training_refuses_a_held_out_photo(photos, tmp_path):
    train, held = photos
    shutil.copyfile(held[0], tmp_path / "copy.png")
    with pytest.raises(ValueError, match="held-out photos are never trained or validated on"):
        train_decoder(
            toy_net(), tiny_config(), train_paths=[*train, tmp_path / "copy.png"],
            held_out_paths=held,
        )  # fmt: skip


# --------------------------------------------------------------------------- training
def test_training_crops_are_the_photos_resized_flipped_and_cut(photos):
    """A training crop is the photo resized to the drawn side (PIL, bilinear), flipped when
    drawn, cut at the drawn corner, in the network's input space (recomputed by hand)."""
    from PIL import Image

    from cnninv.inversion.crops import PhotoCrops

    train, _ = photos
    ds = PhotoCrops(train, CAFFE_BGR, 16, "24-40", seed=5)
    draws = [ds.draw(g) for g in range(40)]
    assert {d.flip for d in draws} == {False, True}
    assert all(24 <= d.side <= 40 for d in draws) and len({d.side for d in draws}) > 3
    for g in (0, 1, 7, 39):
        d = draws[g]
        with Image.open(train[d.photo]) as img:  # the photos are smaller than every side
            rgb = np.asarray(img.convert("RGB").resize((d.side, d.side), Image.BILINEAR))
        rgb = rgb[d.top : d.top + 16, d.left : d.left + 16].astype(np.float64) / 255
        if d.flip:
            rgb = rgb[:, ::-1]
        bgr = rgb[..., ::-1] * 255 - np.array([103.939, 116.779, 123.68])
        want = torch.from_numpy(bgr.copy()).permute(2, 0, 1).float()
        torch.testing.assert_close(ds[g], want, rtol=0, atol=1e-3)
    # same seed, same crops; another seed, other crops
    again = PhotoCrops(train, CAFFE_BGR, 16, "24-40", seed=5)
    assert torch.equal(again[7], ds[7])
    assert not torch.equal(PhotoCrops(train, CAFFE_BGR, 16, "24-40", seed=6)[7], ds[7])


def test_crops_of_encoded_photos_carry_the_right_switches(photos):
    """With encode="photos" a crop is cut from the whole photo's encoding: its image,
    activation and every pool's switches are those of the (resized, flipped) photo there,
    recomputed by brute force."""
    from PIL import Image

    from cnninv.inversion.crops import EncodedPhotos

    train, _ = photos
    net = toy_net()
    ep = EncodedPhotos(train, net.convention, 16, "32,40", model=net.model, layer="pool2",
                       seed=0)  # fmt: skip
    x, f, switches, sizes = ep.batch(range(12))
    assert sizes == [(16, 16), (8, 8)] and f.shape == (12, 6, 4, 4)
    feats = net.model.features
    assert {ep.draw(g).flip for g in range(12)} == {False, True}
    for b in range(12):
        d = ep.draw(b)
        assert d.top % 4 == 0 and d.left % 4 == 0
        img = Image.open(train[d.photo]).convert("RGB").resize((d.side, d.side), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.float32)[:, ::-1] if d.flip else np.asarray(img)
        rgb = torch.from_numpy(arr.astype(np.float32) / 255).permute(2, 0, 1)
        full = net.convention.to_input(rgb)[None]
        t, l_ = d.top, d.left
        torch.testing.assert_close(x[b], full[0, :, t : t + 16, l_ : l_ + 16], rtol=0, atol=0.1)
        _, idx1 = nn.functional.max_pool2d(feats[:2](full)[..., t : t + 16, l_ : l_ + 16], 2,
                                           return_indices=True)  # fmt: skip
        pre2 = feats[:7](full)[..., t // 2 : t // 2 + 8, l_ // 2 : l_ // 2 + 8]
        pooled, idx2 = nn.functional.max_pool2d(pre2, 2, return_indices=True)
        assert torch.equal(switches[0][b], idx1[0]) and torch.equal(switches[1][b], idx2[0])
        torch.testing.assert_close(f[b], pooled[0], rtol=2e-3, atol=1e-3)
    with pytest.raises(ValueError, match="list of sides"):
        EncodedPhotos(train, net.convention, 16, "32-40", model=net.model, layer="pool2")


def test_step_sampler_shares_every_step_between_processes():
    from cnninv.inversion.crops import StepSampler

    one = list(StepSampler(2, 5, 6))
    shares = [list(StepSampler(2, 5, 6, rank=r, world=3)) for r in range(3)]
    assert one == list(range(12, 30))
    assert sorted(i for share in shares for i in share) == one
    assert shares[1][:2] == [14, 15]  # step 2: samples 12..17, rank 1 takes 14, 15
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        StepSampler(0, 1, 5, world=2)


def test_unreadable_photos_are_skipped_and_named(photos, tmp_path):
    from cnninv.inversion.crops import readable_photos

    train, _ = photos
    (tmp_path / "bad.png").write_bytes(b"png? no")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable training photo.*bad\.png"):
        assert readable_photos([train[0], tmp_path / "bad.png"]) == [train[0]]


def test_a_folder_without_a_readable_image_is_one_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "b.png").write_bytes(b"")
    with pytest.raises(ValueError, match="no readable image among the 2 training photo"):
        train_decoder(
            toy_net(), tiny_config(), train_paths=sorted(tmp_path.iterdir()),
            held_out_paths=held_out_photos()[:1],
        )  # fmt: skip


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("encode", ["crops", "photos"])
def test_interrupted_training_resumes_to_the_same_weights(photos, tmp_path, encode):
    train, held = photos
    net, config = toy_net(), tiny_config(encode=encode)
    full = train_decoder(net, config, train_paths=train, held_out_paths=held)

    ckpt = tmp_path / "run.ckpt"
    seen = []

    def stop_after_epoch_1(step, epoch):
        seen.append((step, epoch))
        if epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_decoder(
            net, config, train_paths=train, held_out_paths=held, checkpoint=ckpt,
            callback=stop_after_epoch_1,
        )  # fmt: skip
    assert seen == [(2, None), (3, 1)] and ckpt.is_file()
    out = tmp_path / "dec.safetensors"
    resumed = train_decoder(
        net, config, train_paths=train, held_out_paths=held, checkpoint=ckpt, out=out
    )
    assert resumed.resumed_from_step == 3
    assert resumed.losses == full.losses
    for (name, a), b in zip(
        full.decoder.state_dict().items(), resumed.decoder.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert not ckpt.exists()  # removed once the decoder file is written
    _dec, info = load_decoder(out, layer="pool2", model=net.model, convention=net.convention)
    t = info.training
    assert t["epochs"] == 2 and t["steps"] == 6
    assert t["training_images"] == [p.stem for p in train]
    assert t["held_out_images"] == [p.stem for p in held]
    assert not set(t["training_images"]) & set(t["held_out_images"])
    assert np.isfinite(t["held_out_error"])
    assert info.encoder["fingerprint"] == encoder_fingerprint(net.model, "pool2")


def test_worker_processes_deliver_the_same_crops(photos):
    """Crops read by 2 DataLoader worker processes train the weights of crops read here."""
    train, held = photos
    here = train_decoder(toy_net(), tiny_config(), train_paths=train, held_out_paths=held)
    workers = train_decoder(
        toy_net(), tiny_config(), train_paths=train, held_out_paths=held, workers=2
    )
    assert workers.losses == here.losses
    for a, b in zip(here.decoder.parameters(), workers.decoder.parameters(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_of_another_configuration_is_refused(photos, tmp_path):
    train, held = photos
    ckpt = tmp_path / "run.ckpt"

    def stop(step, epoch):
        raise Interrupt

    with pytest.raises(Interrupt):
        train_decoder(
            toy_net(), tiny_config(), train_paths=train, held_out_paths=held,
            checkpoint=ckpt, callback=stop,
        )  # fmt: skip
    with pytest.raises(ValueError, match="another training configuration"):
        train_decoder(
            toy_net(), tiny_config(lr=0.5), train_paths=train, held_out_paths=held,
            checkpoint=ckpt,
        )  # fmt: skip


def test_mixed_precision_needs_cuda_and_processes_share_the_batch(photos):
    train, held = photos
    with pytest.raises(ValueError, match=r"amp \(mixed precision\) needs a CUDA device"):
        train_decoder(toy_net(), tiny_config(), train_paths=train, held_out_paths=held, amp=True)
    with pytest.raises(ValueError, match="workers"):
        train_decoder(toy_net(), tiny_config(), train_paths=train, held_out_paths=held, workers=-1)


def test_train_config_is_checked():
    with pytest.raises(ValueError, match="pooling layer"):
        TrainConfig(layer="conv3_1")
    with pytest.raises(ValueError, match="crop"):
        TrainConfig(layer="pool5", crop=16, scales="224")
    with pytest.raises(ValueError, match="at least crop"):
        TrainConfig(crop=64, scales="32")
    with pytest.raises(ValueError, match="at least crop"):
        TrainConfig(crop=64, scales="48-256")
    with pytest.raises(ValueError, match="encode must be one of"):
        TrainConfig(encode="pixels")
    with pytest.raises(ValueError, match="needs a list of sides"):
        TrainConfig(encode="photos", scales="160-320")
    with pytest.raises(ValueError, match="scales must be"):
        TrainConfig(scales="big")
    with pytest.raises(ValueError, match="convs"):
        TrainConfig(convs=1)
    with pytest.raises(ValueError, match="feature_weight"):
        TrainConfig(feature_weight=-1.0)


def test_get_decoder_trains_once_then_reads_the_cache(monkeypatch, tmp_path):
    import cnninv.inversion.training as training

    monkeypatch.setenv("CNNINV_CACHE", str(tmp_path))
    net = toy_net()
    config = tiny_config(layer="pool1", epochs=1, steps_per_epoch=1, scales="64", eval_size=16)
    dec, _info, path = get_decoder(net, config)
    assert path.parent == tmp_path / "decoders" and path.is_file()

    def no_training(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(training, "train_decoder", no_training)
    again, _, path2 = get_decoder(net, config)
    assert path2 == path
    assert torch.equal(again.stages[0][0].weight, dec.stages[0][0].weight)
    with pytest.raises(ValueError, match="no cached decoder"):
        get_decoder(net, tiny_config(layer="pool1", seed=9), train=False)


# --------------------------------------------------------------------------- methods
def test_deconvnet_through_one_conv_is_its_transpose():
    net = toy_net()
    x = images(2, 16)
    h = encode(net.model, x, "conv1_1").f
    W = ConvOperator.from_conv(net.model.features[0], (16, 16))
    assert torch.allclose(deconvnet(net.model, x, "conv1_1"), W.T(h), atol=1e-5)
    # through a pool: the unpooled map is non-zero only at the switches
    enc = encode(net.model, x, "pool1")
    y = deconvnet(net.model, x, "pool1")
    back = nn.functional.conv_transpose2d(
        nn.functional.max_unpool2d(enc.f, enc.switches[0], 2, 2, output_size=(16, 16)),
        net.model.features[0].weight,
        padding=1,
    )
    assert torch.allclose(y, back, atol=1e-5)


def test_iht_activation_keeps_the_norm_and_measures_k():
    net = toy_net()
    f = encode(net.model, images(2, 16), "pool1").f
    f_hat, info = iht_activation(net.model, f, "pool1")
    assert info["next_conv"] == "conv2_1" and info["k"] >= 1
    assert torch.allclose(f_hat.flatten(1).norm(dim=1), f.flatten(1).norm(dim=1), rtol=1e-4)
    f_rand, info_r = iht_activation(
        net.model, f, "pool1", filters="random", k=info["k"],
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert info_r["k"] == info["k"] and not torch.allclose(f_rand, f_hat)
    with pytest.raises(ValueError, match="no convolution follows pool3"):
        next_conv(net.model, "pool3")


def test_invert_every_method():
    net = toy_net()
    x = images(2, 16)
    dec, _ = make_decoder(net, "pool2")
    got = {
        method: invert(
            net, x, "pool2", method, decoder=dec, iters=3 if method == "optimize" else None
        )
        for method in ("decoder", "iht", "deconvnet", "optimize")
    }
    enc = encode(net.model, x, "pool2")
    with torch.no_grad():
        # decoder: the decoder on the encoder's own activation and switches
        torch.testing.assert_close(got["decoder"].x_hat, dec(enc.f, enc.switches, enc.sizes))
        # iht: the decoder on W^T M(W f, k), W = conv3_1's unit-norm filters, rescaled to ||f||
        conv = net.model.features[8]
        W = ConvOperator.from_conv(conv, enc.f.shape[-2:]).unit_norm_filters()
        k = got["iht"].info["k"]
        raw = W.T(model_sparse(W(enc.f), k, 2).code)
        f_hat = raw * (enc.f.flatten(1).norm(dim=1) / raw.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)
        want = dec(f_hat, enc.switches, enc.sizes)
    torch.testing.assert_close(got["iht"].x_hat, want, rtol=1e-4, atol=1e-3)
    assert got["optimize"].x_hat.shape == x.shape  # its behaviour: test_optimize_… below
    with pytest.raises(ValueError, match="method must be one of"):
        invert(net, x, "pool2", "magic")
    with pytest.raises(ValueError, match="needs the pool2 decoder"):
        invert(net, x, "pool2", "decoder")
    with pytest.raises(ValueError, match="decodes pool2, not pool1"):
        invert(net, x, "pool1", "decoder", decoder=dec)
    with pytest.raises(ValueError, match="pooling layer"):
        invert(net, x, "conv2_1", "iht", decoder=dec)
    # the deconvnet is rescaled to ||x||
    inv = invert(net, x, "conv2_1", "deconvnet")
    assert torch.allclose(inv.x_hat.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1), rtol=1e-4)


def test_optimize_reduces_the_feature_error_and_is_seeded():
    net = toy_net()
    x = images(1, 16)
    opts = OptimizeOptions(iters=25, lr=0.1)
    a = invert(net, x, "pool1", "optimize", optimize=opts, seed=1)
    b = invert(net, x, "pool1", "optimize", optimize=opts, seed=1)
    errs = a.info["feature_error_by_iter"]
    assert errs[-1] < 0.5 * errs[0]
    assert torch.equal(a.x_hat, b.x_hat)
    lo = CAFFE_BGR.to_input(torch.zeros(3, 1, 1))
    hi = CAFFE_BGR.to_input(torch.ones(3, 1, 1))
    assert (a.x_hat >= lo - 1e-3).all() and (a.x_hat <= hi + 1e-3).all()
    with pytest.raises(ValueError, match="iters"):
        OptimizeOptions(iters=0)


def test_switch_objective_is_zero_exactly_for_the_encoded_image():
    """The switch-constrained data term vanishes for the image whose values and switches
    it is given, and not for another image."""
    from cnninv.inversion.methods import _prepool_maps, switch_objective

    net = toy_net()
    x, other = images(2, 16, seed=0), images(2, 16, seed=1)
    enc = encode(net.model, x, "pool3")
    maps = _prepool_maps(net.model, x, "pool3")
    assert [tuple(m.shape[-2:]) for m in maps] == enc.sizes
    assert torch.equal(switch_objective(maps, enc.f, enc.switches), torch.zeros(2))
    wrong = switch_objective(_prepool_maps(net.model, other, "pool3"), enc.f, enc.switches)
    assert (wrong > 0.01).all()


def test_switch_conditions_by_hand():
    from cnninv.inversion import SWITCH_CONDITIONS, switch_information

    net = toy_net()
    x = images(2, 16)
    enc = encode(net.model, x, "pool2")
    g = torch.Generator().manual_seed(0)
    given = {c: switch_information(enc, c, g) for c in SWITCH_CONDITIONS}
    v, sw, _ = given["values_and_switches"]
    assert v is enc.f and sw is enc.switches
    v, sw, _ = given["switches_only"]
    mean = enc.f.abs().mean(dim=(1, 2, 3))
    assert torch.allclose(v, mean.view(-1, 1, 1, 1).expand_as(v)) and sw is enc.switches
    v, sw, _ = given["values_only"]
    assert v is enc.f
    for level, (h, w) in enumerate(enc.sizes):  # top-left of every 2x2 block, by hand
        r, c = torch.meshgrid(torch.arange(h // 2), torch.arange(w // 2), indexing="ij")
        assert torch.equal(sw[level][1, 0], 2 * r * w + 2 * c)
    v, sw, _ = given["neither"]
    assert (v >= 0).all() and torch.allclose(v.flatten(1).norm(dim=1), enc.f.flatten(1).norm(dim=1))
    for level, (_, w) in enumerate(enc.sizes):  # inside its own block, not the encoder's
        r, c = sw[level] // w, sw[level] % w
        ph, pw = sw[level].shape[-2:]
        rows = torch.arange(ph).view(ph, 1)
        cols = torch.arange(pw).view(1, pw)
        assert ((r // 2) == rows).all() and ((c // 2) == cols).all()
        assert not torch.equal(sw[level], enc.switches[level])


def test_table4_variants_are_the_rows_projected_and_rescaled():
    from cnninv.analysis import next_layer
    from cnninv.inversion import activation_stats, table4_activations

    net = toy_net()
    enc = encode(net.model, images(2, 16), "pool1")
    k = next_layer(net.model, "pool1", enc.f).k
    plain, err = table4_activations(net.model, enc, "pool1", k=k,
                                    generator=torch.Generator().manual_seed(4))  # fmt: skip
    both, _ = table4_activations(net.model, enc, "pool1", k=k, variants=True,
                                 generator=torch.Generator().manual_seed(4))  # fmt: skip
    for row, a in plain.items():  # the paper's rows do not change
        assert torch.equal(both[row], a)
    fnorm = enc.f.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    for row in ("iht_learned", "iht_random"):
        pos = plain[row].clamp_min(0)
        want = pos * fnorm / pos.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        torch.testing.assert_close(both[f"{row}_nonneg"], want)
    a = plain["random_activations"].abs()
    want = a * fnorm / a.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    torch.testing.assert_close(both["random_activations_nonneg"], want)
    rel = (plain["iht_learned"] - enc.f).flatten(1).norm(dim=1) / fnorm.flatten()
    assert err["iht_learned"] == pytest.approx(rel.tolist(), rel=1e-5)
    st = activation_stats(plain["iht_learned"], enc.f)
    neg = (plain["iht_learned"] < 0).flatten(1).float().mean(1)
    assert st["negative_fraction"] == pytest.approx(neg.tolist())
    own = activation_stats(enc.f, enc.f)
    assert own["negative_fraction"] == [0.0, 0.0]
    assert own["cosine_with_f"] == pytest.approx([1.0, 1.0])


def test_image_metrics_against_direct_formulas():
    from skimage.metrics import structural_similarity

    x = images(2, 16)
    noisy = x + 10 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    m = image_metrics(noisy, x, CAFFE_BGR)
    rel = (noisy - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    assert np.allclose(m["relative_error"], rel.tolist(), rtol=1e-5)
    a = CAFFE_BGR.to_rgb(noisy).clamp(0, 1)[0].permute(1, 2, 0).double().numpy()
    b = CAFFE_BGR.to_rgb(x).clamp(0, 1)[0].permute(1, 2, 0).double().numpy()
    assert m["psnr"][0] == pytest.approx(10 * np.log10(1 / np.mean((a - b) ** 2)), rel=1e-4)
    assert m["ssim"][0] == pytest.approx(
        structural_similarity(b, a, channel_axis=-1, data_range=1.0), rel=1e-6
    )
    same = image_metrics(x, x, CAFFE_BGR)
    assert same["relative_error"] == [0.0, 0.0] and same["ssim"][0] == pytest.approx(1.0)


# --------------------------------------------------------------------------- experiments, CLI
TINY = dict(
    layers="pool1", max_images=1, image_size=32, train_crop=16, train_width=2,
    train_epochs=1, train_steps=1, train_batch=2, train_scales="48", decoders="train",
    optimize_iters=2,
)  # fmt: skip


def test_experiments_and_their_sections(tmp_path):
    from cnninv.experiments import inversion_baselines, inversion_figs, switches, table4_image
    from cnninv.inversion import SWITCH_CONDITIONS
    from cnninv.report import SECTIONS

    common = dict(TINY, cache=str(tmp_path))
    r = table4_image.run(table4_image.Config(**common))
    row = r["layers"]["pool1"]
    for key in ("original_activation", "iht_learned", "iht_random", "random_activations"):
        assert np.isfinite(row[key])
    assert row["decoder"]["trained_in_this_run"]
    # row (b) recomputed by hand: the cached decoder on the photo's own activation
    from cnninv.data import load_images
    from cnninv.data.photos import held_out_photos
    from cnninv.inversion import image_metrics as metrics_of
    from cnninv.models import load_network

    net = load_network("vgg16", "imagenet", features_only=True)
    x, _ = load_images(held_out_photos()[:1], net.convention, size=32)
    train = table4_image.Config(**common).train_config("pool1")
    dec, _, _ = get_decoder(net, train, cache=tmp_path)
    enc = encode(net.model, x, "pool1")
    with torch.no_grad():
        want = metrics_of(dec(enc.f, enc.switches, enc.sizes), x, net.convention)
    assert row["original_activation"] == pytest.approx(want["relative_error"][0], rel=1e-5)
    json.dumps(r)
    f4 = inversion_figs.run(inversion_figs.Fig4Config(**common))
    assert f4["experiment"] == "fig4"
    # the same photo, decoder and seed give Figure 4 the errors of Table 4
    for name, errors in f4["layers"]["pool1"]["errors"].items():
        assert errors == pytest.approx(row["per_image"][name], rel=1e-6)
    assert not f4["layers"]["pool1"]["decoder"]["trained_in_this_run"]  # from the cache
    f5 = inversion_figs.run(inversion_figs.Fig5Config(**common))
    assert f5["experiment"] == "fig5"
    base = inversion_baselines.run(inversion_baselines.Config(**common))
    assert set(base["layers"]["pool1"]) == {"decoder", "iht", "optimize", "deconvnet"}
    sw = switches.run(switches.Config(**common))
    assert set(sw["layers"]["pool1"]) == {*SWITCH_CONDITIONS, "decoder"}
    # values + switches is the decoder on the photo's own activation: Table 4's row (b)
    assert sw["layers"]["pool1"]["values_and_switches"]["per_image"] == pytest.approx(
        row["per_image"]["original_activation"], rel=1e-6
    )
    # the optimisation column's first row, recomputed: M&V on f from the column's seed
    from cnninv._checks import make_generator
    from cnninv.inversion import OptimizeOptions, optimize_image

    opts = OptimizeOptions(iters=2)
    size = table4_image.Config(**common).optimize_size  # the column re-reads its photos
    xs, _ = load_images(held_out_photos()[:1], net.convention, size=size)
    fs = encode(net.model, xs, "pool1").f
    xo, _ = optimize_image(net.model, fs, "pool1", net.convention, tuple(xs.shape),
                           options=opts, generator=make_generator(7))  # fmt: skip
    want_o = metrics_of(xo, xs, net.convention)["relative_error"][0]
    assert row["original_activation_optimize"] == pytest.approx(want_o, rel=1e-4)
    order = row["ordering"]
    assert order["holds"] == (
        row["original_activation"] <= row["iht_learned"] <= row["random_activations"]
    )
    for name, result in (("table4-image", r), ("fig4", f4), ("fig5", f5),
                         ("inversion-baselines", base), ("switches", sw)):  # fmt: skip
        section = SECTIONS[name](json.loads(json.dumps(result)))
        assert section.tables and section.figures
        assert all(png[:4] == b"\x89PNG" for png in section.figures.values())


def test_experiment_configs_are_checked():
    from cnninv.experiments import inversion_baselines, table4_image

    with pytest.raises(ValueError, match="pooling layers"):
        table4_image.Config(layers="conv5_1")
    with pytest.raises(ValueError, match="methods must be"):
        inversion_baselines.Config(methods="decoder,magic")


def _parser():
    from cnninv.cli import inversion as cli

    parser = argparse.ArgumentParser()
    cli.add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser, cli


def test_cli_invert_writes_pictures_and_json(tmp_path):
    from cnninv.data import default_images

    parser, cli = _parser()
    photo = str(default_images()[3])
    args = parser.parse_args(
        ["invert", "--image", photo, "--layer", "pool2", "--method", "deconvnet,optimize",
         "--iters", "2", "--size", "32", "--out", str(tmp_path), "--no-progress"]
    )  # fmt: skip
    cli.handle(args)
    data = json.loads((tmp_path / "invert_pool2.json").read_text())
    assert [r["method"] for r in data["results"]] == ["deconvnet", "optimize"]
    for r in data["results"]:
        assert {"relative_error", "psnr", "ssim", "seconds"} <= set(r)
        assert (tmp_path / r["file"]).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "imagenet_03_990_pool2_grid.png").is_file()
    bad = parser.parse_args(
        ["invert", "--image", photo, "--layer", "pool2", "--method", "magic",
         "--out", str(tmp_path)]
    )  # fmt: skip
    with pytest.raises(ValueError, match="--method"):
        cli.handle(bad)


def test_cli_refuses_a_decoder_file_of_another_layer(tmp_path):
    from cnninv.data import default_images
    from cnninv.models import load_network

    net = load_network("vgg16", "imagenet", features_only=True)
    dec = Decoder(pool_channels(net.model, "pool1"), (2,), 255.0)
    import dataclasses

    info = DecoderInfo(
        "pool1", dec.architecture(), dataclasses.asdict(net.convention),
        {"name": "vgg16", "weights": "imagenet",
         "fingerprint": encoder_fingerprint(net.model, "pool1")},
    )  # fmt: skip
    path = save_decoder(dec, info, tmp_path / "pool1.safetensors")
    parser, cli = _parser()
    args = parser.parse_args(
        ["invert", "--image", str(default_images()[3]), "--layer", "pool2", "--method",
         "decoder", "--decoder", str(path), "--size", "32", "--out", str(tmp_path)]
    )  # fmt: skip
    with pytest.raises(ValueError, match="trained for pool1, not pool2"):
        cli.handle(args)
    ok = parser.parse_args(
        ["invert", "--image", str(default_images()[3]), "--layer", "pool1", "--method",
         "decoder,iht", "--decoder", str(path), "--size", "32", "--out", str(tmp_path)]
    )  # fmt: skip
    cli.handle(ok)
    data = json.loads((tmp_path / "invert_pool1.json").read_text())
    assert data["decoder"]["file"] == str(path)
    assert [r["method"] for r in data["results"]] == ["decoder", "iht"]


def test_cli_train_decoder_trains_caches_and_writes(tmp_path, capsys):
    from cnninv.data import load_images
    from cnninv.inversion.shipping import read_manifest
    from cnninv.inversion.training import held_out_error
    from cnninv.models import load_network

    parser, cli = _parser()
    base = ["train-decoder", "--layer", "pool1", "--epochs", "1", "--steps", "2", "--batch",
            "2", "--crop", "16", "--width", "2", "--scales", "48", "--cache", str(tmp_path),
            "--no-progress", "--workers", "0"]  # fmt: skip
    argv = [*base, "--out", str(tmp_path / "mine.safetensors")]
    cli.handle(parser.parse_args(argv))
    assert "held-out error" in capsys.readouterr().out
    files = list((tmp_path / "decoders").glob("vgg16-*-pool1-*.safetensors"))
    assert len(files) == 1
    _, info = load_decoder(tmp_path / "mine.safetensors", layer="pool1")
    assert info.training["steps"] == 2 and info.encoder["weights"] == "imagenet"
    assert info.training["command"].startswith("cnninv ")
    assert info.training["validation_images"] and info.training["validation_error"] > 0
    cli.handle(parser.parse_args(argv))  # the second time it is read from the cache
    assert "already trained" in capsys.readouterr().err
    # a folder: float16 file and a manifest with its SHA-256, no temporary file left
    out = tmp_path / "ship"
    cli.handle(parser.parse_args([*base, "--out", str(out), "--half"]))
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "vgg16_pool1.safetensors"]
    entry = read_manifest(out)["decoders"]["pool1"]
    assert entry["sha256"] == file_sha256(out / "vgg16_pool1.safetensors")
    # the error of the float16 weights as written, recomputed
    stored, _ = load_decoder(out / "vgg16_pool1.safetensors", layer="pool1")
    net = load_network("vgg16", "imagenet", features_only=True)
    x, _ = load_images(held_out_photos(), net.convention, size=224)
    errs = held_out_error(stored, net.model, "pool1", x)
    assert entry["held_out_error_as_stored"] == pytest.approx(sum(errs) / len(errs), rel=1e-6)
    assert entry["training_photos"] == len(info.training["training_images"])
    with pytest.raises(ValueError, match="pooling layer"):
        cli.handle(parser.parse_args(["train-decoder", "--layer", "conv3_1"]))


def test_diverging_training_says_so_and_leaves_no_cache(tmp_path, capsys):
    """A learning rate that makes the loss non-finite is one line (naming --lr), exit 2,
    and the --cache folder this run created is gone (CI's fuzz test found a checkpoint of
    NaN weights left behind)."""
    from cnninv.cli import main

    cache = tmp_path / "new cache"
    code = main(["train-decoder", "--layer", "pool1", "--lr", "1e20", "--quick", "--cache",
                 str(cache), "--no-progress"])  # fmt: skip
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("cnninv: error")]
    assert code == 2 and len(errors) == 1 and "non-finite" in errors[0] and "--lr" in errors[0]
    assert not cache.exists()


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    """A training folder without a readable image, a decoder file for another layer or
    another encoder, a truncated decoder file: one line on stderr, exit code 2, no file
    written."""
    from cnninv.cli import main
    from cnninv.data import default_images
    from cnninv.models import load_network

    empty = tmp_path / "photos"
    empty.mkdir()
    (empty / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "out"
    code = main(["train-decoder", "--layer", "pool1", "--images", str(empty),
                 "--only-images", "--cache", str(tmp_path / "cache"),
                 "--out", str(out / "d.safetensors")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "no readable image" in err
    net = load_network("vgg16", "imagenet", features_only=True)
    dec = Decoder(pool_channels(net.model, "pool1"), (2,), 255.0)
    info = DecoderInfo(
        "pool1", dec.architecture(), dataclasses.asdict(net.convention),
        {"name": "vgg16", "weights": "random", "fingerprint": "0" * 64},
    )  # fmt: skip
    other = save_decoder(dec, info, tmp_path / "other.safetensors")
    data = other.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 40])
    photo = str(default_images()[3])
    for decoder, layer, message in (
        (other, "pool2", "trained for pool1, not pool2"),
        (other, "pool1", "another encoder"),
        (tmp_path / "cut.safetensors", "pool1", "not a readable safetensors"),
    ):
        code = main(["invert", "--image", photo, "--layer", layer, "--method", "decoder",
                     "--decoder", str(decoder), "--size", "32", "--out", str(out)])  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in err and message in err, err
    assert not out.exists()


# --------------------------------------------------------------------------- data parallel
DDP_SCRIPT = """
import json, sys
import torch
from torch import nn
from cnninv.cli.inversion import _init_distributed
from cnninv.data import CAFFE_BGR
from cnninv.inversion import TrainConfig, train_decoder
from cnninv.inversion.training import distributed_rank
from cnninv.models import LoadedNetwork

def toy():
    g = torch.Generator().manual_seed(0)
    f = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    m = nn.Module(); m.features = f
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            p.requires_grad_(False)
    return LoadedNetwork("toy", m.eval(), CAFFE_BGR, "random", "test", seed=0)

def main(out, train, held):
    _init_distributed("cpu")
    torch.set_num_threads(1)
    config = TrainConfig(layer="pool2", crop=16, width=2, epochs=1, steps_per_epoch=4, batch=4,
                         scales="24-32", eval_size=32, lr=1e-2, seed=3)
    res = train_decoder(toy(), config, train_paths=train, held_out_paths=held)
    rank, world = distributed_rank()
    if rank == 0:
        state = {k: v.tolist() for k, v in res.decoder.state_dict().items()}
        json.dump({"world": world, "losses": res.losses, "state": state,
                   "processes": res.info.training["processes"]}, open(out, "w"))

if __name__ == "__main__":
    a = json.loads(sys.argv[1])
    main(a["out"], a["train"], a["held"])
"""


@pytest.mark.slow
def test_two_processes_train_the_decoder_of_one(photos, tmp_path):
    """torchrun with 2 CPU processes (gloo, DDP): each takes half of every step's crops and
    the averaged gradients give the weights of one process taking them all."""
    import os
    import runpy
    import subprocess
    import sys

    train, held = photos
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    args = {"train": [str(p) for p in train], "held": [str(p) for p in held]}
    results = {}
    # one process, here (no process group)
    runpy.run_path(str(script))["main"](str(tmp_path / "run1.json"), args["train"], args["held"])
    results[1] = json.loads((tmp_path / "run1.json").read_text())
    # two processes, launched by torchrun
    arg = json.dumps({"out": str(tmp_path / "run2.json"), **args})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script), arg]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results[2] = json.loads((tmp_path / "run2.json").read_text())
    one, two = results[1], results[2]
    assert one["world"] == 1 and two["world"] == 2 and two["processes"] == 2
    assert np.allclose(one["losses"], two["losses"], rtol=1e-4, atol=1e-7)
    for key, value in one["state"].items():
        assert np.allclose(value, two["state"][key], rtol=1e-4, atol=1e-6), key
    assert not np.allclose(one["losses"][0], one["losses"][-1])  # it trained
