"""The ``cnninv invert`` and ``cnninv train-decoder`` commands: parse, call the library,
write the files, print one line each. Bad input is a ``ValueError`` (the main CLI turns it
into one line on stderr and exit code 2).

Wiring (in ``cnninv.cli``)::

    from cnninv.inversion import cli as inversion_cli
    inversion_cli.add_parsers(sub)                    # in build_parser()
    if args.command in inversion_cli.COMMANDS:        # in _run()
        inversion_cli.handle(args)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["COMMANDS", "add_parsers", "handle"]

COMMANDS = ("invert", "train-decoder")


def _device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _network_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", default="vgg16", help="vgg16 (default) or a VGG16 weights file (.pth, …)"
    )
    p.add_argument("--weights", help="imagenet (default for vgg16) or random")
    p.add_argument(
        "--cache",
        help="cnninv cache folder; decoders live in CACHE/decoders "
        "(default: $CNNINV_CACHE or ~/.cache/cnninv)",
    )


def _training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, help="epochs (default 20)")
    p.add_argument("--steps", type=int, help="steps per epoch (default 50)")
    p.add_argument("--batch", type=int, help="crops per step (default 8)")
    p.add_argument("--crop", type=int, help="crop side in px (default 64)")
    p.add_argument("--width", type=int, help="decoder base width (default 16)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default 1e-3)")
    p.add_argument("--scales", help="comma-separated sides the photos are resized to (default 224)")
    p.add_argument(
        "--quick", action="store_true", help="tiny decoders (seconds per layer on 2 CPU cores)"
    )


def add_parsers(subparsers) -> None:
    """Add ``invert`` and ``train-decoder`` to the main parser's sub-parsers."""
    from cnninv.inversion.methods import FILTERS, METHODS

    inv = subparsers.add_parser(
        "invert",
        help="reconstruct photos from a layer's activations (iht, decoder, optimize, deconvnet)",
        description="Reconstruct each photo from its activations at LAYER; write the "
        "reconstruction(s) as PNG, a grid beside the original, and a JSON with the "
        "image-space relative error, PSNR, SSIM and wall time.",
    )
    inv.add_argument("--image", required=True, nargs="+", help="photo(s) or a folder of photos")
    inv.add_argument("--layer", required=True, help="pool1…pool5, or convX_Y (optimize, deconvnet)")
    inv.add_argument(
        "--method",
        default="iht",
        help=f"one of {', '.join(METHODS)}, a comma-separated list, or 'all' (default iht)",
    )
    inv.add_argument(
        "--iters", type=int, help="IHT iterations (default 1) or optimize steps (default 200)"
    )
    inv.add_argument(
        "--filters", default="learned", choices=FILTERS, help="IHT filters (default learned)"
    )
    inv.add_argument("--decoder", help="decoder file (default: the cached one, trained if missing)")
    inv.add_argument("--size", type=int, default=224, help="image side in px (default 224)")
    inv.add_argument("--out", required=True, help="output folder")
    _network_args(inv)
    _training_args(inv)
    _device_args(inv)

    tr = subparsers.add_parser(
        "train-decoder",
        help="train the what-where decoder of pool1…pool5 on the offline photos",
        description="Train (or resume) the decoder of LAYER on crops of the offline photos, "
        "hold out a fixed set of foolbox photos, and save it as safetensors in the cache.",
    )
    tr.add_argument("--layer", required=True, help="pool1…pool5, comma-separated, or 'all'")
    tr.add_argument("--images", help="folder of extra training photos")
    tr.add_argument("--out", help="also copy the decoder file here (a .safetensors path)")
    tr.add_argument(
        "--restart", action="store_true", help="ignore an existing checkpoint and start over"
    )
    _network_args(tr)
    _training_args(tr)
    _device_args(tr)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def _progress(args) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def _net(args):
    from cnninv._checks import resolve_device
    from cnninv.experiments._networks import weights_arg
    from cnninv.networks import load_network

    dev = resolve_device(args.device)
    path_given = Path(args.model).suffix != "" or Path(args.model).exists()
    weights = None if path_given else weights_arg(args.weights)
    if path_given and args.weights:
        raise ValueError("--weights goes with a network name, not with a weights file")
    return load_network(args.model, weights, seed=args.seed, device=dev, features_only=True)


def _train_config(args, layer: str):
    from cnninv.inversion.training import QUICK_TRAINING, TrainConfig

    values = dict(QUICK_TRAINING) if args.quick else {}
    for arg, key in (
        ("epochs", "epochs"),
        ("steps", "steps_per_epoch"),
        ("batch", "batch"),
        ("crop", "crop"),
        ("width", "width"),
        ("lr", "lr"),
        ("scales", "scales"),
    ):
        if getattr(args, arg) is not None:
            values[key] = getattr(args, arg)
    return TrainConfig(layer=layer, seed=args.seed, **values)


def _layers(spec: str, model) -> list[str]:
    from cnninv.inversion.decoder import pool_number, vgg_layer_names

    if spec == "all":
        return [n for n in vgg_layer_names(model) if n.startswith("pool")]
    layers = [s.strip() for s in spec.split(",") if s.strip()]
    if not layers:
        raise ValueError(f"--layer must name a layer, got {spec!r}")
    for layer in layers:
        pool_number(model, layer)
    return layers


def _train(args) -> None:
    import shutil

    from cnninv.inversion.training import decoder_path, photo_split, train_decoder

    net = _net(args)
    split = photo_split(args.images)
    for layer in _layers(args.layer, net.model):
        config = _train_config(args, layer)
        path = decoder_path(net, config, args.cache, split.train)
        ckpt = path.parent / "checkpoints" / (path.stem + ".ckpt")
        if path.is_file() and not args.restart:
            _log(f"[cnninv] {layer}: already trained -> {path}")
        else:
            if args.restart:
                ckpt.unlink(missing_ok=True)
            _log(
                f"[cnninv] {layer}: training on {len(split.train)} photos, "
                f"{len(split.held_out)} held out, {config.total_steps} steps"
            )
            res = train_decoder(
                net, config, train_paths=split.train, held_out_paths=split.held_out,
                checkpoint=ckpt, resume=not args.restart, out=path, device=args.device,
                progress=_progress(args), log=_log,
            )  # fmt: skip
            tr = res.info.training
            print(
                f"{layer}: held-out error {tr['held_out_error']:.4f}, "
                f"{tr['train_seconds']:.1f} s of training -> {path}"
            )
        if args.out:
            out = Path(args.out)
            if len(args.layer.split(",")) > 1 or args.layer == "all":
                out = out.with_name(f"{out.stem}_{layer}{out.suffix or '.safetensors'}")
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)
            print(f"{layer}: copied to {out}")


def _methods(spec: str) -> list[str]:
    from cnninv.inversion.methods import METHODS

    if spec == "all":
        return list(METHODS)
    methods = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"--method must be among {', '.join(METHODS)} or 'all', got {spec!r}")
    return methods


def _png64(x, convention) -> str:
    from cnninv.inversion.methods import png_base64

    return png_base64(x, convention)


def _invert(args) -> None:
    import base64

    from cnninv.data.images import load_images
    from cnninv.inversion.decoder import layer_index, load_decoder
    from cnninv.inversion.methods import image_metrics, invert, next_conv
    from cnninv.inversion.training import get_decoder
    from cnninv.io import atomic_write_bytes, atomic_write_json
    from cnninv.report.inversion import grid_png

    methods = _methods(args.method)
    net = _net(args)
    layer_index(net.model, args.layer)
    images = [Path(item) for item in args.image]
    paths = images[0] if len(images) == 1 else images  # one folder, or files
    x, names = load_images(paths, net.convention, size=args.size)
    x = x.to(net.model.features[0].weight.device)
    decoder, decoder_about = None, None
    if any(m in ("decoder", "iht") for m in methods):
        if not args.layer.startswith("pool"):
            raise ValueError(
                f"methods decoder and iht start from a pooling layer (pool1…), not "
                f"{args.layer}; use optimize or deconvnet for {args.layer}"
            )
        if "iht" in methods:
            next_conv(net.model, args.layer)
        if args.decoder:
            decoder, info = load_decoder(
                args.decoder, layer=args.layer, model=net.model, convention=net.convention,
                device=args.device,
            )  # fmt: skip
            path = Path(args.decoder)
        else:
            decoder, info, path = get_decoder(
                net, _train_config(args, args.layer), cache=args.cache, device=args.device,
                progress=_progress(args), log=_log,
            )  # fmt: skip
        decoder_about = {
            "file": str(path),
            "held_out_error": info.training.get("held_out_error"),
            "training_images": len(info.training.get("training_images", [])),
        }
    out = Path(args.out)
    results = []
    recon: dict[str, object] = {}
    for method in methods:
        inv = invert(
            net, x, args.layer, method, decoder=decoder, iters=args.iters,
            filters=args.filters, seed=args.seed, progress=_progress(args),
        )  # fmt: skip
        recon[method] = inv.x_hat
        metrics = image_metrics(inv.x_hat, x, net.convention)
        for i, name in enumerate(names):
            png = out / f"{name}_{args.layer}_{method}.png"
            atomic_write_bytes(png, base64.b64decode(_png64(inv.x_hat[i], net.convention)))
            results.append(
                {
                    "image": name,
                    "method": method,
                    "file": png.name,
                    **{key: vals[i] for key, vals in metrics.items()},
                    "seconds": inv.seconds / len(names),
                    "info": {
                        k: (v[i] if isinstance(v, list) and len(v) == len(names) else v)
                        for k, v in inv.info.items()
                        if k != "feature_error_by_iter"
                    },
                }
            )
            print(
                f"{name} {args.layer} {method}: error {metrics['relative_error'][i]:.4f}, "
                f"PSNR {metrics['psnr'][i]:.2f} dB, SSIM {metrics['ssim'][i]:.3f}, "
                f"{inv.seconds / len(names):.2f} s"
            )
    for i, name in enumerate(names):
        pictures = [_png64(x[i], net.convention)]
        pictures += [_png64(recon[m][i], net.convention) for m in methods]
        captions = [""] + [
            f"error {r['relative_error']:.3f}, SSIM {r['ssim']:.2f}"
            for m in methods
            for r in results
            if r["image"] == name and r["method"] == m
        ]
        grid = grid_png([(name, pictures)], ["original", *methods], cell=2.4, captions=[captions])
        atomic_write_bytes(out / f"{name}_{args.layer}_grid.png", grid)
    from cnninv import __version__

    path = atomic_write_json(
        out / f"invert_{args.layer}.json",
        {
            "layer": args.layer,
            "model": net.name,
            "weights": net.weights,
            "weights_source": net.source,
            "image_size": args.size,
            "methods": methods,
            "filters": args.filters,
            "iters": args.iters,
            "decoder": decoder_about,
            "error_definition": "relative_error: ||x_hat - x|| / ||x|| in the network's input "
            "space; rgb_relative_error: the same in RGB [0, 1]; psnr, ssim (scikit-image, "
            "data_range=1, channel_axis) on RGB [0, 1]; seconds: wall time per image",
            "results": results,
            "device": str(args.device),
            "cnninv_version": __version__,
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )
    print(f"-> {path}")


def handle(args: argparse.Namespace) -> None:
    """Run ``invert`` or ``train-decoder`` (``args.command``)."""
    if args.command == "invert":
        _invert(args)
    elif args.command == "train-decoder":
        _train(args)
    else:
        raise ValueError(f"unknown command {args.command!r}; known: {', '.join(COMMANDS)}")
