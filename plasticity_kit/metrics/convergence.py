"""Convergence of every unit's weights to the unit p-sphere.

Krotov & Hopfield 2019 (PNAS 116:7723): under their learning rule each hidden unit's weights
converge to ‖W_μ‖_p = (Σ_i |W_μi|^p)^(1/p) = 1.  Recorded every N steps (``every`` in the spec),
the per-unit norms trace that convergence in the run file (``metrics/weight_norm/norms``).
"""
from __future__ import annotations

import numpy as np

from ..options import Option, Schema
from .base import Metric, MetricContext


def pnorms(weights: np.ndarray, p: float) -> np.ndarray:
    """‖W_μ‖_p of every row, computed in float64 (rows scaled by their largest |w| first)."""
    w = np.abs(np.asarray(weights, dtype=np.float64))
    top = w.max(axis=1)
    scaled = np.divide(w, top[:, None], out=np.zeros_like(w), where=top[:, None] > 0)
    return top * (scaled ** p).sum(axis=1) ** (1.0 / p)


class WeightNorm(Metric):
    """p-norm of each unit's weights, ‖W_μ‖_p, and its distance to the unit sphere (Krotov & Hopfield 2019)."""

    name = "weight_norm"
    options = Schema(
        Option("p", "number", None, "norm exponent (default: the rule's p, else 2)", low=1, nullable=True),
    )

    def compute(self, ctx: MetricContext):
        p = self.p if self.p is not None else float(getattr(ctx.rule, "params", {}).get("p") or 2.0)
        norms = pnorms(ctx.state["weights"], p)
        deviation = np.abs(norms - 1.0)
        return {
            "norms": norms,
            "p": p,
            "mean": float(norms.mean()),
            "max_deviation": float(deviation.max()),
            "median_deviation": float(np.median(deviation)),
        }
