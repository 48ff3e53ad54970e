"""Krotov–Hopfield competing hidden units, the fast ranking algorithm.

Krotov & Hopfield 2019, "Unsupervised learning by competing hidden units", PNAS 116:7723, and
the algorithm of its reference notebook (DimaKrotov/Biological_Learning).  Per mini-batch:

    I_bμ  = Σ_i sign(W_μi)|W_μi|^(p−1) x_bi                 currents
    g_bμ  = 1 for the strongest unit of sample b, −Δ for its k-th strongest, 0 otherwise
    ds_μ  = Σ_b g_bμ x_b − (Σ_b g_bμ I_bμ) W_μ
    W    += eps · ds / max(max|ds|, precision)
    eps   = eps0 · (1 − epoch/epochs)                       (schedule: linear; or constant)

The weights of every unit converge to the unit p-sphere.  Ties in the ranking go to the lower
unit index.  ``reference_step`` is the plain-numpy version of these equations; the rule runs the
Cython kernel ``plasticity_kit.kernels.krotov.ranking_step``, which updates only the rows of the
two units per sample that carry a learning signal.
"""
from __future__ import annotations

import numpy as np

from ..errors import SpecError
from ..options import Option, Schema
from .base import ORTHOGONALIZE, Model, Rule


def powered(W: np.ndarray, p: float) -> np.ndarray:
    """sign(W)·|W|^(p−1): the weights as they enter the currents."""
    return np.sign(W) * np.abs(W) ** (p - 1)


def apply_update(W: np.ndarray, X: np.ndarray, I: np.ndarray, g: np.ndarray, eps: float,
                 precision: float) -> float:
    """ds = gᵀX − (Σ_b g⊙I) W, then W += eps·ds/max(max|ds|, precision) in place; returns the
    normaliser.  ``g`` and ``I`` are (B × N), ``X`` is (B × D)."""
    xx = (g * I).sum(axis=0)
    ds = g.T @ X - xx[:, None] * W
    nc = max(float(np.abs(ds).max()), precision) if ds.size else precision
    W += eps * (ds / W.dtype.type(nc))
    return nc


def reference_step(W: np.ndarray, X: np.ndarray, eps: float, p: float, k: int, delta: float,
                   precision: float) -> tuple[np.ndarray, np.ndarray]:
    """One ranking step in plain numpy, in place on ``W`` (N × D) for the batch ``X`` (B × D).

    Returns the strongest and the k-th strongest unit of each sample.
    """
    I = X @ powered(W, p).T
    order = np.argsort(-I, axis=1, kind="stable")
    rows = np.arange(len(X))
    top, kth = order[:, 0], order[:, k - 1]
    g = np.zeros_like(I)
    g[rows, top] = 1
    g[rows, kth] = -delta
    apply_update(W, X, I, g, eps, precision)
    return top, kth


LEARNING = (
    Option("learning_rate", "number", 0.02, "initial learning rate eps0: the largest weight change of a step",
           low=0, low_open=True),
    Option("schedule", "choice", "linear",
           "learning rate over training: linear eps0·(1 − epoch/epochs) as the paper's notebook, or constant eps0",
           choices=("linear", "constant")),
    Option("p", "number", 2.0, "Lebesgue exponent p: currents use sign(W)|W|^(p−1), weights converge to the unit p-sphere",
           low=1, low_open=True),
    Option("delta", "number", 0.4, "strength Δ of the anti-Hebbian update", low=0),
    Option("precision", "number", 1e-30, "floor on max|ds| when the update is normalised", low=0, low_open=True),
)


class KrotovHopfield(Rule):
    """Krotov–Hopfield ranking rule: the strongest unit learns x (g = 1), the k-th strongest
    unlearns it (g = −Δ), ds = g·xᵀ − (Σ g⊙I) W, W += eps·ds/max|ds| (Krotov & Hopfield 2019)."""

    name = "krotov_hopfield"
    uses = ("initializer",)
    defaults = {"initializer": "normal"}
    options = Schema(
        *LEARNING,
        Option("k", "integer", 2, "rank of the unit that receives the anti-Hebbian update (2 ≤ k ≤ n_neurons)", low=2),
        ORTHOGONALIZE,
    )
    fields = {"weights": "synaptic weights W, shape (n_neurons, n_inputs)"}
    default_record = ("weights",)
    steps_replicas = True

    def __init__(self, model: Model):
        super().__init__(model)
        k = self.params.get("k")
        if k is not None and k > model.n_neurons:
            raise SpecError("model.rule.params.k",
                            f"expected an integer in [2, {model.n_neurons}] (at most model.n_neurons), got {k}")
        self.epochs = getattr(model, "epochs", None)
        self._powered = None  # (weights array, its powered weights), see _powered_of

    def init_state(self, rng):
        state = super().init_state(rng)
        state["epoch"] = np.zeros(1, dtype=np.int64)  # epochs completed, for the learning-rate schedule
        return state

    def end_epoch(self, state, epoch):
        super().end_epoch(state, epoch)
        state["epoch"][0] = epoch
        self._powered = None  # end_epoch may change the weights (orthogonalize)

    def _powered_of(self, W: np.ndarray) -> np.ndarray | None:
        """sign(W)|W|^(p−1) of the weights ``W`` (rows stacked), kept between the steps on the
        same array: the kernel recomputes only the rows a step changes (at most 2·B of them)
        instead of all of them.  Computed afresh for another array and after ``end_epoch``;
        whoever changes the weights other than through ``step`` must set ``_powered = None``.
        None for p = 2 (the powered weights are W)."""
        from ..kernels.krotov import powered_weights

        if self.params["p"] == 2.0:
            return None
        if self._powered is None or self._powered[0] is not W:
            flat = W.reshape(-1, W.shape[-1])
            out = np.empty_like(flat)
            powered_weights(flat, self.params["p"], out)
            self._powered = (W, out)
        return self._powered[1]

    def learning_rate(self, epoch: int) -> float:
        """eps in the given epoch (0-based): eps0·(1 − epoch/epochs), or eps0 for the constant
        schedule and for a rule built outside a run (model.epochs unknown)."""
        eps0 = self.params["learning_rate"]
        if self.params["schedule"] == "constant" or not self.epochs:
            return eps0
        return eps0 * (1.0 - min(epoch, self.epochs - 1) / self.epochs)

    def _learning_rate(self, state) -> float:
        return self.learning_rate(int(state["epoch"].flat[0]))

    def step(self, state, batch):
        """One ranking step; a stacked state (weights R × n × D, ``model.replicas``) steps its R
        networks in one kernel call.  The powered weights are kept between steps (``_powered_of``)."""
        from ..kernels.krotov import ranking_step

        p = self.params
        X = np.ascontiguousarray(batch, dtype=self.dtype)
        W = state["weights"]
        R = W.shape[0] if W.ndim == 3 else 1
        if not W.flags.c_contiguous:
            raise ValueError("Krotov-Hopfield weights must be C-contiguous (the kernel updates them in place)")
        ranking_step(W.reshape(-1, W.shape[-1]), X, self._learning_rate(state), p["p"], p["k"], p["delta"],
                     p["precision"], replicas=R, powered=self._powered_of(W))

    def synthesize(self, state):
        """Each unit's weights as grey levels with 0 at mid-grey: 0.5 + W/(2 max|W_μ|)."""
        return signed_rows(state["weights"])


def signed_rows(weights: np.ndarray) -> np.ndarray:
    """0.5 + W/(2·max|W_μ|) per row, so that the sign of a weight reads as lighter/darker than grey."""
    w = np.asarray(weights, dtype=np.float64)
    scale = np.abs(w).max(axis=1, keepdims=True)
    return 0.5 + 0.5 * np.divide(w, scale, out=np.zeros_like(w), where=scale > 0)
