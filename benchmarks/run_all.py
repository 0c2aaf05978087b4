"""Run every benchmark and write their figures to one JSON file (``make bench``).

Each benchmark is a module of this folder exposing ``run(device, quick) -> dict`` (the
figures, with the configuration and the machine) and ``render(result) -> str`` (a
plain-text table). To add one, import it and add it to ``BENCHMARKS``.

Usage::

    python benchmarks/run_all.py [--device cpu|cuda] [--quick] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import bench_iht

BENCHMARKS = {
    "iht": bench_iht,
}

DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run all cnninv benchmarks.")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"JSON file ({DEFAULT_OUT})")
    parser.add_argument(
        "--only", choices=sorted(BENCHMARKS), action="append", help="run only these"
    )
    args = parser.parse_args(argv)
    results = {}
    for name in args.only or BENCHMARKS:
        module = BENCHMARKS[name]
        print(f"== {name} ==", flush=True)
        try:
            result = module.run(args.device, args.quick)
        except (ValueError, RuntimeError) as exc:
            print(f"run_all: {name}: error: {exc}", file=sys.stderr)
            return 1
        print(module.render(result), flush=True)
        results[name] = result
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=2)
        fh.write("\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
