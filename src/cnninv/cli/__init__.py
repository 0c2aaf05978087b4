"""The ``cnninv`` command line: parse, call the library, print. Errors reach the user as
one line on stderr and exit code 2; nothing is half-written.

One module per group of commands: :mod:`~cnninv.cli.reproduce` (``list``,
``reproduce``, ``report``), :mod:`~cnninv.cli.analyze` (``analyze``),
:mod:`~cnninv.cli.design` (``design``),
:mod:`~cnninv.cli.inversion` (``invert``, ``train-decoder``); :mod:`~cnninv.cli._args`
holds what they share (one-line parse errors, checked argument types, the output check).
"""

from __future__ import annotations

import signal
import sys
import warnings
from collections.abc import Sequence

import torch

from cnninv.cli import analyze, design, inversion, reproduce
from cnninv.cli._args import Parser, apply_threads, stderr_line

__all__ = ["build_parser", "main"]

_GROUPS = (reproduce, analyze, design, inversion)


def build_parser() -> Parser:
    parser = Parser(
        prog="cnninv",
        description="Invertibility of CNNs (Gilbert et al. 2017): reproduce the paper's "
        "figures and tables, analyse and invert real networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in _GROUPS:
        group.add_parsers(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    stderr_line(f"cnninv: warning: {message}")


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"cannot write or read {exc.filename}: {exc.strerror or exc}"
    return str(exc) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 done, 2 bad input, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    handlers = {name: fn for group in _GROUPS for name, fn in group.COMMANDS.items()}
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    threads_before = torch.get_num_threads()
    try:
        if hasattr(args, "threads"):
            apply_threads(args.threads)
        handlers[args.command](args)
    except (ValueError, OSError) as exc:
        stderr_line(f"cnninv: error: {_error_text(exc)}")
        return 2
    except KeyboardInterrupt:
        stderr_line("cnninv: interrupted (no partial files were left)")
        return 130
    finally:
        warnings.showwarning = previous
        torch.set_num_threads(threads_before)  # main() may run inside a program (tests)
    # the work is done and on disk: an interrupt while the interpreter shuts down (thread
    # pools, progress bars) must not print a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
