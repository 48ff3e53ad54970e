"""BCM rule with lateral interactions.

Law & Cooper 1994 (BCM with the moving threshold) and Castellani, Intrator, Shouval & Cooper
1999 (a network of laterally interacting non-linear neurons), in the form of Curti et al. 2023:

    y = σ((I−L)⁻¹ W x)
    θ ← γ·θ + (1−γ)·⟨y²⟩_batch                     γ = memory_factor
    ΔW = ⟨ y (y − θ*) x ⟩_batch / θ*                θ* = θ (threshold: moving_average)
                                                    θ* = ⟨y²⟩_batch (threshold: batch, what the
                                                         Nico-Curti/plasticity C++ library does)
    W ← optimizer(W, ΔW)

θ* is floored at ``epsilon`` in the division so a silent neuron does not divide by zero.
A ReLU neuron that falls silent on every input gets ΔW = 0 and never learns again: with Adam,
whose first step moves every weight by ±lr, keep lr·Σx small against the spread of the initial
drives W₀·x (on Olivetti, lr 1e-3 from N(0, 0.01²) kills the B matrix's middle neuron within
7 steps; lr 1e-4 does not — docs/middle_neuron.rst).  The Nico-Curti/plasticity *Python* model
differs from these equations: φ = y(y − θ) without the division, (I−L)⁻¹ applied to φ instead of
to the response, a logistic-derivative factor, and every update scaled to a largest entry of 1.
With ``orthogonalize: true`` the weights start orthonormal and are re-orthogonalised,
W ← (WWᵀ)^(-1/2)W, after every epoch (see :meth:`Rule.end_epoch`).
``reference_step`` is the plain-numpy version of these equations; the rule runs the Cython
kernel ``plasticity_kit.kernels.bcm.bcm_steps`` whenever its activation and optimizer have kernel
codes (all built-ins do) and falls back to the reference otherwise.  The scheduler hands the
kernel up to ``CHUNK_STEPS`` steps at once (sample indices, no per-step Python); with SGD and
few samples (P ≤ min(D, 2048)) the kernel runs them in the span of the samples, W = W₀ + C·X,
where a step costs n·B·P instead of 2·n·B·D (see ``bcm_steps``).  The rule steps stacked
states (R × n × D: ``model.replicas``) in one call.
"""
from __future__ import annotations

import numpy as np

from ..interactions import interaction_factor
from ..optimizers import SGD_CODE
from ..options import Option, Schema
from .base import ORTHOGONALIZE, Model, Rule

OVERFLOW = 1e30
# Most steps per kernel call between the scheduler's hooks.  The sample-space form pays
# W₀·Xᵀ and W₀ + C·X once per call (2·n·P·D, the cost of 2D/B of its steps): 8,192 steps keep
# that near 10 % at the study's shapes (D = 4,096, B ≥ 10); 1,024 made it 40 % of Fig. 5.
CHUNK_STEPS = 8192
GRAM_MAX = 2048     # largest data set (rows) for the sample-space form: X·Xᵀ holds P² values


def reference_step(W, theta, X, factor, activation, optimizer, opt_state,
                   memory_factor, threshold="moving_average", epsilon=1e-8):
    """One BCM mini-batch step in plain numpy, in place on ``W``, ``theta`` and ``opt_state``.

    ``factor`` is (I−L)⁻¹ or None, ``activation`` a callable σ, ``optimizer`` an object with
    ``apply(W, ΔW, opt_state)``.  Returns the responses Y (N × B) of this batch.
    """
    dtype = W.dtype
    Z = W @ X.T
    if factor is not None:
        Z = factor.astype(dtype, copy=False) @ Z
    Y = activation(Z)
    Y64 = Y.astype(np.float64)
    m2 = (Y64 * Y64).mean(axis=1)
    theta[:] = memory_factor * theta.astype(np.float64) + (1.0 - memory_factor) * m2
    used = m2 if threshold == "batch" else theta.astype(np.float64)
    B = X.shape[0]
    phi = (Y64 * (Y64 - used[:, None]) / (np.maximum(used, epsilon)[:, None] * B)).astype(dtype)
    delta = phi @ X
    optimizer.apply(W, delta, opt_state)
    return Y


class BCM(Rule):
    """BCM with lateral interactions: y = σ((I−L)⁻¹Wx), θ ← γθ + (1−γ)⟨y²⟩, ΔW = ⟨y(y−θ)x⟩/θ
    (Law & Cooper 1994; Castellani et al. 1999; Curti et al. 2023)."""

    name = "bcm"
    uses = ("activation", "interaction", "optimizer", "initializer")
    defaults = {"activation": "logistic", "interaction": "none", "optimizer": "sgd", "initializer": "normal"}
    options = Schema(
        Option("memory_factor", "number", 0.5, "γ of the threshold moving average θ ← γθ + (1−γ)⟨y²⟩",
               low=0, high=1, high_open=True),
        Option("threshold", "choice", "moving_average",
               "θ used in the update: the moving average, or the batch estimate ⟨y²⟩ (as the C++ plasticity library)",
               choices=("moving_average", "batch")),
        Option("theta_init", "number", 0.0, "initial θ of every neuron", low=0),
        Option("epsilon", "number", 1e-8, "floor on θ in the division y(y−θ)/θ", low=0, low_open=True),
        ORTHOGONALIZE,
    )
    fields = {
        "weights": "synaptic weights W, shape (n_neurons, n_inputs)",
        "theta": "modification threshold θ of each neuron, shape (n_neurons,)",
    }
    default_record = ("weights", "theta")

    def __init__(self, model: Model):
        super().__init__(model)
        L = model.interaction.lateral(model.n_neurons)
        self.lateral = L
        self.factor = interaction_factor(L)
        self._factor_typed = None if self.factor is None else np.ascontiguousarray(self.factor, dtype=self.dtype)
        self.uses_kernel = (getattr(model.activation, "kernel_code", None) is not None
                            and getattr(model.optimizer, "kernel_code", None) is not None)
        self.steps_replicas = self.uses_kernel
        self.snapshot_fields = ("theta",) if self.uses_kernel else ()
        self.chunk_steps = CHUNK_STEPS if self.uses_kernel and not self.params.get("orthogonalize") else 1
        self._gram_of = self._gram_value = None

    def init_state(self, rng):
        state = super().init_state(rng)
        n, d = self.model.n_neurons, self.model.n_inputs
        state["theta"] = np.full(n, self.params["theta_init"], dtype=self.dtype)
        for key, value in self.model.optimizer.init_state((n, d), self.dtype).items():
            state[f"optimizer/{key}"] = value
        return state

    def _opt_state(self, state):
        return {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith("optimizer/")}

    def step(self, state, batch):
        if not self.uses_kernel:
            p = self.params
            reference_step(state["weights"], state["theta"], batch, self.factor, self.model.activation,
                           self.model.optimizer, self._opt_state(state),
                           p["memory_factor"], p["threshold"], p["epsilon"])
            return
        self._kernel(state, np.ascontiguousarray(batch, dtype=self.dtype), None)

    def run_steps(self, state, X, batches, marks=()):
        if not self.uses_kernel:
            return super().run_steps(state, X, batches, marks)
        batches = np.ascontiguousarray(batches, dtype=np.int32)
        if not len(marks) or self._gram(X) is not None:
            return self._kernel(state, X, batches, marks)
        snapshots, start = [], 0  # the weight-space kernel: one call per stretch between marks
        for end in marks:
            self._kernel(state, X, batches[start:end])
            snapshots.append({"theta": state["theta"].copy()})
            start = end
        self._kernel(state, X, batches[start:])
        return snapshots

    def _gram(self, X) -> np.ndarray | None:
        """X·Xᵀ (summed in float64, held in the state's type) when the sample-space form pays
        (SGD, P ≤ min(D, 2048)), else None; computed once per data array."""
        P, D = X.shape
        if self.model.optimizer.kernel_code != SGD_CODE or P > min(D, GRAM_MAX):
            return None
        if self._gram_of is not X:
            X64 = X.astype(np.float64)
            self._gram_of, self._gram_value = X, (X64 @ X64.T).astype(self.dtype)
        return self._gram_value

    def _kernel(self, state, X, batches, marks=()):
        """``bcm_steps`` on a plain state (n × D weights) or a stacked one (R × n × D); θ after
        each of the ``marks`` (sample-space form only), one dict per mark."""
        from ..kernels.bcm import bcm_steps

        p, opt = self.params, self.model.optimizer
        W = state["weights"]
        R, D = (W.shape[0] if W.ndim == 3 else 1), W.shape[-1]
        if not all(v.flags.c_contiguous for v in state.values()):
            raise ValueError("BCM state arrays must be C-contiguous (the kernel updates them in place)")
        moments = [state[f"optimizer/{name}"].reshape(-1, D) for name in opt.state_names] + [None, None]
        lr, a, b, eps = opt.kernel_args()
        theta = state["theta"]
        snapshots = np.empty((len(marks),) + theta.shape, dtype=self.dtype)
        bcm_steps(W.reshape(-1, D), theta.reshape(-1), X, batches, self._factor_typed,
                  self.model.activation.kernel_code, p["memory_factor"], p["threshold"] == "batch",
                  p["epsilon"], opt.kernel_code, lr, a, b, eps, moments[0], moments[1],
                  state["optimizer/t"].reshape(-1),
                  gram=None if batches is None else self._gram(X), replicas=R,
                  marks=np.asarray(marks, dtype=np.int32) if len(marks) else None,
                  snapshots=snapshots.reshape(len(marks), -1) if len(marks) else None)
        return [{"theta": t} for t in snapshots]

    def transform(self, state, x):
        Z = np.asarray(x, dtype=self.dtype) @ state["weights"].T
        if self._factor_typed is not None:
            Z = Z @ self._factor_typed.T
        return self.model.activation(Z)

    def divergence(self, state):
        theta = state["theta"]
        if not np.isfinite(theta).all():
            return "θ is no longer finite (NaN or inf): the weights diverged; lower the learning rate"
        if theta.max(initial=0.0) > OVERFLOW:
            return f"θ exceeded {OVERFLOW:.0e}: the responses overflow; lower the learning rate"
        return super().divergence(state)
