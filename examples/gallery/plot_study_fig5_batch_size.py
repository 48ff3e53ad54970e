"""
The study's Fig. 5 at reduced size: batch size on the whole set
===============================================================

Rondini (2023), Fig. 5: FID against the number of neurons for the B matrix trained on all 400
Olivetti faces with different mini-batch sizes (``specs/olivetti-batch-size.yaml``).  One
image per network (the middle neuron), scored against all 400 faces.

**Reduced size** (the spec: batch 10, 20, 50, 100, N ∈ {21, 25, 29}, 64 replicas, 3,000 epochs,
Inception dims 2048): batch 20 and 100, N ∈ {21, 29}, 8 replicas, 100 epochs, Inception dims 64.
Needs the ``[fid]`` extra.
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import plasticity_kit as pk

SPECS = next(p / "specs" for p in (Path.cwd(), *Path.cwd().parents) if (p / "specs" / "olivetti.yaml").exists())
out = Path(tempfile.mkdtemp())
FID = ("[{name: fid, params: {dims: 64, reference: dataset, neurons: one_per_network, "
       "kid: false, floor_draws: 0}}]")
NEURONS = (21, 29)

fig, ax = plt.subplots(figsize=(6, 4))
for i, batch in enumerate((20, 100)):
    scores = []
    for n in NEURONS:
        spec = pk.load_spec(SPECS / "olivetti-batch-size.yaml", [
            f"name=fig5-batch{batch}-{n}", f"model.n_neurons={n}", f"schedule.batch_size={batch}",
            "model.interaction=binocular", "data.params.select=all", "model.replicas=8", "schedule.epochs=100",
            "schedule.seed=5", "exporters=[]", f"metrics={FID}", f"output.dir={out}", "record.every=1000"])
        result = pk.execute(spec, progress=False, log=print)
        if "fid" not in result.metrics:
            raise RuntimeError("FID needs the [fid] extra: pip install -e \".[fid]\"")
        scores.append(float(result.metrics["fid"]["fid"]))
    print(f"batch {batch}: FID", [round(s, 2) for s in scores])
    ax.plot(NEURONS, scores, "-o", color=f"C{i}", label=f"batch {batch}")
ax.set_xlabel("neurons N")
ax.set_ylabel("FID (dims 64, 8 images)")
ax.set_xticks(NEURONS)
ax.set_title("Fig. 5, reduced: all 400 faces, B matrix", fontsize=10)
ax.legend(fontsize=8)
fig.tight_layout()
