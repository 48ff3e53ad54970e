"""Krotov–Hopfield competing hidden units, the full model with lateral-inhibition dynamics.

Krotov & Hopfield 2019, "Unsupervised learning by competing hidden units", PNAS 116:7723
(eqs. 1–3 of the slides in the project's papers folder).  For every sample v of a mini-batch:

    I_μ = Σ_i sign(W_μi)|W_μi|^(p−1) v_i                 (p = 2: I = W·v)
    τ dh_μ/dt = I_μ − w_inh Σ_{ν≠μ} r(h_ν) − h_μ,  r = max(h, 0),   h(0) = 0, relaxed to steady state
    g(h) = 0 (h < 0), −Δ (0 ≤ h < h*), 1 (h ≥ h*)
    τ_L dW_μ/dt = g(h_μ) [v − I_μ W_μ]

The relaxation uses a linearly implicit Euler step of size dt (in units of τ): with the current
active set a = [h > 0] each step solves h' = h + dt (I − w_inh (S' − a h') − h'), S' = Σ a h'
exactly (diagonal plus rank one), which is stable for any dt and has the same fixed points as
the equation; it stops when max_μ |I_μ − w_inh Σ_{ν≠μ} r(h_ν) − h_μ| ≤ tol or after max_steps.
The learning equation is integrated over the mini-batch with the normalised step of the
paper's notebook, W += eps·ds/max|ds|, ds = Σ_b g(h_b)[v_b − I_b W] (eps = eps0·(1 − epoch/epochs)),
so that τ ≪ τ_L holds by construction: h is at steady state for each update.

``reference_step`` is the plain-numpy version (samples relaxed side by side); the rule runs the
Cython kernel ``plasticity_kit.kernels.krotov.dynamics_step``, which relaxes one sample per
thread without the GIL and updates only the rows of units with g ≠ 0.
"""
from __future__ import annotations

import numpy as np

from ..options import Option, Schema
from .krotov_hopfield import LEARNING, KrotovHopfield, apply_update, powered


def relax_reference(I: np.ndarray, w_inh: float, dt: float, max_steps: int, tol: float):
    """Steady states of τ dh/dt = I − w_inh Σ_{ν≠μ} r(h_ν) − h for every row of ``I`` (B × N).

    Returns (h (B × N) float64, steps (B) int: steps taken, −1 where max_steps was reached).
    """
    I = np.asarray(I, dtype=np.float64)
    h = np.zeros_like(I)
    steps = np.full(len(I), -1, dtype=np.int64)
    running = np.ones(len(I), dtype=bool)
    Da, Di = 1.0 + dt * (1.0 - w_inh), 1.0 + dt
    for it in range(max_steps + 1):
        r = np.maximum(h, 0.0)
        residual = np.abs(I - w_inh * (r.sum(axis=1, keepdims=True) - r) - h).max(axis=1)
        done = running & (residual <= tol)
        steps[done] = it
        running &= ~done
        if not running.any() or it == max_steps:
            break
        active = h > 0
        c = h + dt * I
        S = (np.where(active, c, 0.0).sum(axis=1) / Da) / (1.0 + dt * w_inh * active.sum(axis=1) / Da)
        nxt = (c - dt * w_inh * S[:, None]) / np.where(active, Da, Di)
        h[running] = nxt[running]
    return h, steps


def learning_activation(h: np.ndarray, h_star: float, delta: float, dtype) -> np.ndarray:
    """g(h) = 0 for h < 0, −Δ for 0 ≤ h < h*, 1 for h ≥ h*."""
    return np.where(h >= h_star, 1.0, np.where(h >= 0, -delta, 0.0)).astype(dtype)


def reference_step(W, X, eps, p, delta, h_star, w_inh, dt, max_steps, tol, precision):
    """One mini-batch of the full dynamics in plain numpy, in place on ``W`` (N × D) for ``X`` (B × D).

    Returns (h (B × N) steady states, number of samples whose relaxation did not converge).
    """
    I = X @ powered(W, p).T
    h, steps = relax_reference(I, w_inh, dt, max_steps, tol)
    g = learning_activation(h, h_star, delta, W.dtype)
    apply_update(W, X, I, g, eps, precision)
    return h, int((steps < 0).sum())


class KrotovHopfieldDynamics(KrotovHopfield):
    """Krotov–Hopfield full model: hidden currents relax under τ dh/dt = I − w_inh Σ_{ν≠μ} r(h_ν) − h,
    then τ_L dW/dt = g(h)[v − (W·v)W] with g = 1 (h ≥ h*), −Δ (0 ≤ h < h*), 0 (h < 0)
    (Krotov & Hopfield 2019)."""

    name = "krotov_hopfield_dynamics"
    options = Schema(
        *LEARNING,
        Option("h_star", "number", 0.5, "threshold h* of the learning activation: g = 1 for h ≥ h*, −Δ below",
               low=0, low_open=True),
        Option("w_inh", "number", 0.8, "strength w_inh of the global inhibition (< 1: the steady state is unique)",
               low=0, high=1, high_open=True),
        Option("dt", "number", 1.0, "time step of the relaxation, in units of τ", low=0, low_open=True),
        Option("max_steps", "integer", 1000, "most relaxation steps per sample", low=1),
        Option("tol", "number", 1e-6, "stop relaxing when max |I − w_inh Σ_{ν≠μ} r(h_ν) − h| ≤ tol", low=0, low_open=True),
    )
    fields = {"weights": "synaptic weights W, shape (n_neurons, n_inputs)"}
    steps_replicas = False  # replicas are stepped one after the other (see rules/replicas.py)

    def init_state(self, rng):
        state = super().init_state(rng)
        state["unrelaxed"] = np.zeros(1, dtype=np.int64)  # presentations that hit max_steps
        return state

    def step(self, state, batch):
        from ..kernels.krotov import dynamics_step

        p = self.params
        X = np.ascontiguousarray(batch, dtype=self.dtype)
        _, failed = dynamics_step(state["weights"], X, self._learning_rate(state), p["p"], p["delta"],
                                  p["h_star"], p["w_inh"], p["dt"], p["max_steps"], p["tol"], p["precision"])
        state["unrelaxed"][0] += failed

    def steady_state(self, state, x) -> np.ndarray:
        """Relaxed hidden activities h (n × n_neurons, float64) for inputs ``x``."""
        from ..kernels.krotov import relax

        p = self.params
        I = np.ascontiguousarray(np.asarray(x, dtype=self.dtype) @ powered(state["weights"], p["p"]).T)
        h = np.empty(I.shape, dtype=np.float64)
        relax(I, p["w_inh"], p["dt"], p["max_steps"], p["tol"], h)
        return h
