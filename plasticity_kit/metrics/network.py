"""Network properties of Curti et al. 2023 (BCM with lateral connections): selectivity, overlapping
index and memorisation capacity, from the responses y_i(x) of the N neurons to the P patterns x ∈ X.

* Selectivity: neuron i *selects* x when y_i(x) − E_x[y_i(x)] > 0;
  A_i = {x ∈ X : y_i(x) − E[y_i] > 0} and α_i = |A_i|.
* Overlapping index: S = |∪_i A_i| (patterns selected by at least one neuron), ᾱ the mean α_i,
  β = S / ᾱ ∈ [1, N]: 1 when every neuron selects the same patterns, N when their sets are
  disjoint and equally large.
* Memorisation capacity: the slides define it as the maximum number of patterns the network can
  select for a fixed N and fixed selectivities α_i, but their formula did not survive the text
  extraction.  We take the bound that definition implies: the union of N sets of sizes α_i is
  largest when they are disjoint, and cannot exceed the P patterns, so
  C = min(Σ_i α_i, P) = min(N ᾱ, P).  S ≤ C always; S / C tells how much of it is used.

E is the mean over the patterns the metric is given (the run's training data).
"""
from __future__ import annotations

import numpy as np

from ..options import Schema
from .base import Metric, MetricContext


def selection(responses: np.ndarray) -> np.ndarray:
    """A (P, N) boolean: pattern p is selected by neuron i, y_i(x_p) − mean_p y_i > 0."""
    Y = np.asarray(responses, dtype=np.float64)
    if Y.ndim != 2:
        raise ValueError(f"expected responses of shape (patterns, neurons), got {Y.shape}")
    return Y - Y.mean(axis=0) > 0


def network_properties(responses: np.ndarray) -> dict:
    """Selectivity α (N,), mean selectivity ᾱ, S, overlapping index β = S/ᾱ and capacity C = min(Σα, P)."""
    A = selection(responses)
    alpha = A.sum(axis=0).astype(np.int64)
    mean_alpha = float(alpha.mean())
    selected = int(A.any(axis=1).sum())
    return {
        "selectivity": alpha,
        "mean_selectivity": mean_alpha,
        "selected": selected,
        "overlap_index": selected / mean_alpha if mean_alpha > 0 else float("nan"),
        "capacity": int(min(alpha.sum(), A.shape[0])),
    }


class NetworkProperties(Metric):
    """Selectivity α_i, overlapping index β = S/ᾱ and memorisation capacity on the training data (Curti et al. 2023)."""

    name = "network"
    options = Schema()

    def compute(self, ctx: MetricContext) -> dict:
        return network_properties(ctx.rule.transform(ctx.state, ctx.X))
