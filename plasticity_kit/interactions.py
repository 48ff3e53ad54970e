"""Lateral interaction matrices L of the BCM network y = σ((I−L)⁻¹ W x) (Castellani et al. 1999).

A plugin returns L (N×N, float64); :func:`interaction_factor` turns it into the factor
(I−L)⁻¹ once per run, refusing a singular or ill-conditioned I−L.

Built-ins (values from the reference study, Rondini 2023, §1.3):

* ``none``: L = 0, independent neurons.
* ``uniform``: every off-diagonal of L equals ``strength`` (the study's "L" matrix, −0.5);
  the diagonal of L is 0.
* ``binocular``: the study's "B" matrix.  Neurons i and N−1−i form a *couple* (mirror
  neurons); couples excite each other, L = ``positive`` (+0.3), all other pairs inhibit,
  L = ``negative`` (−0.2).  For odd N the middle neuron m = (N−1)/2 is its own mirror and is
  coupled to every neuron (L_mj = L_jm = ``positive``); its self-interaction is set so that the
  diagonal of I−L at m equals ``middle_diagonal`` (2.3, as printed by the study for N = 5) for
  every N.  For even N there is no middle neuron.  N = 5 gives exactly the study's Eq. 1.
  For N = 21, (I−L)⁻¹ gives the middle neuron 0.53 of its own drive and +0.037 of each other
  neuron's; every other neuron gets 1.90 of its own, +1.13 of its mirror's and −0.15 of the rest,
  so mirror couples learn the same face.  The study says the middle neuron learns an "average"
  face; measured, it learns one person's face like the others or, where training kills it, stays
  noise — never the mean face (docs/middle_neuron.rst).
* ``custom``: L read from a ``.npy``/``.csv`` file or given inline as a list of rows.
"""
from __future__ import annotations

import math
import os

import numpy as np

from .component import Component
from .datasets.base import read_npy
from .errors import DataError, SpecError
from .options import Option, Schema, describe

MAX_CONDITION = 1e6


class Interaction(Component):
    """Base class: ``lateral(n_neurons) -> L`` with shape (n_neurons, n_neurons)."""

    def lateral(self, n_neurons: int) -> np.ndarray:
        raise NotImplementedError


class NoInteraction(Interaction):
    """L = 0: neurons do not interact, y = σ(W x)."""

    name = "none"

    def lateral(self, n_neurons):
        return np.zeros((n_neurons, n_neurons))


class Uniform(Interaction):
    """Every off-diagonal L_ij = strength (the reference study's L matrix: −0.5, all inhibitory)."""

    name = "uniform"
    options = Schema(Option("strength", "number", -0.5, "value of every off-diagonal element of L"))

    def lateral(self, n_neurons):
        L = np.full((n_neurons, n_neurons), float(self.strength))
        np.fill_diagonal(L, 0.0)
        return L


class Binocular(Interaction):
    """The reference study's B matrix: mirror couples i ↔ N−1−i excite (+0.3), others inhibit (−0.2);
    the middle neuron of odd N is coupled to all, with diagonal (I−L)_mm = middle_diagonal."""

    name = "binocular"
    options = Schema(
        Option("negative", "number", -0.2, "L between neurons that are not a couple"),
        Option("positive", "number", 0.3, "L between the two neurons of a couple (and the middle neuron and every other)"),
        Option("middle_diagonal", "number", 2.3, "diagonal element of I−L at the middle neuron (odd N)"),
    )

    def lateral(self, n_neurons):
        n = n_neurons
        L = np.full((n, n), float(self.negative))
        np.fill_diagonal(L, 0.0)
        for i in range(n):
            j = n - 1 - i
            if i != j:
                L[i, j] = self.positive
        if n % 2 == 1:
            m = n // 2
            L[m, :] = self.positive
            L[:, m] = self.positive
            L[m, m] = 1.0 - self.middle_diagonal
        return L


def _check_values(params):
    """``values``: a list of rows of finite numbers, all rows as long as there are rows."""
    rows = params["values"]
    if rows is None:
        return None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        return "values", "expected a list of rows of numbers (a square matrix)"
    for i, row in enumerate(rows):
        if len(row) != len(rows):
            return f"values[{i}]", f"expected {len(rows)} numbers (a square matrix of {len(rows)} rows), got {len(row)}"
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or abs(v) > 1e300 or not math.isfinite(v):
                return f"values[{i}][{j}]", f"expected a finite number (values: a list of rows of numbers), got {describe(v)}"
    return None


class Custom(Interaction):
    """L given by the user: a .npy or .csv file (``path``) or an inline list of rows (``values``)."""

    name = "custom"
    options = Schema(
        Option("path", "path", None, "a .npy or .csv file holding L", nullable=True),
        Option("values", "any", None, "L as a list of rows", nullable=True),
        checks=(lambda p: ("path", "expected exactly one of 'path' or 'values'")
                if (p["path"] is None) == (p["values"] is None) else None, _check_values),
    )

    def lateral(self, n_neurons):
        key = "model.interaction.params"
        if self.path is not None:
            L = _read_matrix(self.path, f"{key}.path")
            where = f"{key}.path"
        else:
            where = f"{key}.values"
            try:
                L = np.asarray(self.values, dtype=np.float64)
            except (TypeError, ValueError):
                raise SpecError(where, "expected a list of rows of numbers") from None
        if L.shape != (n_neurons, n_neurons):
            raise SpecError(where, f"expected an {n_neurons}x{n_neurons} matrix (model.n_neurons = {n_neurons}), got shape {L.shape}")
        if not np.isfinite(L).all():
            raise SpecError(where, "the matrix has non-finite entries")
        return L


def _read_matrix(path: str, key: str) -> np.ndarray:
    """L from a ``.npy`` (header checked, never unpickled) or ``.csv`` file."""
    if not os.path.exists(path):
        raise SpecError(key, f"file not found: {path}")
    try:
        if path.endswith(".npy"):
            L = read_npy(path)
            if L.dtype.kind not in "biuf":
                raise SpecError(key, f"{path}: expected a matrix of numbers, got dtype {L.dtype}")
            return np.asarray(L, dtype=np.float64)
        if path.endswith(".csv"):
            return np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except DataError as exc:
        raise SpecError(key, str(exc)) from None
    except (ValueError, OSError) as exc:
        raise SpecError(key, f"cannot read {path}: {exc}") from None
    raise SpecError(key, f"expected a .npy or .csv file, got {path}")



def interaction_factor(L: np.ndarray, key: str = "model.interaction") -> np.ndarray | None:
    """(I−L)⁻¹, or ``None`` when L = 0 (then the factor is the identity and is skipped).

    Raises SpecError at ``key`` if I−L is singular or its condition number exceeds 1e6.
    """
    L = np.asarray(L, dtype=np.float64)
    if not L.any():
        return None
    A = np.eye(L.shape[0]) - L
    cond = np.linalg.cond(A)
    if not np.isfinite(cond) or cond > MAX_CONDITION:
        raise SpecError(
            key,
            f"I−L is singular or ill-conditioned (condition number {cond:.3g} > {MAX_CONDITION:.0e}); "
            "y = σ((I−L)⁻¹Wx) is undefined: weaken the interaction",
        )
    return np.linalg.inv(A)


BUILTINS = (NoInteraction, Uniform, Binocular, Custom)
