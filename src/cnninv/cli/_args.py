"""What every command shares: a parser whose errors are one line, argument types that
refuse bad values at parse time (naming the option), and the check of an output location
before any work is done."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = [
    "MAX_ITERS",
    "Parser",
    "apply_threads",
    "check_output",
    "int_arg",
    "parse_set",
    "positive_float",
    "seed_arg",
    "threads_option",
]

#: The largest iteration count any option accepts (a million iterations of the smallest
#: problem take hours; a typo of 10^20 must not run for ever).
MAX_ITERS = 1_000_000
#: Free space an output folder must have before a run starts.
MIN_FREE_BYTES = 20 * 2**20


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> None:
        self.exit(2, f"cnninv: error: {self.prog.split()[-1]}: {message}\n")


def int_arg(lo: int = 1, hi: int | None = None, what: str = "") -> Callable[[str], int]:
    """An argument type: an integer in ``[lo, hi]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lo or (hi is not None and value > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            raise argparse.ArgumentTypeError(
                f"{value} is out of range: {what or 'it'} must be {bound}"
            )
        return value

    parse.__name__ = "integer"
    return parse


def seed_arg(text: str) -> int:
    """An argument type: a seed, ``0 <= seed < 2**63`` (what a torch generator takes)."""
    return int_arg(0, 2**63 - 1, "a seed")(text)


seed_arg.__name__ = "seed"


def positive_float(text: str) -> float:
    """An argument type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
    return value


positive_float.__name__ = "number"


def nonnegative_float(text: str) -> float:
    """An argument type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


nonnegative_float.__name__ = "number"


def threads_option(p: argparse.ArgumentParser) -> None:
    """``--threads N``: torch's thread count for the command."""
    p.add_argument(
        "--threads",
        type=int_arg(1, 1024, "--threads"),
        help="CPU threads (default: $CNNINV_THREADS or $OMP_NUM_THREADS, else half the "
        "CPUs, at most 8: a shared machine does not stall)",
    )


def apply_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count to ``threads`` (None: the default of
    :func:`cnninv.training.default_threads`); returns it."""
    import torch

    from cnninv.training import default_threads

    n = threads if threads is not None else default_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def parse_set(items: Sequence[str]) -> dict[str, str]:
    """``--set key=value`` items as a dict (ValueError for a malformed item)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def check_output(path: str | os.PathLike, *, kind: str = "folder", option: str = "--out") -> Path:
    """Check, before any work, that ``path`` can receive the run's outputs: a folder (or a
    file, ``kind="file"``) that exists and is one, or can be created under an existing,
    writable folder on a file system that is not read-only or full. Nothing is created.

    Raises
    ------
    ValueError
        Naming ``option``, the path and what is wrong.
    """
    path = Path(path).expanduser()
    if str(path) == "" or "\x00" in str(path):
        raise ValueError(f"{option}: {str(path)!r} is not a valid path")
    if path.exists():
        if kind == "folder" and not path.is_dir():
            raise ValueError(f"{option} {path} is a file, not a folder")
        if kind == "file" and path.is_dir():
            raise ValueError(f"{option} {path} is a folder, not a file")
        target = path if path.is_dir() else path.parent
    else:
        target = path.parent
        while not target.exists():
            target = target.parent
        if not target.is_dir():
            raise ValueError(f"{option} {path}: {target} is a file, not a folder")
    folder = target if target.is_dir() else target.parent
    try:
        st = os.statvfs(folder)
        if st.f_flag & os.ST_RDONLY:
            raise ValueError(f"{option} {path}: {folder} is on a read-only file system")
    except (AttributeError, OSError):
        pass  # no statvfs here: the write itself will say
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: {folder} is not writable")
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise ValueError(
            f"{option} {path}: only {free / 2**20:.1f} MB free on {folder} "
            f"(needs at least {MIN_FREE_BYTES // 2**20} MB)"
        )
    return path


def stderr_line(message: str) -> None:
    """One line on stderr (newlines folded)."""
    print(" ".join(str(message).split()), file=sys.stderr)
