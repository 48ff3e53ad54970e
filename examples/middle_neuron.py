"""The binocular middle neuron of the Olivetti job (issue 13): why it dies, and whether the study's
own model makes it an "average face".

Rondini 2023 (§1.3) says the B matrix's middle neuron "generates a synthetic 'average' image of all
the training images".  This script trains, for each configuration below, ``--replicas`` networks
of 21 neurons with the B matrix on the 400 Olivetti faces (batch 100) and draws replica 0's middle
neuron (index 10) as a 64×64 image beside the mean face and its nearest training face, with

* r(mean): the Pearson correlation of its weights with the mean face (min–max mapping to grey
  levels keeps the sign, so r < 0 is a negative of the image);
* r(nearest): the largest correlation with one training face, and that face's person;
* change: ‖W − W₀‖ / ‖W₀‖, how far the weights moved from their initial noise.

Configurations (``CONFIGS``): ``issue13`` — ``specs/olivetti.yaml`` as it was when issue 13 was
filed (ReLU, Adam 1e-3, N(0, 0.01²), moving-average θ); ``study`` — the reference study's own model,
the Nico-Curti/plasticity library's BCM as the study used it (θ estimated on each batch, logistic
activation, SGD 2e-2, N(0, 1)) plus the B matrix; ``spec`` — ``specs/olivetti.yaml`` as shipped now.
It also traces the first steps of the ``issue13`` middle neuron with the numpy reference step.

    python examples/middle_neuron.py [--out runs/middle_neuron] [--epochs 3000] [--replicas 16]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from plasticity_kit.rules.bcm import reference_step
from plasticity_kit.runner import execute_data, seed_streams
from plasticity_kit.spec import apply_overrides, read_yaml, resolve

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "specs" / "olivetti.yaml"
B_MATRIX = ["model.interaction=binocular", "model.n_neurons=21", "schedule.batch_size=100",
            "data={name: olivetti, params: {select: all}}"]
CONFIGS = {
    "issue13": B_MATRIX + ["model.activation=relu", "model.optimizer={name: adam, params: {lr: 0.001}}",
                           "model.initializer={name: normal, params: {mu: 0.0, std: 0.01}}",
                           "model.rule.params={memory_factor: 0.5, threshold: moving_average}"],
    "study": B_MATRIX + ["model.activation=logistic", "model.optimizer={name: sgd, params: {lr: 0.02}}",
                         "model.initializer={name: normal, params: {mu: 0.0, std: 1.0}}",
                         "model.rule.params={memory_factor: 0.5, threshold: batch}"],
    "spec": [],
}
LEARNED_R = 0.4
TITLES = {"issue13": "olivetti.yaml at issue 13\n(ReLU, Adam 1e-3, N(0, 0.01²))",
          "study": "study's own model\n(logistic, SGD 2e-2, N(0,1), batch θ)",
          "spec": "olivetti.yaml now"}


def standard(a: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm (their dot products are Pearson correlations)."""
    a = np.asarray(a, dtype=np.float64)
    a = a - a.mean(axis=-1, keepdims=True)
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-300)


def load(overrides, epochs, replicas):
    raw = apply_overrides(read_yaml(SPEC), list(overrides) + [f"schedule.epochs={epochs}", f"model.replicas={replicas}"])
    raw["metrics"], raw["exporters"] = [], []
    return resolve(raw, str(SPEC))


def train(overrides, epochs, replicas):
    """Initial and final weights (R × N × D, float64), the training faces and the spec."""
    spec = load(overrides, epochs, replicas)
    streams = seed_streams(spec.schedule["seed"])
    data = spec.dataset.load(streams["data"])
    rule = spec.build_rule(data.X.shape[1])
    state = rule.init_state(streams["init"])
    W0 = state["weights"].astype(np.float64).reshape(replicas, spec.model.n_neurons, -1)
    result = execute_data(spec, data, state=state, streams=streams, progress=False, log=lambda *a, **k: None)
    W = result.state["weights"].astype(np.float64).reshape(W0.shape)
    return W0, W, data.X.astype(np.float64), spec


def middle_stats(W0, W, X, m):
    """Per replica: r(mean face), r(nearest face), nearest index, relative change of neuron m, and
    how many of the replica's neurons learned (r(nearest) > 0.4 and change > 1: weights at least
    doubled away from their initial noise and shaped like one face)."""
    S = standard(W)
    C = S @ standard(X).T
    r_nearest = C.max(axis=2)
    change = np.linalg.norm(W - W0, axis=2) / np.linalg.norm(W0, axis=2)
    return {"r_mean": S[:, m] @ standard(X.mean(axis=0)), "r_nearest": r_nearest[:, m], "nearest": C[:, m].argmax(axis=1),
            "change": change[:, m], "neurons_learned": ((r_nearest > LEARNED_R) & (change > 1.0)).sum(axis=1)}


def trace(overrides, steps=12, seed=0):
    """The first ``steps`` steps of the middle neuron with the numpy reference step: fraction of
    the 400 faces it answers (y > 0), mean response, θ, and the mean of its own drive
    F_mm·(W_m·x) and of the other neurons' share Σ_{j≠m} F_mj·(W_j·x)."""
    spec = load(overrides, 1, 1)
    streams = seed_streams(spec.schedule["seed"])
    data = spec.dataset.load(streams["data"])
    X = np.ascontiguousarray(data.X, dtype=spec.model.dtype)
    rule = spec.build_rule(X.shape[1])
    state = rule.init_state(streams["init"])
    opt = {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith("optimizer/")}
    m, F = spec.model.n_neurons // 2, rule.factor
    rng, batch = np.random.default_rng(seed), spec.schedule["batch_size"]
    rows = []
    for step in range(steps + 1):
        Z = state["weights"].astype(np.float64) @ X.T.astype(np.float64)
        y = spec.model.activation(F[m] @ Z)
        own = F[m, m] * Z[m]
        rows.append({"step": step, "answers": float((y > 0).mean()), "y_mean": float(y.mean()),
                     "theta": float(state["theta"][m]), "own_drive": float(own.mean()),
                     "others_drive": float((F[m] @ Z - own).mean())})
        if step < steps:
            p = rule.params
            reference_step(state["weights"], state["theta"], X[rng.choice(len(X), batch, replace=False)], F,
                           spec.model.activation, spec.model.optimizer, opt, p["memory_factor"], p["threshold"],
                           p["epsilon"])
    return rows


def figure(results, X, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 3, figsize=(5.4, 2.1 * len(results)), squeeze=False)
    mean_face = X.mean(axis=0).reshape(64, 64)
    for row, (name, (W, stats)) in zip(axes, results.items()):
        i = int(stats["nearest"][0])
        panels = [(mean_face, "mean face"),
                  (W[0, 10].reshape(64, 64), f"middle neuron\nr(mean) = {stats['r_mean'][0]:+.2f}"),
                  (X[i].reshape(64, 64), f"nearest face #{i} (person {i // 10})\nr = {stats['r_nearest'][0]:.2f}")]
        for ax, (img, title) in zip(row, panels):
            ax.imshow(img, cmap="gray", interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(TITLES[name], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=64)
    plt.close(fig)


def trace_figure(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 2.8))
    a.plot(steps, [r["answers"] for r in rows], "o-")
    a.set_xlabel("step")
    a.set_ylabel("fraction of faces with y > 0")
    b.plot(steps, [r["own_drive"] for r in rows], "o-", label="own drive F_mm·W_m·x")
    b.plot(steps, [r["others_drive"] for r in rows], "s-", label="others Σ F_mj·W_j·x")
    b.plot(steps, [r["theta"] for r in rows], "^-", label="θ")
    b.set_xlabel("step")
    b.legend(fontsize=7)
    fig.suptitle("middle neuron, olivetti.yaml at issue 13 (mean over the 400 faces)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/middle_neuron", help="folder for the PNGs and middle_neuron.json")
    p.add_argument("--epochs", type=int, default=3000)
    p.add_argument("--replicas", type=int, default=16)
    p.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, summary, X = {}, {}, None
    for name in args.configs:
        W0, W, X, spec = train(CONFIGS[name], args.epochs, args.replicas)
        stats = middle_stats(W0, W, X, spec.model.n_neurons // 2)
        results[name] = (W, stats)
        summary[name] = {k: [round(float(v), 4) for v in vals] for k, vals in stats.items()}
        print(f"{name:8s} r(mean face) median {np.median(stats['r_mean']):+.3f} "
              f"[{stats['r_mean'].min():+.3f}, {stats['r_mean'].max():+.3f}]  r(nearest) median "
              f"{np.median(stats['r_nearest']):.3f}  change median {np.median(stats['change']):.2f}  "
              f"nearest persons {sorted(set((stats['nearest'] // 10).tolist()))}  neurons learned per replica "
              f"{stats['neurons_learned'].tolist()} of {spec.model.n_neurons}")
    figure(results, X, out / "middle_neuron.png")
    rows = trace(CONFIGS["issue13"])
    trace_figure(rows, out / "middle_neuron_trace.png")
    summary["issue13_trace"] = rows
    (out / "middle_neuron.json").write_text(json.dumps(summary, indent=1))
    for r in rows:
        print("  step {step:2d}: answers {answers:.3f} of the faces, θ {theta:.3f}, own drive {own_drive:+.3f}, "
              "others {others_drive:+.3f}".format(**r))
    print(f"wrote {out / 'middle_neuron.png'}, {out / 'middle_neuron_trace.png'}, {out / 'middle_neuron.json'}")


if __name__ == "__main__":
    main()
