"""Where the runs of a sweep execute: in this process, a local process pool, or a Dask cluster.

An executor is a plugin (hook ``register_executors``) with one method, ``map(fn, tasks)``,
yielding ``fn(task)`` for every task in any order.  ``fn`` is :func:`run_task`, which never
raises: a run that fails comes back as a record with ``status: failed``, so one bad run does
not stop the sweep.
"""
from __future__ import annotations

import contextlib
import os
import time
import traceback

from .component import Component
from .options import Option, Schema

SINGLE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def run_task(run) -> dict:
    """Train one :class:`~plasticity_kit.sweep.SweepRun`; its record (never raises).

    The record holds the run's name, repeat, seed, swept values, status, message, wall seconds
    and every final scalar metric as ``metric.key``; it is also written to
    ``<run>/sweep-run.json`` so that a resumed sweep can aggregate runs it skips.
    """
    import json

    import numpy as np

    from .runner import execute
    from .spec import resolve

    record = {"name": run.name, "repeat": run.repeat, "seed": run.seed, "params": run.params}
    start = time.perf_counter()
    try:
        result = execute(resolve(run.raw, run.source), progress=False, log=lambda *a: None)
        record.update(status=result.status, message=result.outcome.message)
        metrics = {}
        for name, values in result.metrics.items():
            for key, value in values.items():
                arr = np.asarray(value)
                if arr.ndim == 0 and arr.dtype.kind in "biuf":
                    metrics[f"{name}.{key}"] = arr.item()
        record["metrics"] = metrics
    except Exception as exc:  # recorded, not raised: the sweep goes on
        record.update(status="failed", message=f"{type(exc).__name__}: {exc}", metrics={},
                      traceback=traceback.format_exc(limit=8))
    record["seconds"] = round(time.perf_counter() - start, 4)
    out = run.output_dir
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "sweep-run.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    except OSError:
        pass
    return record


class Executor(Component):
    """Runs the tasks of a sweep: ``map(fn, tasks)`` yields ``fn(task)`` for each, in any order."""

    def map(self, fn, tasks):
        raise NotImplementedError


class InProcess(Executor):
    """One run after another in this process (debugging, tiny sweeps)."""

    name = "inprocess"
    options = Schema()

    def map(self, fn, tasks):
        for task in tasks:
            yield fn(task)


@contextlib.contextmanager
def single_threaded_children():
    """Workers inherit OMP/OpenBLAS/MKL_NUM_THREADS=1: N processes each running a multi-threaded
    BLAS on the same cores oversubscribe them (measured ~30× slower steps on 2 cores)."""
    saved = {k: os.environ.get(k) for k in SINGLE_THREAD}
    os.environ.update({k: "1" for k in SINGLE_THREAD})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Local(Executor):
    """A local process pool (concurrent.futures, spawned workers, one BLAS/OpenMP thread each)."""

    name = "local"
    options = Schema(Option("workers", "integer", None, "worker processes (default: the number of cores)",
                            low=1, nullable=True))

    def map(self, fn, tasks):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        tasks = list(tasks)
        if not tasks:
            return
        workers = min(self.workers or os.cpu_count() or 1, len(tasks))
        with single_threaded_children():
            # spawn, not fork: the children must load BLAS/OpenMP after the variables are set
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(fn, task) for task in tasks]
                for future in as_completed(futures):
                    yield future.result()


class Dask(Executor):
    """Dask distributed: connects to ``address`` or starts a LocalCluster on loopback (extra ``[dask]``)."""

    name = "dask"
    options = Schema(
        Option("address", "string", None, "scheduler address (default: start a LocalCluster)", nullable=True),
        Option("workers", "integer", None, "LocalCluster workers (default: the number of cores)", low=1, nullable=True),
    )

    def map(self, fn, tasks):
        try:
            from distributed import Client, LocalCluster, as_completed
        except ImportError:
            from .errors import PluginError

            raise PluginError("executor 'dask' needs the [dask] extra: pip install 'plasticity-kit[dask]'") from None
        tasks = list(tasks)
        with contextlib.ExitStack() as stack:
            if self.address:
                client = stack.enter_context(Client(self.address))
            else:
                stack.enter_context(single_threaded_children())
                cluster = stack.enter_context(LocalCluster(
                    n_workers=self.workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address=None))
                client = stack.enter_context(Client(cluster))
            for future in as_completed(client.map(fn, tasks, pure=False)):
                yield future.result()


BUILTINS = (InProcess, Local, Dask)
