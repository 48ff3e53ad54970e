"""
The study's Fig. 1 at reduced size: L vs B interaction matrix
=============================================================

Rondini (2023), Fig. 1: FID of BCM synthetic faces against the number of neurons N, for the
all-inhibitory L matrix (``interaction: uniform``) and the binocular B matrix, trained on 10 faces
of one person or 10 random faces (``specs/olivetti-matrices.yaml``).  Each run trains several
networks from different initial weights (``model.replicas``) and scores one image per network
(the B matrix's middle neuron, neuron 0 under L) against all 400 faces.

**Reduced size** (the spec: N ∈ {5, 9, 13, 17, 21}, 64 replicas, 5 repeats, 3,000 epochs, FID
at Inception dims 2048): N ∈ {5, 13, 21}, 8 replicas, one repeat, 1,000 epochs, FID at Inception
dims 64 — biased upwards by the 8 images, so compare the curves, not the values, with
:doc:`/study`.  Needs the ``[fid]`` extra.
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


def fid(spec_file, overrides):
    spec = pk.load_spec(SPECS / spec_file, [*overrides, "model.replicas=8", "exporters=[]", f"metrics={FID}",
                                            f"output.dir={out}", "record.every=1000"])
    result = pk.execute(spec, progress=False, log=print)
    if "fid" not in result.metrics:
        raise RuntimeError("FID needs the [fid] extra: pip install -e \".[fid]\"")
    return float(result.metrics["fid"]["fid"])


fig, ax = plt.subplots(figsize=(6, 4))
for interaction, label in (("uniform", "L"), ("binocular", "B")):
    for select, style, what in (("random_persons", "-o", "same person"), ("random", "--s", "random faces")):
        scores = [fid("olivetti-matrices.yaml", [f"name=fig1-{interaction}-{select}-{n}", f"model.n_neurons={n}",
                                                 f"model.interaction={interaction}", f"data.params.select={select}",
                                                 "schedule.epochs=1000", "schedule.seed=1"])
                  for n in NEURONS]
        print(f"{label}, {what}: FID", [round(s, 2) for s in scores])
        ax.plot(NEURONS, scores, style, color="C0" if label == "L" else "C3", label=f"{label}, {what}")
ax.set_xlabel("neurons N")
ax.set_ylabel("FID (dims 64, 8 images)")
ax.set_xticks(NEURONS)
ax.set_title("Fig. 1, reduced: 10 training faces, batch 10", fontsize=10)
ax.legend(fontsize=8)
fig.tight_layout()
