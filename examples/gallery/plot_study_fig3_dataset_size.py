"""
The study's Fig. 3 at reduced size: training-set size and composition
=====================================================================

Rondini (2023), Fig. 3: FID against the number of neurons for the B matrix trained on sets of
different size and composition — faces of one person, or random faces
(``specs/olivetti-dataset-size.yaml``).  One image per network (the middle neuron), scored
against all 400 faces.

**Reduced size** (the spec: 5, 10 and 20 faces, N ∈ {5, 9, 13, 17, 21}, 64 replicas, 5 repeats,
3,000 epochs, Inception dims 2048): 5 faces of one person, 5 and 20 random faces, N ∈ {5, 13, 21},
8 replicas, one repeat, 1,000 epochs, Inception dims 64.  Needs the ``[fid]`` extra.
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import plasticity_kit as pk

SPECS = next(p / "specs" for p in (Path.cwd(), *Path.cwd().parents) if (p / "specs" / "olivetti.yaml").exists())
out = Path(tempfile.mkdtemp())
FID = ("[{name: fid, params: {dims: 64, reference: dataset, neurons: one_per_network, "
       "kid: false, floor_draws: 0}}]")
NEURONS = (5, 13, 21)
SETS = (("random_persons", 5, "5 faces, same person"), ("random", 5, "5 random faces"),
        ("random", 20, "20 random faces"))


def fid(overrides):
    spec = pk.load_spec(SPECS / "olivetti-dataset-size.yaml", [
        *overrides, "model.interaction=binocular", "model.replicas=8", "schedule.epochs=1000", "schedule.seed=3",
        "exporters=[]", f"metrics={FID}", f"output.dir={out}", "record.every=1000"])
    result = pk.execute(spec, progress=False, log=print)
    if "fid" not in result.metrics:
        raise RuntimeError("FID needs the [fid] extra: pip install -e \".[fid]\"")
    return float(result.metrics["fid"]["fid"])


fig, ax = plt.subplots(figsize=(6, 4))
for i, (select, k, label) in enumerate(SETS):
    scores = [fid([f"name=fig3-{select}-{k}-{n}", f"model.n_neurons={n}", f"data.params.select={select}",
                   "data.params.n_persons=1", f"data.params.k={k}", f"schedule.batch_size={min(k, 10)}"])
              for n in NEURONS]
    print(f"{label}: FID", [round(s, 2) for s in scores])
    ax.plot(NEURONS, scores, "-o", color=f"C{i}", label=label)
ax.set_xlabel("neurons N")
ax.set_ylabel("FID (dims 64, 8 images)")
ax.set_xticks(NEURONS)
ax.set_title("Fig. 3, reduced: B matrix, training-set size and composition", fontsize=10)
ax.legend(fontsize=8)
fig.tight_layout()
