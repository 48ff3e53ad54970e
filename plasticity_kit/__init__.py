"""plasticity-kit: simulate biologically inspired local learning rules.

A YAML spec describes a run; ``plasticity-kit run SPEC`` trains it with compiled kernels and
records the whole trajectory to HDF5.  Python entry points: :func:`load_spec`, :func:`execute`.
"""
from ._version import __version__
from .errors import DataError, PlasticityKitError, PluginError, SpecError
from .runner import execute
from .spec import load_spec

__all__ = ["__version__", "load_spec", "execute", "SpecError", "DataError", "PluginError", "PlasticityKitError"]
