"""The Olivetti job's measured frontier (issue 13): FID vs distinct identities vs memorisation over
the main knobs of ``specs/olivetti.yaml``.

Each configuration trains ``--replicas`` networks of 21 neurons on the 400 faces for ``--epochs``
epochs; every replica's 21 synthetic images (weights min–max scaled to [0, 1]) are scored:

* FID at Inception dims 2048 against the 400 faces (Heusel et al. 2017; pytorch-fid's network);
* distinct identities: the number of different people (index // 10) among each image's nearest
  face by Pearson correlation;
* memorisation ratio: median nearest-face correlation of the synthetic images divided by the
  median correlation of each real face with its nearest other real face (1: as close to a
  training face as real faces are to each other);
* learned: neurons whose weights moved more than their initial norm and correlate > 0.4 with a face.

The floor is the FID of ``--floor-draws`` random sets of 21 real faces scaled the same way.  Needs
the [fid] extra.  Slow on 2 cores (about a minute per FID): run a subset with ``--configs``.

    python examples/olivetti_frontier.py [--out runs/frontier] [--epochs 3000] [--replicas 2]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from middle_neuron import SPEC, standard, train

ADAM = "model.optimizer={{name: adam, params: {{lr: {}}}}}"
UNIFORM = "model.interaction={{name: uniform, params: {{strength: {}}}}}"
CONFIGS = {
    "B, Adam 1e-3 (issue 13)": [ADAM.format(0.001)],
    "B, Adam 1e-4 (spec)": [ADAM.format(0.0001)],
    "B, Adam 1e-3, batch θ": [ADAM.format(0.001), "model.rule.params.threshold=batch"],
    "no L, Adam 1e-4": ["model.interaction=none", ADAM.format(0.0001)],
    "no L, Adam 1e-3, batch θ": ["model.interaction=none", ADAM.format(0.001), "model.rule.params.threshold=batch"],
    "L −0.05, Adam 1e-4": [UNIFORM.format(-0.05), ADAM.format(0.0001)],
    "L −0.2, Adam 1e-4": [UNIFORM.format(-0.2), ADAM.format(0.0001)],
    "L −0.5 (study's L), Adam 1e-4": [UNIFORM.format(-0.5), ADAM.format(0.0001)],
}


def minmax(W):
    lo, hi = W.min(axis=1, keepdims=True), W.max(axis=1, keepdims=True)
    return (W - lo) / np.maximum(hi - lo, 1e-300)


def features(rows):
    from plasticity_kit.metrics.inception import inception_features
    return inception_features(minmax(rows).reshape(-1, 64, 64), dims=2048)


def scores(W0, W, X, ref_features):
    from plasticity_kit.metrics.fid import frechet_distance_features

    S, R = standard(W), standard(X)
    C = S @ R.T
    real = R @ R.T
    np.fill_diagonal(real, -2.0)
    change = np.linalg.norm(W - W0, axis=1) / np.linalg.norm(W0, axis=1)
    return {"fid": frechet_distance_features(features(W), ref_features),
            "identities": len(set((C.argmax(axis=1) // 10).tolist())),
            "memorisation": float(np.median(C.max(axis=1)) / np.median(real.max(axis=1))),
            "learned": int(((C.max(axis=1) > 0.4) & (change > 1.0)).sum())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/frontier")
    p.add_argument("--epochs", type=int, default=3000)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--floor-draws", type=int, default=5)
    p.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    args = p.parse_args(argv)
    from plasticity_kit.metrics.fid import frechet_distance_features

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, ref, X = [], None, None
    for name in args.configs:
        W0, W, X, _ = train(CONFIGS[name], args.epochs, args.replicas)
        ref = features(X) if ref is None else ref
        for r in range(args.replicas):
            row = {"config": name, "replica": r, **scores(W0[r], W[r], X, ref)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    rng = np.random.default_rng(0)
    floor = [frechet_distance_features(features(X[rng.choice(len(X), 21, replace=False)]), ref)
             for _ in range(args.floor_draws)]
    print(f"floor (21 real faces, min-max): FID {np.mean(floor):.1f} ± {np.std(floor):.1f}")
    (out / "frontier.json").write_text(json.dumps({"rows": rows, "floor": floor, "spec": str(SPEC)}, indent=1))
    plot(rows, floor, out / "olivetti_frontier.png")


def plot(rows, floor, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    names = list(dict.fromkeys(r["config"] for r in rows))
    markers = "osD^v<>Ph"
    for name, marker in zip(names, markers):
        sel = [r for r in rows if r["config"] == name]
        sc = ax.scatter([r["identities"] for r in sel], [r["fid"] for r in sel], c=[r["memorisation"] for r in sel],
                        cmap="viridis", vmin=0.7, vmax=1.0, marker=marker, s=60, edgecolors="k",
                        label=f"{name}: {min(r['learned'] for r in sel)}–{max(r['learned'] for r in sel)}/21 learned")
    ax.axhline(np.mean(floor), color="grey", ls="--", lw=1)
    ax.axhline(2 * np.mean(floor), color="grey", ls=":", lw=1)
    ax.text(0.5, np.mean(floor), " 21 real faces", va="bottom", fontsize=7, color="grey")
    ax.text(0.5, 2 * np.mean(floor), " 2× real", va="bottom", fontsize=7, color="grey")
    ax.axvline(15, color="grey", ls=":", lw=1)
    ax.set_xlim(0, 22)
    ax.set_xlabel("distinct people among the 21 neurons' nearest faces")
    ax.set_ylabel("FID, Inception dims 2048")
    fig.colorbar(sc, ax=ax, label="memorisation ratio")
    ax.set_ylim(0, 300)
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
