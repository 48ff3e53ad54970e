"""
Writing a rule plugin
=====================

A learning rule is a :class:`~plasticity_kit.rules.base.Rule` subclass registered through the
``register_rules`` hook (:doc:`/plugin_guide`).  Installed as a package, an entry point in the
``plasticity_kit`` group makes it available to every spec; here, to stay in one file, the same
hook implementation is handed to :func:`~plasticity_kit.plugins.build_registry` directly.

The rule is Oja's subspace rule (Oja 1989), y = Wx, ΔW = η⟨y xᵀ − y yᵀ W⟩, whose rows converge
to an orthonormal basis of the top principal subspace of the inputs: trained on the 400
centred Olivetti faces it learns the span of the first *eigenfaces*.  **Size**: 6 neurons, 60
epochs of batch 40.
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import plasticity_kit as pk
from plasticity_kit.hookspecs import hookimpl
from plasticity_kit.options import Option, Schema
from plasticity_kit.plugins import build_registry
from plasticity_kit.rules import Rule
from plasticity_kit.spec import resolve


class Oja(Rule):
    """Oja's subspace rule (Oja 1989): y = Wx, ΔW = η⟨y xᵀ − y yᵀ W⟩; rows → top principal subspace."""

    name = "my_oja"
    options = Schema(
        Option("lr", "number", 0.001, "learning rate η", low=0, low_open=True),
        Option("center", "bool", True, "subtract the data mean (principal components of the centred data)"),
    )
    uses = ("initializer",)
    defaults = {"initializer": {"name": "normal", "params": {"std": 0.01}}}
    fields = {"weights": "synaptic weights W, shape (n_neurons, n_inputs)",
              "mean": "running mean of the inputs, subtracted when center is on"}
    default_record = ("weights",)

    def init_state(self, rng):
        state = super().init_state(rng)                       # "weights", drawn by the initializer
        state["mean"] = np.zeros(self.model.n_inputs, dtype=self.dtype)
        state["seen"] = np.zeros(1, dtype=self.dtype)
        return state

    def step(self, state, batch):
        W, X = state["weights"], batch
        if self.params["center"]:
            state["seen"] += len(X)
            state["mean"] += (X.sum(axis=0) - len(X) * state["mean"]) / state["seen"]
            X = X - state["mean"]                             # a copy: never modify `batch`
        Y = X @ W.T
        W += W.dtype.type(self.params["lr"] / len(X)) * (Y.T @ X - (Y.T @ Y) @ W)

    def transform(self, state, x):
        x = np.asarray(x, dtype=self.dtype)
        return (x - state["mean"]) @ state["weights"].T if self.params["center"] else x @ state["weights"].T


class MyPlugin:
    """What a plugin package's module holds: hook implementations."""

    @hookimpl
    def register_rules(self, register):
        register(Oja)


registry = build_registry(extra_plugins=[MyPlugin()])
print([name for name in registry.rules])

# %%
# Name the rule in a spec, like any built-in
# -------------------------------------------
# The options are validated against the schema (a bad value is one error line naming the key),
# and the run is recorded like any other.
out = Path(tempfile.mkdtemp())
spec = resolve({
    "name": "oja-faces",
    "data": "olivetti",
    "model": {"rule": {"name": "my_oja", "params": {"lr": 0.02}}, "n_neurons": 6},
    "schedule": {"epochs": 60, "batch_size": 40, "seed": 0},
    "record": {"every": 30},
    "exporters": [],
    "output": {"dir": str(out)},
}, "oja-faces", registry)
result = pk.execute(spec, progress=False, log=lambda *a: None)
print(result.outcome.message)

try:
    resolve({**spec.raw, "model": {"rule": {"name": "my_oja", "params": {"lr": -1}}, "n_neurons": 6}},
            "bad.yaml", registry)
except pk.SpecError as exc:
    print("error:", exc)

# %%
# Compare with the eigenfaces
# ---------------------------
# The cosines of the principal angles between the learned rows and the top 6 principal
# components (from ``numpy.linalg.svd`` of the centred faces) approach 1 as training proceeds.
X = result.data.X - result.data.X.mean(axis=0)
top = np.linalg.svd(X, full_matrices=False)[2][:6]
with pk.open(result.path) as t:
    steps, cosines = [], []
    for step, W in t.frames("weights"):
        Q = np.linalg.qr(W.T.astype(np.float64))[0]
        cosines.append(np.linalg.svd(top @ Q, compute_uv=False))
        steps.append(step)
    W = t["weights"][-1]

fig, axes = plt.subplots(2, 6, figsize=(9, 3.4))
for i in range(6):
    axes[0, i].imshow(top[i].reshape(64, 64), cmap="gray")
    axes[1, i].imshow(W[i].reshape(64, 64), cmap="gray")
    axes[0, i].set_axis_off(), axes[1, i].set_axis_off()
axes[0, 0].set_title("eigenfaces 1–6", fontsize=8, loc="left")
axes[1, 0].set_title("learned rows (a rotation of their span)", fontsize=8, loc="left")
fig.tight_layout()

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(steps, np.array(cosines), lw=1)
ax.set_xlabel("training step")
ax.set_ylabel("cos principal angle")
ax.set_title("learned subspace vs the top 6 principal components", fontsize=9)
fig.tight_layout()
