"""Weight initializers: ``init(rng, shape, dtype)`` for a weight matrix of shape (N, D).

fan_in = D (inputs per neuron), fan_out = N (neurons).  Glorot & Bengio 2010 for the Glorot
pair, He et al. 2015 for He normal, Saxe et al. 2014 for orthogonal weights.
"""
from __future__ import annotations

import numpy as np

from .component import Component
from .options import Option, Schema

MAX_WEIGHT = 1e30
"""Bound of the initializers' parameters: initial weights stay finite in float32 (max 3.4e38), and
numpy can draw them (``uniform`` refuses a range wider than the largest double)."""


class Initializer(Component):
    """Base class: ``__call__(rng, shape, dtype) -> ndarray``."""

    def __call__(self, rng: np.random.Generator, shape: tuple, dtype) -> np.ndarray:
        raise NotImplementedError


class Normal(Initializer):
    """W ~ N(mu, std²)."""

    name = "normal"
    options = Schema(
        Option("mu", "number", 0.0, "mean", low=-MAX_WEIGHT, high=MAX_WEIGHT),
        Option("std", "number", 1.0, "standard deviation", low=0, high=MAX_WEIGHT),
    )

    def __call__(self, rng, shape, dtype):
        return rng.normal(self.mu, self.std, size=shape).astype(dtype)


class Uniform(Initializer):
    """W ~ U(low, high)."""

    name = "uniform"
    options = Schema(
        Option("low", "number", -1.0, "lower bound", low=-MAX_WEIGHT, high=MAX_WEIGHT),
        Option("high", "number", 1.0, "upper bound", low=-MAX_WEIGHT, high=MAX_WEIGHT),
        checks=(lambda p: ("high", f"expected a number > low ({p['low']}), got {p['high']}")
                if p["high"] <= p["low"] else None,),
    )

    def __call__(self, rng, shape, dtype):
        return rng.uniform(self.low, self.high, size=shape).astype(dtype)


class GlorotNormal(Initializer):
    """W ~ N(0, 2/(fan_in + fan_out)) (Glorot & Bengio 2010)."""

    name = "glorot_normal"

    def __call__(self, rng, shape, dtype):
        fan_out, fan_in = shape[-2], shape[-1]
        return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=shape).astype(dtype)


class GlorotUniform(Initializer):
    """W ~ U(−a, a), a = √(6/(fan_in + fan_out)) (Glorot & Bengio 2010)."""

    name = "glorot_uniform"

    def __call__(self, rng, shape, dtype):
        fan_out, fan_in = shape[-2], shape[-1]
        a = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-a, a, size=shape).astype(dtype)


class HeNormal(Initializer):
    """W ~ N(0, 2/fan_in) (He et al. 2015)."""

    name = "he_normal"

    def __call__(self, rng, shape, dtype):
        return rng.normal(0.0, np.sqrt(2.0 / shape[-1]), size=shape).astype(dtype)


def symmetric_orthogonalization(weights: np.ndarray) -> np.ndarray:
    """W ← (WWᵀ)^(-1/2) W, the orthonormal matrix nearest to W (Löwdin's symmetric orthogonalisation).

    Computed as U Vᵀ from the SVD W = U S Vᵀ, which equals (WWᵀ)^(-1/2) W when W has full row rank
    and stays defined when it does not.  Every row is treated alike (no neuron is privileged, unlike
    Gram–Schmidt).  For N ≤ D the rows come out orthonormal, for N > D the columns.  Computed in
    float64, returned in W's dtype.
    """
    w = np.asarray(weights)
    u, _, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
    return np.ascontiguousarray(u @ vt, dtype=w.dtype)


class Orthogonal(Initializer):
    """W = gain · (GGᵀ)^(-1/2) G, G ~ N(0, 1): orthonormal rows (N ≤ D) or columns (N > D), uniformly
    distributed (Saxe et al. 2014)."""

    name = "orthogonal"
    options = Schema(Option("gain", "number", 1.0, "norm of every row (N ≤ D) or column (N > D)", low=0, low_open=True,
                            high=MAX_WEIGHT))

    def __call__(self, rng, shape, dtype):
        q = symmetric_orthogonalization(rng.normal(0.0, 1.0, size=shape))
        return (self.gain * q).astype(dtype)


BUILTINS = (Normal, Uniform, GlorotNormal, GlorotUniform, HeNormal, Orthogonal)
