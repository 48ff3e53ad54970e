"""How many threads the kernels use, and BLAS kept out of their way.

One thread pool does the work: the kernels' OpenMP team.  Each kernel call starts one team (a
passive one: idle threads sleep instead of spinning, ``OMP_WAIT_POLICY=PASSIVE``); every thread
of it calls BLAS single-threaded on its own block of samples, rows or replicas, so BLAS never
starts a pool of its own inside a kernel.  On a busy machine a second, spinning pool (OpenBLAS's)
fighting the first made the main job 35× slower than on one thread.

The number of threads, first match wins:

1. ``threads`` given to :func:`using` (``plasticity-kit run --threads N``, the spec key
   ``output.threads``),
2. the environment variable ``PLASTICITY_KIT_THREADS``, else ``OMP_NUM_THREADS`` (what the sweep's
   worker processes get: 1),
3. the CPUs this process may use: its CPU affinity (``os.sched_getaffinity``), capped by the
   cgroup CPU quota (``/sys/fs/cgroup/cpu.max``, cgroup v2) — not the machine's core count,
   which on a container or a cluster node is many more than the job was given.

The thread count never changes a result: every kernel splits its work into blocks whose
boundaries depend on the problem's shape only and sums in a fixed order, so 1, 2 or 4 threads
give the same trajectory bit for bit (tested).

BLAS limits go through threadpoolctl (it finds every loaded BLAS: numpy's and scipy's OpenBLAS,
MKL, BLIS): :func:`single_blas` around each kernel call, and :func:`using` limits BLAS called
through numpy/scipy during a run to the same thread count.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager

ENV = "PLASTICITY_KIT_THREADS"
CPU_MAX = "/sys/fs/cgroup/cpu.max"
MAX_THREADS = 1024

_current: int | None = None  # set by using(); None: the environment or the CPUs available
_blas = None                  # threadpoolctl's controller of the loaded BLAS libraries


def available_cpus(affinity: set | None = None, cpu_max: str = CPU_MAX) -> int:
    """CPUs this process may use: its affinity mask, capped by the cgroup v2 quota.

    ``cpu.max`` holds ``"<quota> <period>"`` (microseconds) or ``"max <period>"``: a quota of
    150000 per 100000 allows 1.5 CPUs, rounded up to 2 threads.  ``affinity`` (a set of CPU
    numbers) and ``cpu_max`` (the file's path) are for tests.
    """
    if affinity is None:
        try:
            affinity = os.sched_getaffinity(0)
        except (AttributeError, OSError):  # not on Linux
            affinity = range(os.cpu_count() or 1)
    count = max(1, len(affinity))
    try:
        with open(cpu_max, encoding="ascii") as f:
            quota, period = f.read().split()[:2]
        if quota != "max" and int(period) > 0 and int(quota) > 0:
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota (or an unreadable one): the affinity alone
    return count


def check(value, key: str = "output.threads") -> int:
    """``value`` as a thread count (an integer from 1 to 1024); ValueError naming ``key`` otherwise."""
    try:
        n = int(value)
        if isinstance(value, float | bool) or str(n) != str(value).strip():
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"{key}: expected an integer from 1 to {MAX_THREADS} (threads), got {value!r}") from None
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"{key}: expected an integer from 1 to {MAX_THREADS} (threads), got {n}")
    return n


def default_threads() -> int:
    """``$PLASTICITY_KIT_THREADS`` when set, else ``$OMP_NUM_THREADS``, else :func:`available_cpus`."""
    for var in (ENV, "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value:
            return check(value.split(",")[0] if var != ENV else value, var)
    return available_cpus()


def get_threads() -> int:
    """The kernels' thread count now: the one :func:`using` set, else :func:`default_threads`."""
    return _current if _current is not None else default_threads()


def _controller():
    """threadpoolctl's controller of the BLAS libraries, made once: after loading scipy's (the
    kernels call it), so that it is among them even when no kernel has been imported yet."""
    global _blas
    if _blas is None:
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController().select(user_api="blas")
    return _blas


@contextmanager
def single_blas():
    """BLAS runs on the calling thread inside this block (the kernels' OpenMP threads call it).

    Each library's own get/set calls (threadpoolctl's controllers, 6 µs for two OpenBLAS) rather
    than ``limit()``, which also reads every library's version and architecture: 0.3 ms, as
    long as a small kernel call itself."""
    libraries = _controller().lib_controllers
    previous = [lib.num_threads for lib in libraries]
    for lib in libraries:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(libraries, previous):
            lib.set_num_threads(n)


@contextmanager
def using(threads: int | None = None):
    """Within the block the kernels use ``threads`` threads (None: :func:`default_threads`) and
    BLAS called through numpy/scipy at most as many; both are restored afterwards."""
    global _current
    n = check(threads) if threads is not None else default_threads()
    previous, _current = _current, n
    try:
        with _controller().limit(limits=n):
            yield n
    finally:
        _current = previous
