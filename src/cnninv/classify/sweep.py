"""Hyper-parameter sweeps on Dask (``dask.distributed``).

Each configuration is one task: ``client.submit`` of a pure function of a plain spec
dict (:func:`cnninv.classify.train.train_config`) that returns a plain result dict. By
default the tasks run on an in-process :class:`~dask.distributed.LocalCluster`
(``processes=False``: worker threads talking in-process; the scheduler's HTTP endpoint
listens on a free port of localhost only); ``scheduler=ADDRESS``
sends them to a user's cluster instead, whose workers must have ``cnninv`` installed and
see the data and checkpoint folders at the same paths.

Dask is an optional dependency (``pip install 'dask[distributed]'``), imported only when
a sweep runs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

__all__ = ["dask_client", "describe_scheduler", "map_specs", "run_sweep"]


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ValueError(
            "the Table 1 sweep needs Dask: pip install 'dask[distributed]' "
            "(or cnninv's 'classify' extra)"
        ) from exc
    return distributed


def describe_scheduler(scheduler: str | None, n_workers: int) -> str:
    if scheduler is None:
        return f"dask LocalCluster (in-process, {n_workers} worker thread(s))"
    return f"dask scheduler at {scheduler}"


@contextlib.contextmanager
def _quiet_workers() -> Iterator[None]:
    """A task's error reaches the caller as the task's own exception (one line at the
    CLI); the workers' "Compute Failed" log would print it a second time, with a
    traceback, so Dask's loggers are quietened for the block."""
    loggers = [logging.getLogger(n) for n in ("distributed", "distributed.worker")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, n_workers: int = 1) -> Iterator[Any]:
    """A :class:`distributed.Client`: on a new in-process ``LocalCluster`` of
    ``n_workers`` single-threaded workers when ``scheduler`` is None, else connected to
    the scheduler at that address. Closed (and the local cluster shut down) on exit.

    Torch's intra-op thread count is process-wide; it is restored on exit, since the
    tasks may set it (their spec's ``threads``).
    """
    distributed = _import_distributed()
    if scheduler is None and (
        isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1
    ):
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
    threads_before = torch.get_num_threads()
    with _quiet_workers():
        if scheduler is None:
            cluster = distributed.LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=False,
                # the scheduler always serves HTTP (health checks): a free port on
                # localhost, not 8787 on every interface
                dashboard_address="127.0.0.1:0",
                silence_logs=40,  # logging.ERROR
            )
            try:
                client = distributed.Client(cluster)
            except BaseException:
                cluster.close()
                raise
        else:
            cluster = None
            try:
                client = distributed.Client(scheduler, timeout="20s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise ValueError(
                    f"cannot reach the Dask scheduler at {scheduler!r}: {exc}"
                ) from exc
        try:
            yield client
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
            torch.set_num_threads(threads_before)


def map_specs(
    client: Any,
    fn: Callable[[dict], dict],
    specs: Sequence[Mapping[str, Any]],
    *,
    keys: Sequence[str] | None = None,
    progress: bool = False,
    desc: str = "sweep",
) -> list[dict]:
    """Submit ``fn(spec)`` for every spec as one task each and gather the results, in the
    order of ``specs``. ``keys`` names the tasks (Dask keys; a pure function of a spec, so
    an equal key means an equal result). With ``progress`` a tqdm bar counts finished
    tasks."""
    distributed = _import_distributed()
    if keys is not None and len(keys) != len(specs):
        raise ValueError(f"{len(keys)} keys for {len(specs)} specs")
    futures = [
        client.submit(fn, dict(spec), key=None if keys is None else keys[i])
        for i, spec in enumerate(specs)
    ]
    try:
        if progress and futures:
            from tqdm.auto import tqdm

            with tqdm(total=len(futures), desc=desc, dynamic_ncols=True) as bar:
                for future in distributed.as_completed(futures):
                    if future.status == "finished":
                        r = future.result()
                        if isinstance(r, dict) and r.get("val_acc") is not None:
                            bar.set_postfix_str(f"{r['key'][:22]} val {r['val_acc']:.3f}")
                    bar.update()
        return client.gather(futures)
    finally:
        for future in futures:
            future.release()


def run_sweep(
    fn: Callable[[dict], dict],
    specs: Sequence[Mapping[str, Any]],
    *,
    scheduler: str | None = None,
    n_workers: int = 1,
    keys: Sequence[str] | None = None,
    progress: bool = False,
    desc: str = "sweep",
) -> list[dict]:
    """:func:`map_specs` on a client of its own (see :func:`dask_client`)."""
    with dask_client(scheduler, n_workers) as client:
        return map_specs(client, fn, specs, keys=keys, progress=progress, desc=desc)
