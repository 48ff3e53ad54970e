"""Activation functions σ applied to a neuron's input current.

Each class has a numpy ``__call__`` (the reference) and, for the built-ins, a ``kernel_code``
that the Cython kernels evaluate in place (see ``kernels/bcm.pyx``, ``ACT_*``).  A third-party
activation without a kernel code still works: rules then run their numpy reference step.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from .component import Component

LINEAR, RELU, LOGISTIC, TANH = 0, 1, 2, 3


class Activation(Component):
    """Base class: ``σ(z)`` elementwise, returning a new array of ``z``'s dtype."""

    kernel_code: ClassVar[int | None] = None

    def __call__(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Linear(Activation):
    """Identity, σ(z) = z."""

    name = "linear"
    kernel_code = LINEAR

    def __call__(self, z):
        return np.array(z, copy=True)


class Relu(Activation):
    """Rectified linear unit, σ(z) = max(z, 0)."""

    name = "relu"
    kernel_code = RELU

    def __call__(self, z):
        return np.maximum(z, 0)


class Logistic(Activation):
    """Logistic sigmoid, σ(z) = 1 / (1 + e^(−z))."""

    name = "logistic"
    kernel_code = LOGISTIC

    def __call__(self, z):
        z = np.asarray(z)
        with np.errstate(over="ignore"):
            return (1.0 / (1.0 + np.exp(-z))).astype(z.dtype, copy=False)


class Tanh(Activation):
    """Hyperbolic tangent, σ(z) = tanh(z)."""

    name = "tanh"
    kernel_code = TANH

    def __call__(self, z):
        return np.tanh(z)


BUILTINS = (Linear, Relu, Logistic, Tanh)
