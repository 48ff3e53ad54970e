"""Pogodin et al. 2021, Fig. 4: −log SNR_w of 100 locally connected neurons over a sleep phase,
for kernel sizes k ∈ {3, 6, 9} and γ ∈ {1e-1, 1e-2, 1e-3}; panel A the Hebbian sleep (Eq. 4),
panel B the inhibitory circuit (α = 10, 150 ms per input).

Each of the 18 cells is a run of ``specs/weight-sharing-toy.yaml`` with ``--set`` overrides (a
full run folder with its run.h5 under ``--out``), until specs get a sweep section.  Prints the
curves at a few iterations next to the closed-form minimum and writes one PNG.

    python benchmarks/weight_sharing_fig4.py [--out runs/weight-sharing-fig4] [--steps 2000]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from plasticity_kit.exporters.snr_plot import plot_neg_log_snr
from plasticity_kit.metrics.weight_sharing_snr import neg_log
from plasticity_kit.runner import execute
from plasticity_kit.spec import load_spec

SPEC = Path(__file__).resolve().parents[1] / "specs" / "weight-sharing-toy.yaml"
KERNELS = (3, 6, 9)
GAMMAS = (1e-1, 1e-2, 1e-3)
SLEEPS = (("hebbian", "A. Hebbian sleep, Eq. 4"), ("circuit", "B. inhibitory circuit, α = 10"))


def cell(k: int, gamma: float, sleep: str, out: Path, steps: int) -> dict:
    side = 10 * k
    overrides = [
        f"name=toy-{sleep}-k{k}-gamma{gamma:g}", f"output.dir={out}",
        f"data.params.image_shape=[{side}, {side}]", f"model.rule.params.input_shape=[{side}, {side}]",
        f"model.rule.params.kernel_size={k}", f"model.rule.params.stride={k}",
        f"model.rule.params.gamma={gamma}", f"model.rule.params.sleep={sleep}",
        f"model.rule.params.sleep_steps={steps}",
    ]
    spec = load_spec(SPEC, overrides)
    start = time.perf_counter()
    result = execute(spec, progress=False, log=lambda *a: None)
    seconds = time.perf_counter() - start
    assert result.status == "completed", result.outcome.message
    return {"k": k, "gamma": gamma, "sleep": sleep, "curve": neg_log(result.state["sleep_snr"]),
            "limit": neg_log(result.state["sleep_snr_limit"][0]), "seconds": seconds, "run": result.path}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/weight-sharing-fig4", help="folder for the runs and the PNG")
    parser.add_argument("--steps", type=int, default=2000, help="sleep iterations per run")
    args = parser.parse_args(argv)
    out = Path(args.out)
    checkpoints = [t for t in (0, 50, 100, 200, 500, 1000, 2000, 5000) if t <= args.steps]
    cells = [cell(k, g, sleep, out, args.steps) for sleep, _ in SLEEPS for k in KERNELS for g in GAMMAS]

    print(f"-log SNR_w over {args.steps} sleep iterations (100 neurons, sleep_batch 64, η = 0.02); "
          f"'min' = closed-form minimum of Eq. 4")
    header = f"{'sleep':8} {'k':>2} {'gamma':>6} " + " ".join(f"{'t=' + str(t):>7}" for t in checkpoints)
    print(header + f" {'min':>7} {'seconds':>8}")
    for c in cells:
        values = " ".join(f"{c['curve'][t]:7.3f}" for t in checkpoints)
        print(f"{c['sleep']:8} {c['k']:2d} {c['gamma']:6g} {values} {c['limit']:7.3f} {c['seconds']:8.3f}")

    panels = []
    for sleep, title in SLEEPS:
        curves = []
        for c in (x for x in cells if x["sleep"] == sleep):
            color = f"C{KERNELS.index(c['k'])}"
            curves.append({"label": f"k={c['k']}, γ={c['gamma']:g}", "x": np.arange(len(c["curve"])),
                           "y": c["curve"], "limit": c["limit"], "color": color})
        panels.append({"xlabel": "sleep iteration", "title": title, "curves": curves, "legend_columns": 3})
    out.mkdir(parents=True, exist_ok=True)
    path = plot_neg_log_snr(panels, out / "fig4.png", title="Pogodin et al. 2021, Fig. 4 setting: 100 neurons")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
