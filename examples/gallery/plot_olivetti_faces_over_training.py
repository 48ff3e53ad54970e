"""
Synthetic Olivetti faces over training
======================================

The main job (``specs/olivetti.yaml``: 21 BCM neurons with the study's binocular B matrix on all
400 Olivetti faces, batch 100) at a **reduced size: 300 epochs instead of 3000** (1,200 steps,
a few seconds), recorded every 60 steps.  Each neuron's weights, min–max scaled to grey levels,
are a synthetic face (Rondini 2023); the recorded trajectory shows them emerge from the random
initial weights.  The bundled faces need no network.
"""
# %%
# Train, recording the weights and the thresholds θ
# --------------------------------------------------
# ``load_spec`` reads a spec with ``--set``-style overrides; ``execute`` trains it and writes the
# run file.  The metrics of the full spec (FID, nearest faces) are dropped to stay short.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import plasticity_kit as pk

# the repository's specs/ folder (the gallery runs from examples/gallery/)
SPECS = next(p / "specs" for p in (Path.cwd(), *Path.cwd().parents) if (p / "specs" / "olivetti.yaml").exists())
out = Path(tempfile.mkdtemp())
spec = pk.load_spec(SPECS / "olivetti.yaml", [
    "schedule.epochs=300", "record.every=60", "metrics=[]", "exporters=[]", f"output.dir={out}"])
result = pk.execute(spec, progress=False, log=lambda *a: None)
print(result.outcome.message, f"in {result.outcome.elapsed:.1f} s →", result.path)

# %%
# The synthetic faces at five recorded steps
# ------------------------------------------
# :func:`plasticity_kit.open` reads the run file lazily; ``t.at(step)`` is the recorded state at
# a step and ``synthesize()`` turns it into images, as the rule does at the end of a run.
with pk.open(result.path) as t:
    steps = t.steps
    shown = [int(s) for s in steps[np.linspace(0, len(steps) - 1, 5).round().astype(int)]]
    faces = {s: t.at(s).synthesize().reshape(-1, 64, 64) for s in shown}
    theta = t["theta"][:]
    all_steps = t.steps

neurons = [0, 3, 6, 10, 14, 17, 20]  # 10: the middle neuron of the B matrix
fig, axes = plt.subplots(len(shown), len(neurons), figsize=(1.3 * len(neurons), 1.4 * len(shown)))
for row, s in enumerate(shown):
    for col, n in enumerate(neurons):
        ax = axes[row, col]
        ax.imshow(faces[s][n], cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        if row == 0:
            ax.set_title(f"neuron {n}", fontsize=8)
        if col == 0:
            ax.set_ylabel(f"step {s}", fontsize=8)
fig.suptitle("BCM, B matrix, 21 neurons: synthetic faces over training", fontsize=10)
fig.tight_layout()

# %%
# Thresholds over training
# ------------------------
# θ, the moving average of ⟨y²⟩, settles as each neuron becomes selective.
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(all_steps, theta, lw=0.8)
ax.set_xlabel("training step")
ax.set_ylabel("θ")
ax.set_title("θ of the 21 neurons")
fig.tight_layout()

# %%
# The same as an animation: ``plasticity-kit replay RUN.h5 --animate rf.gif`` (or the
# ``animation`` exporter in a spec) writes every recorded frame; all-positive face weights are
# drawn in grey, min–max per neuron.
from plasticity_kit.exporters.animation import animate

with pk.open(result.path) as t:
    gif, frames = animate(t, out / "receptive_fields.gif", fps=4)
print(f"wrote {gif.name}: {frames} frames")
