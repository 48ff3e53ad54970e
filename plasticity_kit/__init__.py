"""plasticity-kit: simulate biologically inspired local learning rules.

A YAML spec describes a run; ``plasticity-kit run SPEC`` trains it with compiled kernels and
records the whole trajectory to HDF5.  Python entry points: :func:`load_spec`, :func:`execute`;
:func:`open` (a :class:`Trajectory`) reads a run file back; scikit-learn style estimators
(:class:`BCM`, :class:`KrotovHopfield`, :class:`Plasticity`) train on numpy arrays.
"""
import os

# Idle OpenMP threads sleep instead of spinning (libgomp reads this when it loads, so before any
# kernel is imported): a spinning team kept the cores busy under other work on the machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The same for OpenBLAS's pool (numpy's and scipy's read it when they load): its threads sleep
# after 2^4 cycles instead of spinning ~0.1 s after every call, where they took the cores from
# the kernels' team that runs next — a SoftHebb conv step at 2 threads took 95 ms, 2.1x its
# time on one thread; with this, 33 ms (benchmarks/bench_threads.py, issue 14).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from ._version import __version__  # noqa: E402
from .errors import DataError, PlasticityKitError, PluginError, SpecError  # noqa: E402

# The rest is imported when first used (PEP 562), so that ``plasticity-kit run`` installs its
# SIGTERM handler before the slow imports (numpy, h5py, the kernels) start.
_LAZY = {"BCM": "estimators", "Hopfield": "estimators", "KrotovHopfield": "estimators", "Plasticity": "estimators",
         "from_spec": "estimators", "Trajectory": "replay", "open": "replay", "execute": "runner",
         "load_spec": "spec"}


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError:
        raise AttributeError(f"module 'plasticity_kit' has no attribute {name!r}") from None


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

__all__ = ["BCM", "KrotovHopfield", "Hopfield", "Plasticity", "from_spec", "__version__", "load_spec", "execute", "open", "Trajectory", "SpecError", "DataError", "PluginError", "PlasticityKitError"]
