"""The ``list``, ``reproduce`` and ``report`` commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnninv.cli._args import check_output, int_arg, parse_set, seed_arg, threads_option

__all__ = ["COMMANDS", "add_parsers", "common_options"]


def common_options(p: argparse.ArgumentParser) -> None:
    """``--out``, ``--seed``, ``--device``, ``--threads``, ``--quick``, ``--no-progress``."""
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--seed", type=seed_arg, default=0, help="random seed, 0 ≤ seed < 2^63 (default 0)"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    threads_option(p)
    p.add_argument("--quick", action="store_true", help="small, fast version")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_parsers(sub) -> None:
    sub.add_parser("list", help="name the experiments")
    rep = sub.add_parser("reproduce", help="run experiments, write JSON, figures, report.html")
    rep.add_argument("names", nargs="+", metavar="EXPERIMENT", help="experiment names or 'all'")
    common_options(rep)
    rep.add_argument(
        "--samples",
        type=int_arg(1, 10**9, "--samples"),
        help="number of samples (experiments that take it)",
    )
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
        help="table1, phase-transition: a Dask scheduler address (default: a local "
        "in-process cluster)",
    )
    rep.add_argument(
        "--restart",
        action="store_true",
        help="table1, phase-transition: ignore (and replace) existing checkpoints instead of "
        "resuming them",
    )
    rep.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any configuration parameter, e.g. --set iters=50 (repeatable)",
    )
    report = sub.add_parser("report", help="rebuild DIR/report.html from the results in DIR")
    report.add_argument("dir")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def _list(args: argparse.Namespace) -> None:
    from cnninv.experiments import REGISTRY

    width = max(map(len, REGISTRY))
    for name, exp in REGISTRY.items():
        print(f"{name:<{width}}  {exp.title}")


def _reproduce(args: argparse.Namespace) -> None:
    from cnninv._checks import resolve_device
    from cnninv.reproduce import reproduce

    resolve_device(args.device)
    out = check_output(args.out)
    overrides: dict[str, object] = parse_set(args.set)
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
    if args.restart:
        overrides["restart"] = True
    if "table1" in args.names or "all" in args.names:
        overrides.setdefault("checkpoint_dir", str(out / "table1_checkpoints"))
    if "phase-transition" in args.names or "all" in args.names:
        overrides.setdefault("points_dir", str(out / "phase_transition_points"))
    reproduce(
        args.names,
        out,
        quick=args.quick,
        seed=args.seed,
        device=args.device,
        overrides=overrides,
        progress=not args.no_progress and sys.stderr.isatty(),
        log=_log,
    )


def _report(args: argparse.Namespace) -> None:
    from cnninv.report import build_report

    folder = Path(args.dir)
    if not folder.is_dir():
        raise ValueError(f"report: {folder} is not a folder of results")
    print(build_report(folder))


COMMANDS = {"list": _list, "reproduce": _reproduce, "report": _report}
