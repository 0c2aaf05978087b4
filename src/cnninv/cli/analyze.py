"""The ``analyze`` command: the paper's analyses for any CNN a user brings.

``cnninv analyze --model SPEC [--weights FILE] [--model-arg k=v] [--inputs PATH]
[--layers A,B] [--size H[,W]] [--channels RGB|BGR] [--range 1|255] [--mean a,b,c]
[--std a,b,c] [--quick] [--device D] --out DIR`` writes ``DIR/analysis.json``, the figures
and ``DIR/report.html``.
"""

from __future__ import annotations

import argparse
import sys

from cnninv.cli._args import MAX_ITERS, check_output, int_arg, positive_float
from cnninv.cli.reproduce import common_options

__all__ = ["COMMANDS", "add_parsers"]


def add_parsers(sub) -> None:
    ana = sub.add_parser(
        "analyze",
        help="the paper's analyses of every convolution of any CNN (density, coherence, "
        "model-RIP, δ, IHT reconstruction), with the assumptions that hold or fail",
        description="SPEC is vgg16 or alexnet (with --weights imagenet|random|FILE), "
        "package.module:callable or file.py:callable (with --model-arg key=value and "
        "--weights a state dict .pth/.pt/.safetensors), a TorchScript archive, an ONNX file "
        "(converted with onnx2torch) or a Keras .h5/.weights.h5 of a VGG-style network.",
    )
    ana.add_argument("--model", default="vgg16", metavar="SPEC", help="the network (see above)")
    ana.add_argument("--weights", help="weights: imagenet, random or a file (see above)")
    ana.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="argument of a package.module:callable SPEC (repeatable)",
    )
    ana.add_argument(
        "--inputs",
        "--images",
        dest="inputs",
        help="a folder of images, a folder of WAV files, or a .npy array shaped as the "
        "model's forward takes it (default: the 20 ImageNet photos, for image models)",
    )
    ana.add_argument("--layers", default="", help="comma-separated layers (default: every conv)")
    ana.add_argument("--size", default="", help="image size H or H,W the model takes")
    ana.add_argument("--channels", default="", help="RGB or BGR: the channel order it takes")
    ana.add_argument(
        "--range", dest="value_range", default="", help="1 or 255: the value of white it takes"
    )
    ana.add_argument("--mean", default="", help="per-channel mean to subtract (a,b,c)")
    ana.add_argument("--std", default="", help="per-channel std to divide by (a,b,c)")
    ana.add_argument(
        "--max-inputs", type=int_arg(1, 100_000, "--max-inputs"), help="use the first N inputs"
    )
    ana.add_argument(
        "--samples",
        type=int_arg(1, 100_000, "--samples"),
        help="synthetic model-sparse codes per layer (default 100; quick 16)",
    )
    ana.add_argument(
        "--iht-iters",
        type=int_arg(1, MAX_ITERS, "--iht-iters"),
        help="IHT iterations recorded (default 20)",
    )
    ana.add_argument(
        "--lam", type=positive_float, help="Algorithm 2's λ as a fraction of λ_max (default 0.1)"
    )
    ana.add_argument(
        "--analyses",
        help="comma-separated subset of density, coherence, rip, iht, algorithm2, delta "
        "(default all but delta: δ_k bracketed from both sides, the costliest)",
    )
    common_options(ana)


def _analyze(args: argparse.Namespace) -> None:
    from cnninv._checks import resolve_device
    from cnninv.experiments import analyze
    from cnninv.experiments.registry import make_job_config
    from cnninv.io import atomic_write_bytes, atomic_write_json
    from cnninv.models import load_model, parse_model_args
    from cnninv.report import build_report
    from cnninv.report.analysis import analysis_pngs

    device = resolve_device(args.device)
    out = check_output(args.out)
    values = {
        "inputs": args.inputs or "",
        "layers": args.layers,
        "size": args.size,
        "channels": args.channels,
        "value_range": args.value_range,
        "mean": args.mean,
        "std": args.std,
        "seed": args.seed,
        "device": str(device),
    }
    for key in ("max_inputs", "samples", "iht_iters", "analyses"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if args.lam is not None:
        if not args.lam < 1:
            raise ValueError(f"--lam must be a fraction of λ_max in (0, 1), got {args.lam}")
        values["lam_fraction"] = args.lam
    config = make_job_config(analyze.Config, analyze.QUICK, quick=args.quick, values=values)
    model_args = parse_model_args(args.model_arg)
    if model_args and ":" not in str(args.model):
        raise ValueError("--model-arg goes with a package.module:callable SPEC")
    loaded = load_model(
        args.model, args.weights, model_args=model_args, device=device, seed=args.seed,
        features_only=True,
    )  # fmt: skip
    result = analyze.run(
        loaded,
        config,
        progress=not args.no_progress and sys.stderr.isatty(),
        log=lambda msg: print(msg, file=sys.stderr),
    )
    path = atomic_write_json(out / "analysis.json", result)
    for name, png in analysis_pngs(result).items():
        atomic_write_bytes(out / name, png)
    report = build_report(out)
    print(f"{len(result['layers'])} convolution(s) analysed -> {path}, {report}")


COMMANDS = {"analyze": _analyze}
