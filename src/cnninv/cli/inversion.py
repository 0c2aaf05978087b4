"""The ``cnninv invert`` and ``cnninv train-decoder`` commands: parse, call the library
(the invert job is :func:`cnninv.experiments.invert.run`, rendered by
:func:`cnninv.report.inversion.invert_files`), write the files, print one line each. Bad
input is a ``ValueError`` (:func:`cnninv.cli.main` turns it into one line on stderr and
exit code 2)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnninv.cli._args import (
    MAX_ITERS,
    check_output,
    int_arg,
    nonnegative_float,
    positive_float,
    seed_arg,
    threads_option,
)

#: The largest image side ``invert --size`` takes (VGG16's pool1 of a 2048² photo
#: already holds 1 GB of activations).
MAX_IMAGE_SIDE = 2048

__all__ = ["COMMANDS", "add_parsers", "handle"]

COMMANDS = ("invert", "train-decoder")


def _device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=seed_arg, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    threads_option(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _network_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="vgg16",
        metavar="SPEC",
        help="vgg16 (default), a VGG16 weights file, or any SPEC of `cnninv analyze`",
    )
    p.add_argument("--weights", help="imagenet (default for vgg16), random, or a file")
    p.add_argument(
        "--cache",
        help="cnninv cache folder; decoders live in CACHE/decoders "
        "(default: $CNNINV_CACHE or ~/.cache/cnninv)",
    )


def _input_args(p: argparse.ArgumentParser) -> None:
    """How any model's photos are prepared (as ``cnninv analyze``), and its SPEC's
    arguments."""
    p.add_argument(
        "--size",
        type=int_arg(16, MAX_IMAGE_SIDE, "--size"),
        default=None,
        help=f"image side in px, 16-{MAX_IMAGE_SIDE} (default 224, or the model's)",
    )
    p.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="argument of a package.module:callable SPEC (repeatable)",
    )
    p.add_argument("--channels", default="", help="RGB or BGR: the channel order it takes")
    p.add_argument("--range", dest="value_range", default="", help="1 or 255: value of white")
    p.add_argument("--mean", default="", help="per-channel mean to subtract (a,b,c)")
    p.add_argument("--std", default="", help="per-channel std to divide by (a,b,c)")


def _training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int_arg(1, 100_000, "--epochs"), help="epochs (default 20)")
    p.add_argument(
        "--steps", type=int_arg(1, MAX_ITERS, "--steps"), help="steps per epoch (default 50)"
    )
    p.add_argument("--batch", type=int_arg(1, 4096, "--batch"), help="crops per step (default 8)")
    p.add_argument("--crop", type=int_arg(8, 1024, "--crop"), help="crop side in px (default 64)")
    p.add_argument(
        "--width", type=int_arg(1, 1024, "--width"), help="decoder base width (default 16)"
    )
    p.add_argument(
        "--convs", type=int_arg(1, 16, "--convs"), help="convolutions per decoder stage (default 2)"
    )
    p.add_argument("--lr", type=positive_float, help="Adam learning rate (default 1e-3)")
    p.add_argument(
        "--scales",
        help="sides the photos are resized to: '224' (default), '192,224,288' or '160-320'",
    )
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    p.add_argument(
        "--encode",
        choices=["crops", "photos"],
        help="crops: stream the photos from disk and encode each crop (default; any folder); "
        "photos: encode each photo whole once, in memory, and cut the crops from it",
    )
    p.add_argument(
        "--feature-weight",
        type=nonnegative_float,
        help="weight of the feature loss (default 0: pixels only)",
    )
    p.add_argument("--feature-layer", help="layer of the feature loss (default: the layer)")
    p.add_argument(
        "--quick", action="store_true", help="tiny decoders (seconds per layer on 2 CPU cores)"
    )


def add_parsers(subparsers) -> None:
    """Add ``invert`` and ``train-decoder`` to the main parser's sub-parsers."""
    from cnninv.analysis import FILTERS
    from cnninv.inversion import METHODS

    inv = subparsers.add_parser(
        "invert",
        help="reconstruct photos from a layer's activations (iht, decoder, optimize, deconvnet)",
        description="Reconstruct each input from its activations at LAYER; write the "
        "reconstruction(s) as PNG, a grid beside the original, and a JSON with the "
        "relative error (and, for photos, PSNR and SSIM) and wall time. VGG16/AlexNet layers "
        "by the paper's names (pool4, conv5_1) take every method; any other model (SPEC as "
        "in `cnninv analyze`) takes its layers' qualified names (cnninv analyze lists them) "
        "and the methods iht, optimize, deconvnet, and decoder once `cnninv train-decoder "
        "--model SPEC --layer NAME` has trained one.",
    )
    inv.add_argument(
        "--image", "--inputs", dest="image", required=True, nargs="+",
        help="photo(s), a folder of photos, a folder of WAV files or a .npy array",
    )  # fmt: skip
    inv.add_argument(
        "--layer",
        required=True,
        help="pool1…pool5 or convX_Y (VGG16), or a qualified module name (any model)",
    )
    inv.add_argument(
        "--method",
        default="iht",
        help=f"one of {', '.join(METHODS)}, a comma-separated list, or 'all' (default iht)",
    )
    inv.add_argument(
        "--iters",
        type=int_arg(1, MAX_ITERS, "--iters"),
        help="IHT iterations (default 1) or optimize steps (default 200)",
    )
    inv.add_argument(
        "--filters", default="learned", choices=FILTERS, help="IHT filters (default learned)"
    )
    inv.add_argument(
        "--decoder",
        help="decoder file (default: the shipped one for VGG16 pool1-pool4, else the cached "
        "one, trained if missing)",
    )
    _input_args(inv)
    inv.add_argument("--out", required=True, help="output folder")
    _network_args(inv)
    _training_args(inv)
    _device_args(inv)

    tr = subparsers.add_parser(
        "train-decoder",
        help="train a decoder: VGG16's what-where decoders (pool1…pool5), or any model's",
        description="Train (or resume) the decoder of LAYER on crops of the offline photos, "
        "hold out a fixed set of foolbox photos, and save it as safetensors in the cache. "
        "For any other model (--model SPEC, LAYER a qualified module name): a decoder from "
        "that layer's activation back to the input, trained on --inputs (or, for a photo "
        "model, the same photos), cached and used by `cnninv invert --method decoder`.",
    )
    tr.add_argument(
        "--layer",
        required=True,
        help="pool1…pool5, comma-separated, or 'all' (VGG16); any other model (--model SPEC): "
        "qualified module names, comma-separated (cnninv analyze lists them)",
    )
    tr.add_argument(
        "--inputs",
        help="any model: its training inputs (a folder of photos or WAV files, or a .npy "
        "array; every eighth kept for validation); default for photo models: the decoders' "
        "photos",
    )
    tr.add_argument(
        "--images",
        help="folder of training photos, added to the default photos (any size: streamed)",
    )
    tr.add_argument(
        "--only-images",
        action="store_true",
        help="train on the --images folder alone (validation: its photos chosen by hash)",
    )
    tr.add_argument(
        "--preset",
        choices=["shipped"],
        help="the settings of the shipped decoders (README: how to retrain them)",
    )
    tr.add_argument(
        "--out",
        help="also write the decoder here: a .safetensors file, or a folder (one "
        "vgg16_<layer>.safetensors per layer and a manifest.json with their SHA-256)",
    )
    tr.add_argument("--half", action="store_true", help="store float16 weights in --out")
    tr.add_argument(
        "--workers",
        type=int_arg(0, 256, "--workers"),
        default=1,
        help="DataLoader processes reading photos (default 1)",
    )
    tr.add_argument(
        "--amp", action="store_true", help="mixed precision (bfloat16 autocast; CUDA only)"
    )
    tr.add_argument(
        "--restart", action="store_true", help="ignore an existing checkpoint and start over"
    )
    _input_args(tr)
    _network_args(tr)
    _training_args(tr)
    _device_args(tr)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def _progress(args) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def _net(args):
    from cnninv._checks import resolve_device
    from cnninv.models import is_weights_file, load_network

    dev = resolve_device(args.device)
    if is_weights_file(args.model) and args.weights:
        raise ValueError("--weights goes with a network name, not with a weights file")
    return load_network(args.model, args.weights, seed=args.seed, device=dev, features_only=True)


def _train_config(args, layer: str):
    from cnninv.inversion import QUICK_TRAINING, TrainConfig
    from cnninv.inversion.shipping import SHIPPED_PRESET

    values = dict(QUICK_TRAINING) if args.quick else {}
    if getattr(args, "preset", None) == "shipped":
        if layer not in SHIPPED_PRESET:
            raise ValueError(f"--preset shipped covers {', '.join(SHIPPED_PRESET)}, not {layer}")
        values = dict(SHIPPED_PRESET[layer])
    for arg, key in (
        ("epochs", "epochs"),
        ("steps", "steps_per_epoch"),
        ("batch", "batch"),
        ("crop", "crop"),
        ("width", "width"),
        ("convs", "convs"),
        ("lr", "lr"),
        ("scales", "scales"),
        ("feature_weight", "feature_weight"),
        ("feature_layer", "feature_layer"),
        ("encode", "encode"),
    ):
        if getattr(args, arg, None) is not None:
            values[key] = getattr(args, arg)
    if getattr(args, "no_flip", False):
        values["flip"] = False
    return TrainConfig(layer=layer, seed=args.seed, **values)


def _layers(spec: str, model) -> list[str]:
    from cnninv.inversion import decoded_pools
    from cnninv.models import layer_names

    if spec == "all":
        return [n for n in layer_names(model) if n.startswith("pool")]
    layers = [s.strip() for s in spec.split(",") if s.strip()]
    if not layers:
        raise ValueError(f"--layer must name a layer, got {spec!r}")
    for layer in layers:
        decoded_pools(model, layer)
    return layers


def _init_distributed(device: str) -> str:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1): join the process group (NCCL on CUDA,
    gloo on the CPU) and return this process's device."""
    import os

    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world < 2 or dist.is_initialized():
        return device
    cuda = str(device).startswith("cuda")
    if cuda:
        import torch

        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return f"cuda:{local}"
    dist.init_process_group("gloo")
    return device


def _out_path(out: Path, net_name: str, layer: str, several: bool) -> tuple[Path, bool]:
    """Where --out puts the decoder of ``layer``, and whether it is a folder with a
    manifest."""
    if out.suffix != ".safetensors":
        return out / f"{net_name}_{layer}.safetensors", True
    if several:
        return out.with_name(f"{out.stem}_{layer}{out.suffix}"), False
    return out, False


def _train(args) -> None:
    import shlex

    from cnninv.data import load_images
    from cnninv.data.photos import photo_split
    from cnninv.inversion import decoder_path, load_decoder, save_decoder, train_decoder
    from cnninv.inversion.crops import readable_photos
    from cnninv.inversion.shipping import add_to_manifest
    from cnninv.inversion.training import distributed_rank, held_out_error

    if args.out:  # a .safetensors file, or a folder that receives files and a manifest
        kind = "file" if Path(args.out).suffix == ".safetensors" else "folder"
        check_output(args.out, kind=kind)
    if args.images and not Path(args.images).is_dir():
        raise ValueError(f"--images {args.images} is not a folder")
    if args.only_images and not args.images:
        raise ValueError("--only-images needs --images FOLDER")
    device = _init_distributed(args.device)
    args.device = device
    rank, world = distributed_rank()
    net = None
    if args.model not in ("vgg16", "alexnet"):
        loaded = _load_model(args, device)
        names = [] if args.layer == "all" else [n.strip() for n in args.layer.split(",")]
        if loaded.network is None or not all(_paper_layer(loaded, n) for n in names):
            if world > 1:
                raise ValueError("torchrun trains VGG16's decoders; train this model's alone")
            return _train_any(args, loaded)
        net = loaded.network
    given = [flag for flag, value in _any_model_flags(args) if value]
    if given:
        raise ValueError(
            f"{', '.join(given)} go with a decoder of any model (--model SPEC and a qualified "
            "layer name); VGG16's decoders take --images"
        )
    net = net or _net(args)
    split = photo_split(args.images, defaults=not args.only_images)
    split.train = readable_photos(split.train)
    layers = _layers(args.layer, net.model)
    command = "cnninv " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    for layer in layers:
        config = _train_config(args, layer)
        path = decoder_path(net, config, args.cache, split.train)
        ckpt = path.parent / "checkpoints" / (path.stem + ".ckpt")
        if path.is_file() and not args.restart:
            if rank == 0:
                _log(f"[cnninv] {layer}: already trained -> {path}")
        else:
            if args.restart and rank == 0:
                ckpt.unlink(missing_ok=True)
            if rank == 0:
                _log(
                    f"[cnninv] {layer}: training on {len(split.train)} photos "
                    f"({len(split.validation)} for validation, {len(split.held_out)} held out), "
                    f"{config.total_steps} steps of {config.batch} crops"
                    + (f" on {world} processes" if world > 1 else "")
                )
            res = train_decoder(
                net, config, train_paths=split.train, held_out_paths=split.held_out,
                validation_paths=split.validation, checkpoint=ckpt, resume=not args.restart,
                out=path, device=device, workers=args.workers, amp=args.amp,
                progress=_progress(args), log=_log, record={"command": command},
            )  # fmt: skip
            if rank != 0:
                continue
            tr = res.info.training
            val = tr["validation_error"]
            print(
                f"{layer}: held-out error {tr['held_out_error']:.4f}"
                + (f", validation error {val:.4f}" if val is not None else "")
                + f", {tr['train_seconds']:.1f} s of training -> {path}"
            )
        if args.out and rank == 0:
            out, folder = _out_path(Path(args.out), net.name, layer, len(layers) > 1)
            dec, info = load_decoder(path, layer=layer, model=net.model)
            save_decoder(dec, info, out, dtype="float16" if args.half else "float32")
            # the held-out error of the weights as written (float16 rounds them)
            stored, _ = load_decoder(out, layer=layer, model=net.model)
            held, _ = load_images(split.held_out, net.convention, size=224)
            errs = held_out_error(stored, net.model, layer, held)
            stored_error = sum(errs) / len(errs)
            if folder:
                add_to_manifest(
                    out.parent, out, info, info.training.get("command", command),
                    held_out_error_as_stored=stored_error,
                )  # fmt: skip
            print(
                f"{layer}: written to {out}"
                + (" (float16)" if args.half else "")
                + f", held-out error as stored {stored_error:.4f}"
            )


def _load_model(args, device):
    from cnninv.models import load_model, parse_model_args

    return load_model(
        args.model, args.weights, model_args=parse_model_args(args.model_arg), device=device,
        seed=args.seed, features_only=True,
    )  # fmt: skip


def _any_model_flags(args) -> list[tuple[str, object]]:
    return [
        ("--inputs", args.inputs), ("--size", args.size), ("--channels", args.channels),
        ("--range", args.value_range), ("--mean", args.mean), ("--std", args.std),
        ("--model-arg", args.model_arg),
    ]  # fmt: skip


def _train_any(args, loaded) -> None:
    """train-decoder for any model: one decoder per qualified layer name
    (:func:`cnninv.experiments.invert.train_any`), kept in the cache and copied to --out."""
    import shlex
    import shutil

    from cnninv.experiments import invert
    from cnninv.inversion.any_decoder import any_decoder_path, save_any_decoder
    from cnninv.inversion.generic import activation
    from cnninv.inversion.training import cache_dir
    from cnninv.io import atomic_write

    vgg_only = [
        ("--preset", args.preset), ("--amp", args.amp), ("--encode", args.encode),
        ("--feature-weight", args.feature_weight), ("--feature-layer", args.feature_layer),
        ("--crop", args.crop), ("--scales", args.scales), ("--half", args.half),
    ]  # fmt: skip
    bad = [flag for flag, value in vgg_only if value]
    if bad:
        raise ValueError(
            f"{', '.join(bad)} apply to VGG16's what-where decoders, not to a decoder of "
            f"{loaded.spec}"
        )
    layers = [n.strip() for n in args.layer.split(",") if n.strip()]
    if not layers or args.layer == "all":
        raise ValueError("name the layers of this model by their qualified names (--layer)")
    for layer in layers:
        activation(loaded.model, layer)  # the layer exists (its error lists the layers)
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix == ".safetensors" and len(layers) > 1:
        raise ValueError("--out FILE.safetensors takes one layer; give a folder for several")
    quick = args.quick
    config = invert.AnyTrainConfig(
        inputs=args.inputs or "", images=args.images or "", only_images=args.only_images,
        size=str(args.size) if args.size else "", channels=args.channels,
        value_range=args.value_range, mean=args.mean, std=args.std,
        steps=(args.epochs or (1 if quick else 4)) * (args.steps or (40 if quick else 250)),
        batch=args.batch or 8, lr=args.lr or 1e-3, width=args.width or (8 if quick else 32),
        convs=args.convs or 2, flips=not args.no_flip, seed=args.seed,
    )  # fmt: skip
    command = "cnninv " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    for layer in layers:
        path = any_decoder_path(cache_dir(args.cache), loaded.model, layer)
        if path.is_file() and not args.restart:
            _log(f"[cnninv] {layer}: already trained -> {path} (--restart to train again)")
        else:
            decoder, record = invert.train_any(
                loaded, layer, config, progress=_progress(args), log=_log
            )
            record["command"] = command
            provenance = {"spec": loaded.spec, "weights": loaded.source, **loaded.provenance}
            save_any_decoder(
                decoder, path, model=loaded.model, layer=layer, training=record,
                provenance=provenance,
            )  # fmt: skip
            held = record.get("held_out_error")
            print(
                f"{layer}: validation error {record['validation_error']:.4f} (untrained "
                f"{record['validation_error_before']:.4f})"
                + (f", held-out error {held:.4f}" if held is not None else "")
                + f", {record['train_seconds']:.1f} s of training -> {path}"
            )
        if out is not None:
            target = out if out.suffix == ".safetensors" else out / path.name
            atomic_write(target, lambda tmp, src=path: shutil.copyfile(src, tmp))
            print(f"{layer}: copied to {target}")


def _methods(spec: str) -> list[str]:
    from cnninv.inversion import METHODS

    if spec == "all":
        return list(METHODS)
    methods = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"--method must be among {', '.join(METHODS)} or 'all', got {spec!r}")
    return methods


def _paper_layer(loaded, layer: str) -> bool:
    """Whether ``layer`` is a paper name of a VGG16/AlexNet-style network (the decoder
    path); else the generic path takes a qualified module name."""
    from cnninv.models import layer_map

    if loaded.network is None:
        return False
    try:
        return layer in layer_map(loaded.model)
    except ValueError:
        return False


def _invert(args) -> None:
    from cnninv._checks import resolve_device
    from cnninv.experiments import invert
    from cnninv.io import atomic_write_bytes, atomic_write_json
    from cnninv.report.inversion import invert_files

    check_output(args.out)
    device = resolve_device(args.device)
    methods = tuple(_methods(args.method))
    loaded = _load_model(args, device)
    images = [Path(item) for item in args.image]
    if _paper_layer(loaded, args.layer):
        config = invert.Config(
            layer=args.layer, methods=methods, image_size=args.size or 224, iters=args.iters,
            filters=args.filters, decoder=args.decoder or "", cache=args.cache or "",
            seed=args.seed, device=str(device), quick=args.quick,
        )  # fmt: skip
        result = invert.run(
            loaded.network, images[0] if len(images) == 1 else images, config,
            _train_config(args, args.layer) if args.layer.startswith("pool") else None,
            progress=_progress(args), log=_log,
        )  # fmt: skip
    else:
        if len(images) != 1:
            raise ValueError("give one folder (or one file) of inputs for this model")
        if args.method == "all":  # the decoder where one was trained (or given)
            from cnninv.inversion.any_decoder import any_decoder_path
            from cnninv.inversion.training import cache_dir

            cached = any_decoder_path(cache_dir(args.cache), loaded.model, args.layer)
            methods = ("iht", "optimize", "deconvnet")
            if args.decoder or cached.is_file():
                methods += ("decoder",)
        config = invert.AnyConfig(
            layer=args.layer, methods=methods, inputs=str(images[0]),
            size=str(args.size) if args.size else "", channels=args.channels,
            value_range=args.value_range, mean=args.mean, std=args.std, iters=args.iters,
            filters=args.filters, decoder=args.decoder or "", cache=args.cache or "",
            seed=args.seed, device=str(device), quick=args.quick,
        )  # fmt: skip
        result = invert.run_any(loaded, config, progress=_progress(args), log=_log)
    files, record = invert_files(result)
    out = Path(args.out)
    for name, data in files.items():
        atomic_write_bytes(out / name, data)
    for r in record["results"]:
        quality = f", PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.3f}" if "psnr" in r else ""
        print(
            f"{r['image']} {args.layer} {r['method']}: error {r['relative_error']:.4f}"
            f"{quality}, {r['seconds']:.2f} s"
        )
    path = atomic_write_json(out / f"invert_{args.layer}.json", record)
    print(f"-> {path}")


def _train_leaving_nothing(args) -> None:
    """train-decoder; a --cache folder that this run created is removed when the run fails
    with an error (an interrupted run keeps its checkpoint, to resume)."""
    import shutil

    root = Path(args.cache).expanduser() if args.cache else None
    created = root is not None and not root.exists()
    try:
        _train(args)
    except (ValueError, OSError):
        if created and root.exists():
            shutil.rmtree(root, ignore_errors=True)
        raise


COMMANDS = {"invert": lambda args: _invert(args), "train-decoder": _train_leaving_nothing}


def handle(args: argparse.Namespace) -> None:
    """Run ``invert`` or ``train-decoder`` (``args.command``)."""
    if args.command == "invert":
        _invert(args)
    elif args.command == "train-decoder":
        _train(args)
    else:
        raise ValueError(f"unknown command {args.command!r}; known: {', '.join(COMMANDS)}")
