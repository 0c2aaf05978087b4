"""The ``analyze`` command: the paper's analyses for a network."""

from __future__ import annotations

import argparse
import sys

from cnninv.cli._args import check_output
from cnninv.cli.reproduce import common_options

__all__ = ["COMMANDS", "add_parsers"]


def add_parsers(sub) -> None:
    ana = sub.add_parser(
        "analyze", help="every network analysis (Tables 2/3 or 6/7, Figure 3, Table 4) of a CNN"
    )
    ana.add_argument("--model", default="vgg16", help="vgg16, alexnet, or a weights file")
    ana.add_argument("--weights", help="imagenet (default for vgg16), random, or a weights file")
    ana.add_argument("--images", help="folder of photos (default: the 20 ImageNet photos)")
    common_options(ana)


def _analyze(args: argparse.Namespace) -> None:
    from cnninv._checks import resolve_device
    from cnninv.reproduce import analyze

    resolve_device(args.device)
    check_output(args.out)
    analyze(
        args.model,
        args.out,
        weights=args.weights,
        images=args.images,
        quick=args.quick,
        seed=args.seed,
        device=args.device,
        progress=not args.no_progress and sys.stderr.isatty(),
        log=lambda msg: print(msg, file=sys.stderr),
    )


COMMANDS = {"analyze": _analyze}
