"""Oja's subspace rule and Sanger's generalized Hebbian algorithm, in plain numpy.

Both are linear Hebbian networks y = W x (W: n_neurons × n_inputs) with a decorrelating decay
term; averaged over a mini-batch of B samples x_b (y_b = W x_b):

    Oja (subspace):  ΔW = η ⟨ y xᵀ − y yᵀ W ⟩_batch          (Oja 1989)
    Sanger (GHA):    ΔW = η ⟨ y xᵀ − LT(y yᵀ) W ⟩_batch      (Sanger 1989)

with LT the lower triangle including the diagonal.  For zero-mean inputs with covariance C,
Oja's rows converge to an orthonormal basis (W Wᵀ = I) of the span of C's top n_neurons
eigenvectors (any rotation of it); Sanger's rows converge to the eigenvectors themselves, in
order of decreasing eigenvalue.

References:
    E. Oja (1989), "Neural networks, principal components, and subspaces",
    International Journal of Neural Systems 1(1):61–68.
    T. D. Sanger (1989), "Optimal unsupervised learning in a single-layer linear feedforward
    neural network", Neural Networks 2(6):459–473.
"""
from __future__ import annotations

import numpy as np

from plasticity_kit.options import Option, Schema
from plasticity_kit.rules import Rule

#: Row norms beyond this are reported as divergence: both rules keep rows near unit norm.
MAX_ROW_NORM = 1e6


def hebbian_pca_step(W: np.ndarray, X: np.ndarray, lr: float, *, center: bool = False,
                     lower_triangular: bool = False) -> np.ndarray:
    """One mini-batch step of Oja's subspace rule or Sanger's GHA, in place on ``W``.

    ``W`` (N × D) is updated as W ← W + η/B · (Yᵀ X − M W), Y = X Wᵀ (B × N), where
    M = Yᵀ Y (Oja 1989) or M = LT(Yᵀ Y) when ``lower_triangular`` (Sanger 1989).  With
    ``center`` the batch mean is subtracted from ``X`` first (on a copy; ``X`` is not modified).
    Returns the responses Y of the batch.
    """
    X = np.asarray(X, dtype=W.dtype)
    if center:
        X = X - X.mean(axis=0, keepdims=True)
    batch = X.shape[0]
    Y = X @ W.T
    decay = Y.T @ Y
    if lower_triangular:
        decay = np.tril(decay)
    delta = Y.T @ X - decay @ W
    W += W.dtype.type(lr / batch) * delta
    return Y


class _HebbianPCA(Rule):
    """Shared body of the two rules: linear responses y = Wx, own plain-SGD step, no kernel."""

    #: True for Sanger's lower-triangular decorrelation, False for Oja's symmetric one.
    lower_triangular = False

    options = Schema(
        Option("lr", "number", 0.001, "learning rate η; keep η·‖x‖² well below 1 or the weights blow up",
               low=0, low_open=True),
        Option("center", "bool", False, "subtract the mini-batch mean from the inputs before each step"),
    )
    # These rules apply their own step (no optimizer, activation or interaction): they only
    # need initial weights.  Glorot-normal rows start with norm ≈ √2, close to the fixed point 1.
    uses = ("initializer",)
    defaults = {"initializer": "glorot_normal"}
    fields = {"weights": "synaptic weights W, shape (n_neurons, n_inputs); rows converge to unit norm"}
    default_record = ("weights",)

    def step(self, state, batch):
        """Apply the rule to one mini-batch (B × n_inputs), updating ``state["weights"]`` in place."""
        hebbian_pca_step(state["weights"], batch, self.params["lr"], center=self.params["center"],
                         lower_triangular=self.lower_triangular)

    def transform(self, state, x):
        """Linear responses y = W x of inputs ``x`` (n × n_inputs) → (n × n_neurons).

        The inputs are projected as given: with ``center: true``, subtract the training mean
        first to get principal-component scores.
        """
        return np.asarray(x, dtype=self.dtype) @ state["weights"].T

    def divergence(self, state):
        """A message if the weights are no longer finite or a row norm exceeded ``MAX_ROW_NORM``."""
        problem = super().divergence(state)
        if problem:
            return problem
        norm = float(np.sqrt(np.max(np.sum(np.square(state["weights"], dtype=np.float64), axis=1))))
        if norm > MAX_ROW_NORM:
            return (f"a weight row reached norm {norm:.3g} (> {MAX_ROW_NORM:.0e}): "
                    f"lower model.rule.params.lr (η·‖x‖² must stay well below 1)")
        return None


class Oja(_HebbianPCA):
    """Oja's subspace rule (Oja 1989): y = Wx, ΔW = η⟨y xᵀ − y yᵀ W⟩; rows → top principal subspace.

    The rows converge to an orthonormal basis (W Wᵀ = I) of the span of the input covariance's
    n_neurons leading eigenvectors, in no particular rotation.  E. Oja (1989), "Neural networks,
    principal components, and subspaces", Int. J. Neural Systems 1(1):61–68.
    """

    name = "oja"
    lower_triangular = False


class Sanger(_HebbianPCA):
    """Sanger's GHA (Sanger 1989): y = Wx, ΔW = η⟨y xᵀ − LT(y yᵀ) W⟩; row i → i-th principal component.

    LT keeps the lower triangle of y yᵀ including the diagonal, so neuron i only decorrelates
    from neurons 1…i and the rows converge to the leading eigenvectors in order of decreasing
    eigenvalue.  T. D. Sanger (1989), "Optimal unsupervised learning in a single-layer linear
    feedforward neural network", Neural Networks 2(6):459–473.
    """

    name = "sanger"
    lower_triangular = True
