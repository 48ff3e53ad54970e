"""
Replaying and analysing a run file
==================================

Every run writes its whole trajectory to one HDF5 file: the spec, the seeds, the data set's
identity, the recorded state arrays with their step, epoch and time, the metrics and the final
state (:doc:`/run_file`).  This example trains a small BCM network on 20 Olivetti faces (two
people, 9 neurons, 1,000 epochs of SGD as in the study's small-set sweeps) and reads the file back three ways: the lazy
:class:`~plasticity_kit.replay.Trajectory`, plain h5py, and the ``replay --plot`` timeline.
"""
import tempfile
from pathlib import Path

import h5py
import matplotlib.pyplot as plt
import numpy as np
import yaml

import plasticity_kit as pk
from plasticity_kit.exporters.timeline import draw_timeline
from plasticity_kit.spec import resolve

out = Path(tempfile.mkdtemp())
spec = resolve({
    "name": "replay-demo",
    "data": {"name": "olivetti", "params": {"select": "persons", "persons": [3, 17]}},
    "model": {"rule": "bcm", "n_neurons": 9, "interaction": "binocular", "activation": "relu",
              "optimizer": {"name": "sgd", "params": {"lr": 0.0003}},
              "initializer": {"name": "normal", "params": {"std": 0.0001}}},
    "schedule": {"epochs": 1000, "batch_size": 10, "seed": 7},
    "record": {"fields": ["weights", "theta"], "every": 50},
    "metrics": [{"name": "network", "every": 500}],
    "exporters": [],
    "output": {"dir": str(out)},
}, "replay-demo")
result = pk.execute(spec, progress=False, log=lambda *a: None)

# %%
# The lazy reader
# ---------------
# ``pk.open`` reads one frame at a time; ``t.at(step)`` rebuilds the rule at a recorded step, so
# the responses to any input can be computed as they were then.
with pk.open(result.path) as t:
    print(t.status, t.fields, len(t), "frames")
    faces = result.data.X
    first, last = int(t.steps[1]), int(t.steps[-1])
    early, late = t.at(first), t.at(last)
    y_early, y_late = early.transform(faces), late.transform(faces)
    selectivity = t.metrics["network"]

fig, axes = plt.subplots(1, 2, figsize=(8, 3), sharey=True)
for ax, y, title in ((axes[0], y_early, f"step {first}"), (axes[1], y_late, f"step {last}")):
    ax.imshow(y.T, aspect="auto", cmap="magma")
    ax.set_xlabel("face (two people, 10 each)")
    ax.set_title(f"responses y at {title}", fontsize=9)
axes[0].set_ylabel("neuron")
fig.tight_layout()
print("faces selected by some neuron (of 20), by step:", dict(zip(selectivity["step"].tolist(),
                                                                 np.asarray(selectivity["selected"]).tolist())))

# %%
# Plain h5py
# ----------
# The file needs nothing but h5py: attributes, the spec as YAML text, one dataset per field.
with h5py.File(result.path, "r") as f:
    print(f.attrs["format"], f.attrs["status"], "seed", f.attrs["seed"])
    recorded = yaml.safe_load(f["spec"][()])
    print("recorded every", recorded["record"]["every"], "steps;", f["trajectory/weights"].shape, "weights")

# %%
# The timeline of ``plasticity-kit replay RUN.h5 --plot``
# -------------------------------------------------------
# θ of every neuron and each metric against the step; a metric scored only a few times is drawn
# with markers.
with pk.open(result.path) as t:
    fig = draw_timeline(t)
