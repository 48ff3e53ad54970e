"""SoftHebb: Hebbian learning with a soft winner-take-all (Journé, Garcia Rodriguez, Guo & Moraitis,
"Hebbian deep learning without feedback", ICLR 2023; Moraitis et al. 2022, Neuromorph. Comput. Eng.).

Per mini-batch X (B × D), with weights W (F × D):

    u_b  = W x_b                                          pre-activations
    y_b  = softmax(u_b / τ)                               soft winner-take-all across the F neurons
    y_bk ← −y_bk for every k but the winner argmax_k u_bk  (anti-Hebbian non-winners, ``anti_hebbian``)
    ΔW_k = Σ_b y_bk (x_b − u_bk w_k)                      the SoftHebb plasticity Δw_k = η·y_k·(x − u_k w_k)
    W_k += η |‖w_k‖ − 1|^q · ΔW_k / max|ΔW|               norm-dependent learning rate (q = ``lr_power``)

The weights converge to the unit sphere (the fixed point of the Oja-like decay u_k w_k), each
neuron to a centroid of the inputs it wins; the learning rate falls as the norms approach 1.
The initial weights are N(0, (r/√D)²), norms ≈ r (``init_radius``, 25 in the paper's code).
Applied to patches, this is the paper's convolutional layer (see :mod:`plasticity_kit.model`).
``reference_step`` is the plain-numpy version; the rule runs the Cython kernel
``plasticity_kit.kernels.conv.softhebb_products``: per fixed block of samples, U = XWᵀ and
ΔW = YᵀX through single-threaded BLAS and the competition between them (``soft_wta``), the
blocks shared out by one OpenMP team and added in order.
"""
from __future__ import annotations

import numpy as np

from ..options import Option, Schema
from .base import Rule
from .krotov_hopfield import signed_rows


def soft_wta_reference(U: np.ndarray, inverse_temperature: float, anti_hebbian: bool = True) -> np.ndarray:
    """y = softmax(U/τ) per row; with ``anti_hebbian`` every non-winner negated (ties: lower index wins)."""
    z = inverse_temperature * (U - U.max(axis=1, keepdims=True))
    Y = np.exp(z)
    Y /= Y.sum(axis=1, keepdims=True)
    if anti_hebbian:
        win = np.argmax(U, axis=1)
        sign = -np.ones_like(Y)
        sign[np.arange(len(U)), win] = 1
        Y *= sign
    return Y


def apply_update(W: np.ndarray, X: np.ndarray, U: np.ndarray, Y: np.ndarray, lr: float, lr_power: float) -> None:
    """ΔW = YᵀX − diag(Σ_b y⊙u) W, then W_k += lr·|‖w_k‖ − 1|^q · ΔW_k / max|ΔW|, in place."""
    update_weights(W, Y.T @ X, (Y.astype(np.float64) * U).sum(axis=0), lr, lr_power)


def update_weights(W: np.ndarray, yx: np.ndarray, yu: np.ndarray, lr: float, lr_power: float) -> None:
    """From the products yx = YᵀX and yu = Σ_b y⊙u: ΔW = yx − diag(yu) W, then
    W_k += lr·|‖w_k‖ − 1|^q · ΔW_k / max|ΔW|, in place (``yx`` is overwritten by ΔW)."""
    yx -= (yu[:, None] * W).astype(W.dtype)
    scale = float(np.abs(yx).max()) + 1e-30
    rate = lr * (np.abs(np.linalg.norm(W.astype(np.float64), axis=1) - 1.0) + 1e-10) ** lr_power / scale
    W += (rate[:, None] * yx).astype(W.dtype)


def reference_step(W: np.ndarray, X: np.ndarray, lr: float, inverse_temperature: float, lr_power: float,
                   anti_hebbian: bool = True) -> None:
    """One SoftHebb step in plain numpy, in place on ``W`` (F × D) for the batch ``X`` (B × D)."""
    U = X @ W.T
    apply_update(W, X, U, soft_wta_reference(U, inverse_temperature, anti_hebbian), lr, lr_power)


class SoftHebb(Rule):
    """SoftHebb (Journé et al. 2023): y = softmax(Wx/τ) with anti-Hebbian non-winners,
    Δw_k = η·y_k·(x − u_k w_k), learning rate η|‖w_k‖ − 1|^q, update scaled by max|ΔW|."""

    name = "softhebb"
    uses = ()
    defaults = {}
    options = Schema(
        Option("learning_rate", "number", 0.08, "η: the largest weight change of a step, before the norm factor",
               low=0, low_open=True),
        Option("inverse_temperature", "number", 1.0, "1/τ of the softmax: larger is a harder winner-take-all",
               low=0, low_open=True),
        Option("lr_power", "number", 0.5, "q of the norm-dependent learning rate η|‖w_k‖ − 1|^q (0: constant η)",
               low=0),
        Option("anti_hebbian", "bool", True, "negate the soft-WTA output of every non-winning neuron"),
        Option("init_radius", "number", 25.0, "initial weights N(0, (r/√D)²), norms ≈ r", low=0, low_open=True),
    )
    fields = {"weights": "synaptic weights W, shape (n_neurons, n_inputs)"}
    default_record = ("weights",)

    def init_state(self, rng):
        m = self.model
        std = self.params["init_radius"] / np.sqrt(m.n_inputs)
        return {"weights": np.ascontiguousarray(rng.normal(0.0, std, size=(m.n_neurons, m.n_inputs)), dtype=self.dtype)}

    def step(self, state, batch):
        from ..kernels.conv import softhebb_products

        p = self.params
        W = state["weights"]
        X = np.ascontiguousarray(batch, dtype=W.dtype)
        dW = np.empty_like(W)
        a = np.empty(len(W), dtype=np.float64)
        softhebb_products(X, W, p["inverse_temperature"], p["anti_hebbian"], dW, a)
        update_weights(W, dW, a, p["learning_rate"], p["lr_power"])

    def synthesize(self, state):
        """Each neuron's weights as grey levels with 0 at mid-grey: 0.5 + W/(2 max|W_k|)."""
        return signed_rows(state["weights"])
