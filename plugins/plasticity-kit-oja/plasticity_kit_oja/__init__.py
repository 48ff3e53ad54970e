"""plasticity-kit-oja: an example third-party rule plugin for plasticity-kit.

Registers two linear Hebbian PCA rules through the ``register_rules`` hook:

* ``oja`` — Oja's subspace rule, ΔW = η⟨y xᵀ − y yᵀ W⟩ (Oja 1989);
* ``sanger`` — Sanger's generalized Hebbian algorithm, ΔW = η⟨y xᵀ − LT(y yᵀ) W⟩ (Sanger 1989).

plasticity-kit finds this module through the entry point declared in ``pyproject.toml``::

    [project.entry-points.plasticity_kit]
    oja = "plasticity_kit_oja"

and calls the ``@hookimpl`` functions below; nothing in plasticity-kit itself names this package.
"""
from plasticity_kit.hookspecs import hookimpl

from .rules import Oja, Sanger, hebbian_pca_step

__version__ = "0.1.0"
__all__ = ["Oja", "Sanger", "hebbian_pca_step", "register_rules"]


@hookimpl
def register_rules(register):
    """Register the ``oja`` and ``sanger`` rules with plasticity-kit."""
    register(Oja)
    register(Sanger)
