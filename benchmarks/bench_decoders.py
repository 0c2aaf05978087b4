r"""Benchmark 6: the decoders' training and the inversion methods' cost per image.

(a) **Decoder training**, per layer, with the settings of the shipped decoders
    (``cnninv.inversion.shipping.SHIPPED_PRESET``): one training step, timed in this
    process on random crops, split into the frozen encoder's pass on the step's crops (the
    baseline: a step cannot cost less) and the whole step (encoder, decoder forward and
    backward, Adam), in interleaved rounds; images per second follow from the whole step.
    The ratio *step / encoder pass* is the figure that carries to other machines. Peak
    memory: ``cnninv train-decoder --preset shipped`` for a few steps in a child process
    (its peak resident set size read from ``getrusage``, as in ``bench_scale``; set-up,
    photos and validation included).
(b) **The shipped decoders' own training**, as their files record it (steps, seconds,
    device): what training them took, for reference (not timed here).
(c) **Inversion cost per image** at 224 px, pool1 and pool4: the optimisation (Mahendran &
    Vedaldi, Adam on the image; timed for a few steps and reported per 200 steps, the
    default) against the decoder (one forward pass) in the same rounds; the ratio is how
    many decoder inversions one optimisation costs.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_decoders.py [--quick] [--device cuda]
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from _timing import bench_main, machine_info, machine_line, measure_interleaved, paired_ratio
from bench_scale import _child

from cnninv._checks import resolve_device
from cnninv.inversion import TrainConfig, encode
from cnninv.inversion.decoder import Decoder, default_widths, pool_channels
from cnninv.inversion.methods import OptimizeOptions, optimize_image
from cnninv.inversion.shipping import SHIPPED_PRESET, read_manifest
from cnninv.models import load_network

__all__ = ["Config", "render", "run"]


@dataclass
class Config:
    device: str = "cpu"
    quick: bool = False
    seed: int = 0
    layers: tuple[str, ...] = ("pool1", "pool2", "pool3", "pool4")
    steps: int = 20  # training steps timed per layer (child process)
    split_repeat: int = 3  # runs of the in-process split
    optimize_layers: tuple[str, ...] = ("pool1", "pool4")
    optimize_steps: int = 10  # optimisation steps timed (reported per 200)
    size: int = 224

    @classmethod
    def make(cls, device: str = "cpu", quick: bool = False) -> Config:
        if quick:
            return cls(device=device, quick=True, layers=("pool1", "pool2"), steps=4,
                       split_repeat=2, optimize_layers=("pool1",), optimize_steps=3,
                       size=112)  # fmt: skip
        return cls(device=device)


def _train_child(cfg: Config, layer: str, tmp: Path) -> dict[str, Any]:
    """Peak memory of ``cnninv train-decoder`` with the shipped preset, ``cfg.steps``
    steps."""
    py = sys.executable
    cmd = [py, "-m", "cnninv.cli", "train-decoder", "--layer", layer, "--preset", "shipped",
           "--epochs", "1", "--steps", str(cfg.steps), "--cache", str(tmp), "--no-progress",
           "--device", cfg.device, "--workers", "1"]  # fmt: skip
    r = _child(cmd)
    if r["returncode"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r['stderr_tail']}")
    return {"steps": cfg.steps, "max_rss_bytes": r["max_rss_bytes"], "wall_s": r["wall_s"]}


def _shipped() -> dict[str, Any]:
    """The shipped decoders' training, from their manifest."""
    keys = ("steps", "batch", "train_seconds", "device", "held_out_error", "validation_error")
    return {layer: {k: e.get(k) for k in keys} for layer, e in read_manifest()["decoders"].items()}


def _split(cfg: Config, net, layer: str, dev) -> dict[str, Any]:
    """One training step of the preset, split: the encoder's pass vs the whole step."""
    preset = TrainConfig(layer=layer, **SHIPPED_PRESET[layer])
    n = int(layer[-1])
    crop = preset.crop - preset.crop % 2**n
    g = torch.Generator().manual_seed(cfg.seed)
    x = (torch.rand(preset.batch, 3, crop, crop, generator=g) * 255 - 120).to(dev)
    dec = Decoder(pool_channels(net.model, layer), default_widths(n, preset.width), 255.0,
                  convs=preset.convs).to(dev)  # fmt: skip
    opt = torch.optim.Adam(dec.parameters(), lr=1e-4)

    def encoder_pass():
        return encode(net.model, x, layer)

    def step():
        enc = encode(net.model, x, layer)
        loss = torch.nn.functional.mse_loss(dec(enc.f, enc.switches, enc.sizes) / 255, x / 255)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = measure_interleaved({"encoder": encoder_pass, "step": step}, repeat=cfg.split_repeat,
                            device=dev)  # fmt: skip
    return {"encoder_s": t["encoder"].median, "step_s": t["step"].median,
            "step_vs_encoder": paired_ratio(t["step"], t["encoder"]), "batch": preset.batch,
            "crop": crop, "images_per_second": preset.batch / t["step"].median}  # fmt: skip


def _optimize(cfg: Config, net, layer: str, dev) -> dict[str, Any]:
    """Seconds per image of the optimisation (per 200 steps) and of the decoder."""
    g = torch.Generator().manual_seed(cfg.seed)
    x = (torch.rand(1, 3, cfg.size, cfg.size, generator=g) * 255 - 120).to(dev)
    enc = encode(net.model, x, layer)
    n = int(layer[-1])
    dec = Decoder(pool_channels(net.model, layer), default_widths(n, 16), 255.0).to(dev).eval()
    opts = OptimizeOptions(iters=cfg.optimize_steps)

    def optimise():
        optimize_image(net.model, enc.f, layer, net.convention, tuple(x.shape), options=opts,
                       generator=torch.Generator(device=dev).manual_seed(0))  # fmt: skip

    def decode():
        with torch.no_grad():
            dec(enc.f, enc.switches, enc.sizes)

    t = measure_interleaved({"optimize": optimise, "decoder": decode}, repeat=2, device=dev)
    per_200 = 200 / cfg.optimize_steps
    return {"optimize_s_per_image": t["optimize"].median * per_200,
            "decoder_s_per_image": t["decoder"].median,
            "ratio": paired_ratio(t["optimize"], t["decoder"], per_200),
            "steps_timed": cfg.optimize_steps}  # fmt: skip


def run(device: str = "cpu", quick: bool = False, config: Config | None = None) -> dict:
    cfg = config if config is not None else Config.make(device, quick)
    dev = resolve_device(cfg.device)
    load_start = machine_info(dev).get("load_average_1m")
    net = load_network("vgg16", "imagenet", features_only=True, device=dev)
    training = {}
    with tempfile.TemporaryDirectory(prefix="cnninv-bench-") as tmp:
        for layer in cfg.layers:
            training[layer] = _train_child(cfg, layer, Path(tmp))
    split = {layer: _split(cfg, net, layer, dev) for layer in cfg.layers}
    optimise = {layer: _optimize(cfg, net, layer, dev) for layer in cfg.optimize_layers}
    return {
        "benchmark": "decoders",
        "config": asdict(cfg),
        "preset": {layer: SHIPPED_PRESET[layer] for layer in cfg.layers},
        "machine": {**machine_info(dev), "load_average_1m_at_start": load_start},
        "training": training,
        "split": split,
        "shipped": _shipped(),
        "optimize": optimise,
    }


def render(result: dict) -> str:
    cfg = result["config"]
    lines = [
        machine_line(result["machine"]),
        "",
        "(a) decoder training step, shipped preset (this process, random crops; peak RSS: "
        f"cnninv train-decoder for {cfg['steps']} steps in a child process)",
        f"    {'layer':<6} {'crop':>4} {'batch':>5} {'encoder pass':>12} {'whole step':>10} "
        f"{'step/encoder*':>13} {'images/s':>9} {'peak RSS':>9}",
    ]
    for layer, s in result["split"].items():
        t = result["training"][layer]
        lines.append(
            f"    {layer:<6} {s['crop']:>4} {s['batch']:>5} {s['encoder_s'] * 1e3:>9.1f} ms "
            f"{s['step_s'] * 1e3:>7.1f} ms {s['step_vs_encoder']:>12.2f}x "
            f"{s['images_per_second']:>9.1f} {t['max_rss_bytes'] / 1e6:>6.0f} MB"
        )
    lines += [
        "    * median over interleaved rounds of (step / encoder pass)",
        "",
        "(b) the shipped decoders' training, as their files record it (wall time of the run: "
        "set-up and the validation after each epoch included)",
    ]
    for layer, e in result["shipped"].items():
        lines.append(
            f"    {layer}: {e['steps']} steps of {e['batch']} crops, "
            f"{(e['train_seconds'] or 0) / 3600:.2f} h on {e['device']}, held-out error "
            f"{e['held_out_error']:.3f}, validation error {e['validation_error']:.3f}"
        )
    if not result["shipped"]:
        lines.append("    (none shipped)")
    lines += [
        "",
        f"(c) inversion cost per image at {cfg['size']} px (optimisation: "
        f"{cfg['optimize_steps']} steps timed, per 200)",
    ]
    for layer, o in result["optimize"].items():
        lines.append(
            f"    {layer}: optimisation {o['optimize_s_per_image']:.1f} s, decoder "
            f"{o['decoder_s_per_image'] * 1e3:.1f} ms ({o['ratio']:.0f}x)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return bench_main("bench_decoders", __doc__, run, render, argv,
                      quick_help="pool1-pool2, 4 steps, 112 px")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
