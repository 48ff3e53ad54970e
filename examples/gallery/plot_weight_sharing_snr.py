"""
Weight sharing by sleep: SNR over a sleep phase (Pogodin et al. 2021, Fig. 4)
=============================================================================

``specs/weight-sharing-toy.yaml``: a locally connected layer of 100 neurons (10 × 10 positions),
each with its own k × k filter drawn i.i.d. N(0, 1), so the weight-sharing signal-to-noise
ratio SNR_w starts near 1/100.  One sleep phase of Hebbian iterations on white noise shown to
every position, Δw_i = −η[x(z_i − mean_j z_j) + γ(w_i − w_i^start)], pulls the filters towards
their mean; −log SNR_w falls to the closed-form minimum of w* = (C + γI)⁻¹(C w̄ + γ w^start)
(dotted).  **Reduced size**: k ∈ {3, 6} × γ ∈ {10⁻¹, 10⁻², 10⁻³} and 1,000 iterations (the
paper's figure: k up to 9, 2,000 iterations; ``python benchmarks/weight_sharing_fig4.py`` runs
the full grid).
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import plasticity_kit as pk
from plasticity_kit.metrics.weight_sharing_snr import neg_log

SPECS = next(p / "specs" for p in (Path.cwd(), *Path.cwd().parents) if (p / "specs" / "olivetti.yaml").exists())
out = Path(tempfile.mkdtemp())

fig, ax = plt.subplots(figsize=(7, 4))
for color, k in zip(("C0", "C1"), (3, 6)):
    for style, gamma in zip(("-", "--", ":"), (1e-1, 1e-2, 1e-3)):
        side = 10 * k
        spec = pk.load_spec(SPECS / "weight-sharing-toy.yaml", [
            f"name=k{k}-gamma{gamma:g}", f"output.dir={out}", "exporters=[]", "metrics=[]",
            f"data.params.image_shape=[{side}, {side}]", f"model.rule.params.input_shape=[{side}, {side}]",
            f"model.rule.params.kernel_size={k}", f"model.rule.params.stride={k}",
            f"model.rule.params.gamma={gamma}", "model.rule.params.sleep_steps=1000"])
        result = pk.execute(spec, progress=False, log=lambda *a: None)
        curve = neg_log(result.state["sleep_snr"])
        limit = neg_log(result.state["sleep_snr_limit"][0])
        ax.plot(np.arange(len(curve)), curve, style, color=color, lw=1.2, label=f"k={k}, γ={gamma:g}")
        ax.axhline(limit, color=color, ls=":", lw=0.7)
        print(f"k={k} γ={gamma:g}: −log SNR_w {curve[0]:.2f} → {curve[-1]:.2f} (closed-form minimum {limit:.2f})")
ax.set_xlabel("sleep iteration")
ax.set_ylabel("−log SNR_w")
ax.set_title("100 locally connected neurons, one Hebbian sleep phase")
ax.legend(ncol=2, fontsize=8)
fig.tight_layout()
