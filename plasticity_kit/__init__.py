"""plasticity-kit: simulate biologically inspired local learning rules.

A YAML spec describes a run; ``plasticity-kit run SPEC`` trains it with compiled kernels and
records the whole trajectory to HDF5.  Python entry points: :func:`load_spec`, :func:`execute`;
:func:`open` (a :class:`Trajectory`) reads a run file back; scikit-learn style estimators
(:class:`BCM`, :class:`KrotovHopfield`, :class:`Plasticity`) train on numpy arrays.
"""
from ._version import __version__
from .errors import DataError, PlasticityKitError, PluginError, SpecError
from .estimators import BCM, Hopfield, KrotovHopfield, Plasticity, from_spec
from .replay import Trajectory, open  # noqa: A004 - plasticity_kit.open(path) reads a run file
from .runner import execute
from .spec import load_spec

__all__ = ["BCM", "KrotovHopfield", "Hopfield", "Plasticity", "from_spec", "__version__", "load_spec", "execute", "open", "Trajectory", "SpecError", "DataError", "PluginError", "PlasticityKitError"]
