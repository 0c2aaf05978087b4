"""The ``cnninv`` command line: parse, call the library, print. Errors reach the user as
one line on stderr and exit code 2.

``cnninv.cli`` holds the parser and the ``list``, ``reproduce``, ``analyze`` and
``report`` commands; :mod:`cnninv.cli.inversion` the ``invert`` and ``train-decoder``
commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _parse_set(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--quick", action="store_true", help="small, fast version")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnninv",
        description="Invertibility of CNNs (Gilbert et al. 2017): reproduce the paper's "
        "figures and tables, analyse and invert real networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="name the experiments")
    rep = sub.add_parser("reproduce", help="run experiments, write JSON, figures, report.html")
    rep.add_argument("names", nargs="+", metavar="EXPERIMENT", help="experiment names or 'all'")
    _common(rep)
    rep.add_argument("--samples", type=int, help="number of samples (experiments that take it)")
    rep.add_argument(
        "--dataset",
        nargs="+",
        metavar="NAME",
        help="table1: fashion-mnist (default) or cifar10, then an optional folder",
    )
    rep.add_argument(
        "--full",
        action="store_true",
        help="table1: the paper's grid (widths 64-2048, every image, 30 epochs; GPU/cluster)",
    )
    rep.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="table1: a Dask scheduler address (default: a local in-process cluster)",
    )
    rep.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any configuration parameter, e.g. --set iters=50 (repeatable)",
    )
    ana = sub.add_parser(
        "analyze", help="every network analysis (Tables 2/3 or 6/7, Figure 3, Table 4) of a CNN"
    )
    ana.add_argument("--model", default="vgg16", help="vgg16, alexnet, or a weights file")
    ana.add_argument("--weights", help="imagenet (default for vgg16), random, or a weights file")
    ana.add_argument("--images", help="folder of photos (default: the 20 ImageNet photos)")
    _common(ana)
    from cnninv.cli.inversion import add_parsers as add_inversion_parsers

    add_inversion_parsers(sub)
    report = sub.add_parser("report", help="rebuild DIR/report.html from the results in DIR")
    report.add_argument("dir")
    return parser


def _run(args: argparse.Namespace) -> None:
    if args.command == "list":
        from cnninv.experiments import REGISTRY

        width = max(map(len, REGISTRY))
        for name, exp in REGISTRY.items():
            print(f"{name:<{width}}  {exp.title}")
    elif args.command == "reproduce":
        from cnninv._checks import resolve_device
        from cnninv.reproduce import reproduce

        resolve_device(args.device)
        overrides = _parse_set(args.set)
        if args.samples is not None:
            overrides["samples"] = args.samples
        if args.dataset:
            if len(args.dataset) > 2:
                raise ValueError("--dataset takes a name and at most one folder")
            overrides["dataset"] = args.dataset[0]
            if len(args.dataset) == 2:
                overrides["data_path"] = args.dataset[1]
        if args.full:
            overrides["full"] = True
        if args.scheduler:
            overrides["scheduler"] = args.scheduler
        if "table1" in args.names or "all" in args.names:
            overrides.setdefault("checkpoint_dir", str(Path(args.out) / "table1_checkpoints"))
        reproduce(
            args.names,
            args.out,
            quick=args.quick,
            seed=args.seed,
            device=args.device,
            overrides=overrides,
            progress=not args.no_progress and sys.stderr.isatty(),
            log=lambda msg: print(msg, file=sys.stderr),
        )
    elif args.command == "analyze":
        from cnninv._checks import resolve_device
        from cnninv.reproduce import analyze

        resolve_device(args.device)
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
    elif args.command in ("invert", "train-decoder"):
        from cnninv.cli.inversion import handle

        handle(args)
    elif args.command == "report":
        from cnninv.report import build_report

        print(build_report(args.dir))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _run(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"cnninv: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnninv: interrupted (no partial files were left)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
