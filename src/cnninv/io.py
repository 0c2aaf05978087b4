"""Atomic output files: written to a temporary file in the same folder, then renamed, so
an interrupted run never leaves a half-written JSON, PNG or HTML behind."""

from __future__ import annotations

import itertools
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "find_non_finite",
    "json_text",
    "to_jsonable",
]

#: A temporary ``.part`` file of no running writer and older than this is a leftover.
STALE_PART_SECONDS = 60


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".part"
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the usual mode
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _remove_stale_parts(path)
    return path


def _remove_stale_parts(path: Path) -> None:
    """Delete the ``.part`` files of ``path`` that a killed run left behind: those whose
    writer (the process id in the name) is gone, or, for a name without one, older than
    :data:`STALE_PART_SECONDS`. A part of a live writer is left alone."""
    now = time.time()
    for part in path.parent.glob(f".{path.name}.*.part"):
        pid = part.name[len(path.name) + 2 :].split(".", 1)[0]
        try:
            if pid.isdigit():
                if int(pid) == os.getpid() or _alive(int(pid)):
                    continue
            elif now - part.stat().st_mtime <= STALE_PART_SECONDS:
                continue
            part.unlink()
        except OSError:
            pass  # gone already, or not ours to delete


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


#: Types of the values a JSON file holds as they are (finite floats aside).
_PLAIN = frozenset({int, str, bool, type(None)})


def _plain_row(seq: list | tuple) -> bool:
    """Whether every entry of ``seq`` is a JSON scalar that needs no conversion: ints,
    strings, bools, None, or finite floats among ints. Checked by passes in C (``map``):
    the bulk of a large result is such rows (a support of a million indices), which the
    entry-by-entry recursion took seconds over."""
    kinds = set(map(type, seq))
    return kinds <= _PLAIN or (kinds <= {int, float} and all(map(math.isfinite, seq)))


def _numeric_table(seq: list | tuple) -> bool:
    """Whether ``seq`` is a non-empty list of lists of ints and finite floats (a table of
    coordinates, one row per entry of a support), checked by passes in C."""
    if not seq or set(map(type, seq)) != {list}:
        return False
    kinds = set(map(type, itertools.chain.from_iterable(seq)))
    return kinds <= {int} or (
        kinds <= {int, float} and all(map(math.isfinite, itertools.chain.from_iterable(seq)))
    )


def to_jsonable(obj: Any) -> Any:
    """Tensors, NumPy arrays and scalars, tuples and paths to plain JSON values; a
    non-finite float becomes None (JSON has no NaN)."""
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().tolist()
    elif isinstance(obj, np.ndarray | np.generic):
        obj = obj.tolist()
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        if _plain_row(obj) or _numeric_table(obj):
            return obj if type(obj) is list else list(obj)  # as it is: nothing to convert
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.dtype | torch.device):
        return str(obj)
    return obj


def json_text(data: Any) -> str:
    """``data`` (through :func:`to_jsonable`) as JSON text: objects and lists that hold
    objects or lists indented by two spaces, one entry per line; a list of scalars on one
    line (``[3, 224, 224]``; a support of a million indices is one line, not a million),
    a table of numbers one row per line, both encoded by the C encoder. ``json.loads``
    reads back the same values as from ``json.dumps(..., indent=2)``."""
    return _encode(to_jsonable(data), "")


def _encode(obj: Any, pad: str) -> str:
    inner = pad + "  "
    if isinstance(obj, dict) and obj:
        body = ",\n".join(f"{inner}{json.dumps(k)}: {_encode(v, inner)}" for k, v in obj.items())
        return "{\n" + body + "\n" + pad + "}"
    if isinstance(obj, list) and _numeric_table(obj):
        # one row per line, all rows by the C encoder: numbers hold no "], ["
        rows = json.dumps(obj)[1:-1].replace("], [", "],\n" + inner + "[")
        return "[\n" + inner + rows + "\n" + pad + "]"
    if isinstance(obj, list) and obj and not set(map(type, obj)).isdisjoint((dict, list)):
        return "[\n" + ",\n".join(inner + _encode(v, inner) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj)


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, json_text(data) + "\n")


def find_non_finite(obj: Any, path: str = "", allow: tuple[str, ...] = ("psnr",)) -> str | None:
    """The key path of the first NaN or infinite number in a result (tensors, arrays,
    dicts, lists), or None. Keys in ``allow`` may be infinite (the PSNR of two identical
    images is +inf); NaN is never allowed."""
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() and obj.numel() and not bool(torch.isfinite(obj).all()):
            return path or "."
        return None
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind == "f" and obj.size and not bool(np.isfinite(obj).all()):
            return path or "."
        return None
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = str(k)
            if key in allow and isinstance(v, float | list) and not _has_nan(v):
                continue
            found = find_non_finite(v, f"{path}/{key}", allow)
            if found:
                return found
        return None
    if isinstance(obj, list | tuple):
        if _plain_row(obj) or _numeric_table(obj):
            return None
        for i, v in enumerate(obj):
            found = find_non_finite(v, f"{path}[{i}]", allow)
            if found:
                return found
        return None
    if isinstance(obj, float) and not math.isfinite(obj):
        return path or "."
    return None


def _has_nan(v: Any) -> bool:
    values = v if isinstance(v, list) else [v]
    return any(isinstance(x, float) and math.isnan(x) for x in values)
