"""
Krotov–Hopfield hidden units on MNIST: receptive fields and read-out
====================================================================

The ranking rule of Krotov & Hopfield (2019) (``specs/mnist-krotov.yaml``: p = 3, k = 7,
Δ = 0.4): per image the most driven unit learns it and the k-th unlearns it, so the units
compete and become prototypes and strokes.  The frozen units are then read out by a softmax
fitted on labelled images (the ``linear_probe`` metric), against the same read-out on raw pixels.
**Reduced size**: 200 units on 2,000 test-set images for 60 epochs, the read-out fitted on the
same 2,000 images and tested on 1,000 others (the spec: 400 units, 8,000 images, 100 epochs, 96%
accuracy); with so few labelled images the hidden read-out does not yet beat raw pixels.

MNIST is read from ``$PLASTICITY_KIT_MNIST`` (the docs build sets it from
``$PLASTICITY_KIT_SHARED_DATA/mnist``), else downloaded into the package's cache.
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import plasticity_kit as pk
from plasticity_kit.plot import weight_mosaic

SPECS = next(p / "specs" for p in (Path.cwd(), *Path.cwd().parents) if (p / "specs" / "olivetti.yaml").exists())
out = Path(tempfile.mkdtemp())
probe = ("{name: linear_probe, params: {readouts: [softmax], max_iter: 100, l2: 0.001, "
         "train: {name: mnist, params: {split: test, range: [0, 2000]}}, "
         "test: {name: mnist, params: {split: test, range: [8000, 9000]}}}}")
spec = pk.load_spec(SPECS / "mnist-krotov.yaml", [
    "model.n_neurons=200", "data.params.range=[0, 2000]", "schedule.epochs=60", "record.every=1200",
    f"metrics=[{{name: weight_norm, every: 200}}, {probe}]", "exporters=[]", f"output.dir={out}"])
result = pk.execute(spec, progress=False, log=lambda *a: None)
probe_values = result.metrics["linear_probe"]
print(result.outcome.message, f"in {result.outcome.elapsed:.1f} s")
print({k: round(float(v), 4) for k, v in probe_values.items() if "accuracy" in k})

# %%
# The receptive fields: each unit's weights as a 28 × 28 image, red positive, blue negative
# (``plasticity_kit.plot.view_weights`` draws the same grid for an estimator's weights).
W = result.state["weights"][:100]
scale = np.abs(W).max()
fig, ax = plt.subplots(figsize=(7, 7.4))
image = ax.imshow(weight_mosaic(W, (28, 28), columns=10), cmap="bwr", vmin=-scale, vmax=scale)
ax.set_axis_off()
fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
fig.suptitle(f"100 of the 200 Krotov–Hopfield units after 60 epochs; softmax read-out "
             f"{probe_values['softmax_accuracy']:.1%} (raw pixels {probe_values['softmax_pixel_accuracy']:.1%})",
             fontsize=9)

# %%
# The units' p-norms converge to the unit sphere (the ``weight_norm`` metric, every 200 steps).
with pk.open(result.path) as t:
    norms = t.metrics["weight_norm"]
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(norms["step"], norms["mean"], marker="o")
ax.axhline(1.0, color="grey", ls=":")
ax.set_xlabel("training step")
ax.set_ylabel("mean ‖W_μ‖_p")
fig.tight_layout()
