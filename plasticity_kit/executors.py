"""Where the runs of a sweep execute: in this process, a local process pool, or a Dask cluster.

An executor is a plugin (hook ``register_executors``) with one method, ``map(fn, tasks)``,
yielding ``fn(task)`` for every task in any order.  ``fn`` is :func:`run_task`, which never
raises: a run that fails comes back as a record with ``status: failed``, so one bad run does
not stop the sweep.  A task whose worker dies before returning (killed, out of memory) is
yielded as ``fn.lost(task, reason)`` (:func:`lost_record`: ``failed``, ``worker died (SIGKILL)``).
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback

from .component import Component
from .options import Option, Schema
from .threads import available_cpus

SINGLE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def run_task(run) -> dict:
    """Train one :class:`~plasticity_kit.sweep.SweepRun`; its record (never raises).

    The record holds the run's name, repeat, seed, swept values, status, message, wall seconds
    and every final scalar metric as ``metric.key``; it is also written to
    ``<run>/sweep-run.json`` so that a resumed sweep can aggregate runs it skips.
    """
    import numpy as np

    from .errors import DataError, SpecError
    from .runner import execute
    from .spec import resolve

    record = {"name": run.name, "repeat": run.repeat, "seed": run.seed, "params": run.params}
    start = time.perf_counter()
    quiet = {"progress": False, "log": lambda *a: None}
    try:
        # the sweep runs only runs whose file is not completed: an interrupted, killed or failed
        # one continues from its checkpoint; one that cannot (none written, damaged, diverged,
        # recorded from another spec) starts again.  The run file's lock keeps two sweeps off one run.
        result, path = None, run.output_dir / "run.h5"
        if path.exists():
            try:
                result = execute(resolve(run.raw, run.source), resume=path, **quiet)
            except (DataError, SpecError):
                result = None
        if result is None:
            result = execute(resolve(run.raw, run.source), overwrite=True, **quiet)
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
    _save(run, record)
    return record


def lost_record(run, reason: str, *, status: str = "failed", seconds: float = 0.0) -> dict:
    """The record of a run whose worker died or was stopped before it returned one (``status``
    failed, or interrupted when the sweep itself was stopped), saved as :func:`run_task` saves
    its records.  Executors find it as ``run_task.lost``."""
    record = {"name": run.name, "repeat": run.repeat, "seed": run.seed, "params": run.params, "status": status,
              "message": reason, "metrics": {}, "seconds": round(seconds, 4)}
    _save(run, record)
    return record


run_task.lost = lost_record


def _save(run, record: dict) -> None:
    import json

    out = run.output_dir
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "sweep-run.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    except OSError:
        pass


class Executor(Component):
    """Runs the tasks of a sweep: ``map(fn, tasks)`` yields ``fn(task)`` for each, in any order."""

    def map(self, fn, tasks):
        raise NotImplementedError


class InProcess(Executor):
    """One run after another in this process (debugging, tiny sweeps).  A run that comes back
    ``interrupted`` was stopped by Ctrl-C or SIGTERM to this process — which its training loop
    caught — so the sweep stops there too (KeyboardInterrupt after that run's record)."""

    name = "inprocess"
    options = Schema()

    def map(self, fn, tasks):
        for task in tasks:
            result = fn(task)
            yield result
            if isinstance(result, dict) and result.get("status") == "interrupted":
                raise KeyboardInterrupt


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
    """Local worker processes, ``workers`` of them (default: the CPUs this process may use,
    :func:`~plasticity_kit.threads.available_cpus` — its affinity and cgroup quota, not the
    machine's core count), spawned with one BLAS/OpenMP thread each, each running one run at a time.

    The parent hands every worker one task at a time over a pipe of its own, so a worker that
    dies (SIGKILL, the OOM killer, a crash in native code) takes only the run it held with it:
    that run comes back ``failed`` with the reason (``worker died (SIGKILL)``) through
    ``fn.lost(task, reason)``, a fresh worker takes its place and the other runs go on — unlike
    ``concurrent.futures.ProcessPoolExecutor``, whose pool breaks for good on one dead worker.
    Workers never outlive the sweep: each asks Linux to SIGTERM it when its parent dies
    (``prctl(PR_SET_PDEATHSIG)``) and also watches its parent's pid; when the generator is closed
    or interrupted (Ctrl-C, SIGTERM to the parent) the workers are sent SIGTERM — their runs end
    ``interrupted``, resumable — and killed if still there after ``grace`` seconds.
    """

    name = "local"
    options = Schema(Option("workers", "integer", None, "worker processes (default: the CPUs this process may use)",
                            low=1, nullable=True))
    grace = 20.0  # seconds a terminated worker gets to close its run file

    def map(self, fn, tasks):
        import multiprocessing
        from collections import deque
        from multiprocessing.connection import wait

        tasks = deque(tasks)
        if not tasks:
            return
        size = min(self.workers or available_cpus(), len(tasks))
        ctx = multiprocessing.get_context("spawn")  # the children load BLAS/OpenMP after the variables are set
        pool: list[_Worker] = []
        try:
            while tasks or any(w.task is not None for w in pool):
                pool = [w for w in pool if w.proc.is_alive() or w.task is not None]
                while tasks and len(pool) < size:
                    pool.append(_Worker(ctx, fn))
                for w in pool:
                    if w.task is None and tasks:
                        w.give(tasks.popleft())
                busy = [w for w in pool if w.task is not None]
                ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy])
                for w in busy:
                    if w.conn in ready or w.proc.sentinel in ready:
                        result = w.take()
                        yield result if result is not _NONE else _lost(
                            fn, w.lost_task, _death(w.proc.exitcode), seconds=w.seconds)
            for w in pool:
                w.close()
        finally:
            _stop(pool, self.grace)


_NONE = object()


class _Worker:
    """One worker process and the parent's end of its pipe; ``task``: the one it runs (None: idle)."""

    def __init__(self, ctx, fn):
        self.conn, child = ctx.Pipe()
        with single_threaded_children():
            self.proc = ctx.Process(target=_serve, args=(fn, child, os.getpid()), name="plasticity-kit worker")
            self.proc.start()
        child.close()
        self.task = self.lost_task = None
        self.start = 0.0

    def give(self, task) -> None:
        self.task, self.start = task, time.perf_counter()
        try:
            self.conn.send(task)
        except OSError:  # already dead: take() reports it
            pass

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def take(self):
        """The result of the current task, or _NONE if the process died first (then it is joined)."""
        try:
            if self.conn.poll():
                result = self.conn.recv()
                self.task = None
                return result
        except (EOFError, OSError):
            pass
        self.proc.join()
        self.lost_task, self.task = self.task, None
        return _NONE

    def close(self) -> None:
        try:
            self.conn.send(None)  # no more tasks: the worker returns
        except OSError:
            pass
        self.proc.join(5.0)


def _death(exitcode) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"worker died ({signal.Signals(-exitcode).name})"
        except ValueError:
            return f"worker died (signal {-exitcode})"
    return f"worker exited with status {exitcode} before returning a result"


def _lost(fn, task, reason: str, **how):
    lost = getattr(fn, "lost", None)
    if lost is None:
        raise RuntimeError(f"{reason} while running {task!r}")
    return lost(task, reason, **how)


def _stop(pool, grace: float) -> None:
    """SIGTERM every live worker, wait up to ``grace`` seconds, SIGKILL what is left."""
    for w in pool:
        if w.proc.is_alive():
            w.proc.terminate()
    deadline = time.monotonic() + grace
    for w in pool:
        w.proc.join(max(0.0, deadline - time.monotonic()))
        if w.proc.is_alive():
            w.proc.kill()
            w.proc.join()
        w.conn.close()


def _serve(fn, conn, parent: int) -> None:
    """A worker process: die with the parent; run ``fn(task)`` for each task received and send
    the result back, until None comes (or the parent is gone)."""
    _follow_parent(parent)
    signal.signal(signal.SIGTERM, _terminated)  # a SIGTERM between runs or before training starts
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if task is None:
            return
        start = time.perf_counter()
        try:
            result = fn(task)
        except BaseException as exc:  # noqa: BLE001 - sent to the parent as a lost run
            stopped = isinstance(exc, KeyboardInterrupt)  # SIGTERM (Terminated) or SIGINT outside training
            name = "SIGTERM" if type(exc).__name__ == "Terminated" else type(exc).__name__
            result = _lost(fn, task, f"worker stopped by {name}" + ("" if stopped else f": {exc}"),
                           status="interrupted" if stopped else "failed", seconds=time.perf_counter() - start)
        try:
            conn.send(result)
        except (OSError, KeyboardInterrupt):  # the parent is gone, or stopping this worker
            return


def _terminated(signum, frame):
    from .scheduler import Terminated

    raise Terminated()


PR_SET_PDEATHSIG = 1


def _follow_parent(parent: int) -> None:
    """End this process (SIGTERM) when ``parent`` dies: Linux's PR_SET_PDEATHSIG where there is
    one, and a thread checking the parent pid every second everywhere (also covers the parent
    dying before the prctl)."""
    import ctypes
    import ctypes.util
    import threading

    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="plasticity-kit parent watch", daemon=True).start()


class Dask(Executor):
    """Dask distributed: connects to ``address`` or starts a LocalCluster on loopback (extra ``[dask]``)."""

    name = "dask"
    options = Schema(
        Option("address", "string", None, "scheduler address (default: start a LocalCluster)", nullable=True),
        Option("workers", "integer", None, "LocalCluster workers (default: the CPUs this process may use)", low=1, nullable=True),
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
                    n_workers=self.workers or available_cpus(), threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address=None))
                client = stack.enter_context(Client(cluster))
            futures = client.map(fn, tasks, pure=False)
            task_of = {future.key: task for future, task in zip(futures, tasks)}
            for future in as_completed(futures):
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - fn never raises: the worker was lost (KilledWorker)
                    first = " ".join(str(exc).split()).split(". ")[0][:200]
                    result = _lost(fn, task_of[future.key], f"worker lost ({type(exc).__name__}: {first})")
                yield result


BUILTINS = (InProcess, Local, Dask)
