r"""Real signals for 1-d networks: a folder of audio files read with ``soundfile``.

:func:`load_signals` reads every audio file of a folder (WAV, FLAC, OGG, AIFF, … : what
libsndfile reads) into one batch ``(N, L)`` of float32 samples in [-1, 1]:

* several channels are averaged to mono, and the result says so (:attr:`Signals.notes`);
* the files must share one sample rate, unless ``sample_rate`` is given: then each file
  at another rate is resampled to it (polyphase filtering, :func:`scipy.signal.resample_poly`),
  and the result says which;
* the signals are cut to one length: ``length`` samples from the start (a shorter one is
  zero-padded at the end, said), or the length of the shortest file;
* a file that cannot be read is skipped with a ``UserWarning`` naming it; none readable is a
  ``ValueError``.

:func:`frame_signals` cuts signals into frames of a network's input length (e.g. the
1024-sample frames of CREPE). Real recordings ship with Debian's ``alsa-utils``
(``/usr/share/sounds/alsa/*.wav``, 48 kHz mono speech).

>>> import numpy as np, soundfile, tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> soundfile.write(folder / "a.wav", np.zeros((800, 2)), 8000)
>>> s = load_signals(folder)
>>> s.x.shape, s.names, s.sample_rate, s.notes
(torch.Size([1, 800]), ['a'], 8000, ['a: 2 channels averaged to mono'])
>>> frame_signals(s, 300).x.shape
torch.Size([2, 300])
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cnninv._checks import check_positive_int

__all__ = ["AUDIO_SUFFIXES", "Signals", "frame_signals", "list_audio", "load_signals"]

#: Suffixes of the files :func:`load_signals` reads from a folder (libsndfile's formats).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".au", ".mp3")


@dataclass
class Signals:
    """A batch of mono signals.

    Attributes
    ----------
    x : Tensor of shape ``(N, L)``
        float32 samples, full scale ±1.
    names : list of str
        One per row: the file name without suffix (``"name#k"`` for the k-th frame).
    sample_rate : int
        Samples per second.
    notes : list of str
        What was done to the files (channels averaged, resampled, cut or padded).
    """

    x: torch.Tensor
    names: list[str]
    sample_rate: int
    notes: list[str] = field(default_factory=list)


def list_audio(folder: str | Path) -> list[Path]:
    """The audio files of a folder (name order, :data:`AUDIO_SUFFIXES`, hidden files
    skipped), or the file itself.

    Raises
    ------
    ValueError
        If ``folder`` does not exist or holds no audio file.
    """
    path = Path(folder)
    if not path.exists():
        raise ValueError(f"inputs {str(path)!r} do not exist")
    if path.is_file():
        return [path]
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise ValueError(f"inputs {str(path)!r} hold no audio file ({', '.join(AUDIO_SUFFIXES)})")
    return files


def _read(path: Path) -> tuple[np.ndarray, int, int]:
    """(mono float32 samples, sample rate, channels in the file)."""
    import soundfile

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    if data.shape[0] == 0:
        raise ValueError("no samples")
    if not np.isfinite(data).all():
        raise ValueError("samples are not finite")
    return data.mean(axis=1), int(rate), int(data.shape[1])


def _resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    from scipy.signal import resample_poly

    g = math.gcd(rate, target)
    return resample_poly(x, target // g, rate // g).astype(np.float32)


def load_signals(
    folder: str | Path,
    *,
    length: int | None = None,
    sample_rate: int | None = None,
) -> Signals:
    """Read a folder of audio files into a batch of mono signals.

    Parameters
    ----------
    folder : str or Path
        A folder (files with an :data:`AUDIO_SUFFIXES` suffix, name order) or one file.
    length : int, optional
        Keep the first ``length`` samples of each signal (zero-padding a shorter one);
        by default the length of the shortest.
    sample_rate : int, optional
        Resample every file to this rate. By default the files must share one rate.

    Returns
    -------
    Signals

    Raises
    ------
    ValueError
        If the folder holds no readable audio file, or files at different sample rates
        without ``sample_rate`` (naming them and their rates), or a bad parameter.
        Unreadable files are skipped with a ``UserWarning`` that names them.
    """
    if length is not None:
        check_positive_int(length, "length")
    if sample_rate is not None:
        check_positive_int(sample_rate, "sample_rate")
    read: list[tuple[str, np.ndarray, int]] = []
    skipped: list[str] = []
    notes: list[str] = []
    for path in list_audio(folder):
        try:
            x, rate, channels = _read(path)
        except Exception as exc:  # libsndfile's errors, and ours, for a file it cannot use
            skipped.append(f"{path} ({type(exc).__name__}: {str(exc).strip()[:80]})")
            continue
        if channels > 1:
            notes.append(f"{path.stem}: {channels} channels averaged to mono")
        read.append((path.stem, x, rate))
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable audio file(s): {'; '.join(skipped)}",
            UserWarning,
            stacklevel=2,
        )
    if not read:
        raise ValueError(f"no readable audio file in inputs {str(folder)!r}")
    rates = {rate for _, _, rate in read}
    if sample_rate is None and len(rates) > 1:
        listing = ", ".join(f"{name} {rate} Hz" for name, _, rate in read)
        raise ValueError(
            f"the audio files in {str(folder)!r} have different sample rates ({listing}); "
            "give a sample rate to resample them to"
        )
    target = sample_rate if sample_rate is not None else rates.pop()
    signals = []
    for name, x, rate in read:
        if rate != target:
            x = _resample(x, rate, target)
            notes.append(f"{name}: resampled from {rate} Hz to {target} Hz")
        signals.append(x)
    n = length if length is not None else min(len(x) for x in signals)
    batch = np.zeros((len(signals), n), dtype=np.float32)
    for i, ((name, _, _), x) in enumerate(zip(read, signals, strict=True)):
        batch[i, : min(n, len(x))] = x[:n]
        if len(x) < n:
            notes.append(f"{name}: {len(x)} samples zero-padded to {n}")
    if length is None and any(len(x) > n for x in signals):
        notes.append(f"signals cut to the shortest, {n} samples")
    return Signals(torch.from_numpy(batch), [name for name, _, _ in read], target, notes)


def frame_signals(
    signals: Signals, length: int, *, hop: int | None = None, max_frames: int | None = None
) -> Signals:
    """Cut each signal into frames of ``length`` samples (the last partial frame dropped).

    Parameters
    ----------
    signals : Signals
    length : int
        Samples per frame (a network's input length, e.g. 1024 for CREPE).
    hop : int, optional
        Samples between frame starts; ``length`` (no overlap) by default.
    max_frames : int, optional
        Keep at most this many frames of each signal (evenly spaced over it).

    Returns
    -------
    Signals
        Rows ``"name#k"``, the k-th frame of ``name``.

    Raises
    ------
    ValueError
        If a parameter is not a positive integer, or the signals are shorter than ``length``.
    """
    if not isinstance(signals, Signals):
        raise ValueError(f"signals must be Signals, got {type(signals).__name__}")
    check_positive_int(length, "length")
    hop = length if hop is None else check_positive_int(hop, "hop")
    if max_frames is not None:
        check_positive_int(max_frames, "max_frames")
    total = signals.x.shape[1]
    if total < length:
        raise ValueError(f"length {length} is longer than the signals ({total} samples)")
    starts = list(range(0, total - length + 1, hop))
    if max_frames is not None and len(starts) > max_frames:
        picks = np.linspace(0, len(starts) - 1, max_frames).round().astype(int)
        starts = [starts[i] for i in picks]
    x = torch.stack([signals.x[:, s : s + length] for s in starts], dim=1).flatten(0, 1)
    names = [f"{name}#{k}" for name in signals.names for k in range(len(starts))]
    note = f"cut into {len(starts)} frames of {length} samples (hop {hop}) per signal"
    return Signals(x.contiguous(), names, signals.sample_rate, [*signals.notes, note])
