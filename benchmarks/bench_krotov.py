"""Krotov–Hopfield rules: Cython kernels against numpy baselines, measured in the same run.

    python benchmarks/bench_krotov.py                  # both tables, 5 repeats
    python benchmarks/bench_krotov.py --quick          # 2 repeats, fewer batches
    python benchmarks/bench_krotov.py --mnist DIR      # where t10k-images-idx3-ubyte.gz is

Threads (``--threads 1,2``): table 1 is measured at each count, the kernel on that many threads
(``plasticity_kit.threads.using``), numpy's and scipy's BLAS limited to as many (threadpoolctl)
for the numpy rows and the bare product.  Every table prints the load average it ran under.

Data: the genuine MNIST test set (pixels / 255) from ``--mnist DIR``, else ``$PLASTICITY_KIT_MNIST``,
else ``<repo>/../shared/data/mnist``; without it, uniform random numbers of the same shape (the
output says which).

Table 1, ranking rule (the issue's shape): 60,000 × 784 float32 inputs (the test set tiled 6×),
2,000 hidden units, mini-batches of 100, p = 3, k = 7, Δ = 0.4.  Each row runs the same
``--batches`` consecutive mini-batches (contiguous row slices) from the same N(0, 1) weights:

  (a) the reference notebook's loop transcribed to numpy, in float64 (the notebook's dtype) and
      float32: sign·|W|^(p−1), the dense currents, a full argsort of every column, the dense g
      matrix, ds = g·Xᵀ − tile(Σ g⊙I)·W, W += eps·ds/max|ds|;
  (b) our numpy reference ``rules.krotov_hopfield.reference_step`` (stable argsort, dense g, the
      second dense product);
  (c) the rule's step, ``KrotovHopfield.step`` → ``kernels.krotov.ranking_step`` (powered weights
      kept between steps, one product, per-sample top-k, sparse update of the two rows per
      sample), float32 and float64;
  (d) the single dense product of a mini-batch, I = X·Wᵀ (B × N), with the BLAS the kernel uses
      (scipy's ``sgemm`` / ``dgemm``, output preallocated) — the floor for any implementation.

Targets (issues 5, 14): (c) ≥ 10× (a) in samples/s, and (c) within 1.2× of (d) at 1 and 2 threads.

Table 2, full dynamics (the slides' setup): 600 images (60 per digit), 484 hidden units,
mini-batches of 100, p = 2, w_inh = 0.8, dt = 1 τ, tol = 1e-6, max 1,000 steps, from N(0, 1)
weights; one epoch = 6 steps:

  (e) a straightforward numpy implementation: each image relaxed on its own in a Python loop
      (the same linearly implicit Euler step, vectors of 484), then the batch update;
  (f) our numpy reference ``rules.krotov_hopfield_dynamics.reference_step`` (images relaxed side
      by side as a B × N array);
  (g) the rule's step → ``kernels.krotov.dynamics_step`` (one image per thread, nogil).

Target (issue): (g) under 5 s per epoch; the slides report 585 s for their whole training.
Timings are medians over the repeats (rows interleaved, order rotating) with [min–max]; before
each timed row the machine is let settle: 0.3 s of sleep (BLAS pools go quiet), then the row
itself untimed for 0.15 s (benchmarks/steady.py).
"""
from __future__ import annotations

import argparse
import gzip
import os
import statistics
import time
from pathlib import Path

import numpy as np
from steady import settle

REPO = Path(__file__).resolve().parent.parent
IMAGES = "t10k-images-idx3-ubyte.gz"
LABELS = "t10k-labels-idx1-ubyte.gz"


def load_mnist(directory):
    """(images float32 (10000, 784) in [0, 1], labels) or None."""
    candidates = [directory, os.environ.get("PLASTICITY_KIT_MNIST"), REPO.parent / "shared" / "data" / "mnist"]
    for c in candidates:
        if c and (Path(c) / IMAGES).is_file():
            with gzip.open(Path(c) / IMAGES) as fh:
                X = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 784)
            with gzip.open(Path(c) / LABELS) as fh:
                y = np.frombuffer(fh.read(), np.uint8, offset=8)
            return (X / np.float32(255)).astype(np.float32), y, str(Path(c) / IMAGES)
    return None


def notebook_step(W, X, eps, p, k, delta, prec):
    """The reference notebook's mini-batch loop body, transcribed operation for operation
    (inputs as columns, argsort of every column, dense yl, tiled xx)."""
    hid, N = W.shape
    num = X.shape[0]
    inputs = np.transpose(X)
    sig = np.sign(W)
    tot_input = np.dot(sig * np.absolute(W) ** (p - 1), inputs)
    y = np.argsort(tot_input, axis=0)
    yl = np.zeros((hid, num), dtype=W.dtype)
    yl[y[hid - 1, :], np.arange(num)] = 1.0
    yl[y[hid - k], np.arange(num)] = -delta
    xx = np.sum(np.multiply(yl, tot_input), 1)
    ds = np.dot(yl, np.transpose(inputs)) - np.multiply(np.tile(xx.reshape(xx.shape[0], 1), (1, N)), W)
    nc = np.amax(np.absolute(ds))
    if nc < prec:
        nc = prec
    W += eps * np.true_divide(ds, nc)


def straightforward_dynamics_step(W, X, eps, p, delta, h_star, w, dt, max_steps, tol, prec):
    """Each image relaxed on its own with numpy vectors, then the batch update (plain numpy)."""
    Wp = np.sign(W) * np.abs(W) ** (p - 1)
    Da, Di = 1.0 + dt * (1.0 - w), 1.0 + dt
    G = np.zeros((X.shape[0], W.shape[0]), dtype=W.dtype)
    I_all = X @ Wp.T
    for b in range(X.shape[0]):
        I = I_all[b].astype(np.float64)
        h = np.zeros_like(I)
        for _ in range(max_steps):
            r = np.maximum(h, 0)
            if np.abs(I - w * (r.sum() - r) - h).max() <= tol:
                break
            a = h > 0
            c = h + dt * I
            S = (c[a].sum() / Da) / (1 + dt * w * a.sum() / Da)
            h = (c - dt * w * S) / np.where(a, Da, Di)
        G[b] = np.where(h >= h_star, 1.0, np.where(h >= 0, -delta, 0.0))
    xx = (G * I_all).sum(axis=0)
    ds = G.T @ X - xx[:, None] * W
    W += eps * (ds / max(float(np.abs(ds).max()), prec))


def measure(rows, repeats):
    """rows: name → callable(); interleaved repeats with a rotating order; name → list of seconds."""
    times = {name: [] for name in rows}
    names = list(rows)
    for name in names:  # warm-up
        rows[name]()
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            settle(rows[name])
            t = time.perf_counter()
            rows[name]()
            times[name].append(time.perf_counter() - t)
    return times


def fmt(ts):
    return f"{statistics.median(ts):9.4f} [{min(ts):.4f}–{max(ts):.4f}]"


def ranking_table(X60k, batches, repeats, nt):
    """Table 1 at ``nt`` threads: the kernel's team and the BLAS of the numpy rows and of (d)."""
    from scipy.linalg.blas import dgemm, sgemm
    from threadpoolctl import threadpool_limits

    from plasticity_kit import threads
    from plasticity_kit.testing import make_rule
    from plasticity_kit.rules.krotov_hopfield import reference_step

    N, B, p, k, delta, eps = 2000, 100, 3.0, 7, 0.4, 0.02
    W32 = np.random.default_rng(0).normal(size=(N, 784)).astype(np.float32)
    W64 = W32.astype(np.float64)
    s32 = [X60k[i * B:(i + 1) * B] for i in range(batches)]
    s64 = [x.astype(np.float64) for x in s32]
    rules = {dt: make_rule("krotov_hopfield", {"p": p, "k": k, "delta": delta, "learning_rate": eps,
                                               "schedule": "constant"}, n_inputs=784, n_neurons=N, dtype=dt)
             for dt in ("float32", "float64")}
    I32 = np.empty((N, B), np.float32, order="F")  # (X·Wᵀ)ᵀ column-major = I (B × N) row-major
    I64 = np.empty((N, B), np.float64, order="F")

    def run(step, W0, slices):
        W = W0.copy()
        def go():
            W[...] = W0
            for xb in slices:
                step(W, xb)
        return go

    def kernel(dt, W0, slices):
        state = {"weights": W0.copy(), "epoch": np.zeros(1, np.int64)}
        rule = rules[dt]
        def go():
            state["weights"][...] = W0
            rule._powered = None  # a fresh start each repeat: the first step computes all powered rows
            with threads.using(nt):
                for xb in slices:
                    rule.step(state, xb)
        return go

    rows = {
        "(a) notebook loop, float64": run(lambda W, xb: notebook_step(W, xb, eps, p, k, delta, 1e-30), W64, s64),
        "(a) notebook loop, float32": run(lambda W, xb: notebook_step(W, xb, eps, p, k, delta, 1e-30), W32, s32),
        "(b) numpy reference, float32": run(lambda W, xb: reference_step(W, xb, eps, p, k, delta, 1e-30), W32, s32),
        "(c) kernel (rule.step), float32": kernel("float32", W32, s32),
        "(c) kernel (rule.step), float64": kernel("float64", W64, s64),
        "(d) one product X·Wᵀ, float32": run(lambda W, xb: sgemm(1.0, W.T, xb.T, trans_a=True, c=I32,
                                                                 overwrite_c=True), W32, s32),
        "(d) one product X·Wᵀ, float64": run(lambda W, xb: dgemm(1.0, W.T, xb.T, trans_a=True, c=I64,
                                                                 overwrite_c=True), W64, s64),
    }
    load0 = os.getloadavg()
    with threadpool_limits(limits=nt, user_api="blas"):
        times = measure(rows, repeats)
    n = batches * B
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"\nTable 1 — ranking rule, {nt} thread(s), {N} units, batch {B}, p={p:g}, k={k}, {batches} batches "
          f"({n} samples) per repeat; load average {load0[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"{'row':34s} {'seconds (median [min–max])':>30s} {'samples/s':>11s} {'s / 60k epoch':>14s}")
    for name, ts in times.items():
        print(f"{name:34s} {fmt(ts):>30s} {n / med[name]:11.0f} {60000 / n * med[name]:14.2f}")
    for dt in ("float32", "float64"):
        c, d = med[f"(c) kernel (rule.step), {dt}"], med[f"(d) one product X·Wᵀ, {dt}"]
        cmin, dmin = min(times[f"(c) kernel (rule.step), {dt}"]), min(times[f"(d) one product X·Wᵀ, {dt}"])
        print(f"{dt}: (c) / (d) = {c / d:.2f} (medians), {cmin / dmin:.2f} (minima)   (target ≤ 1.2);  "
              f"(c) speed-up over the notebook loop in float64: {med['(a) notebook loop, float64'] / c:.1f}×, "
              f"float32: {med['(a) notebook loop, float32'] / c:.1f}×")
    return med


def dynamics_table(X, y, repeats):
    from plasticity_kit.testing import make_rule
    from plasticity_kit.rules.krotov_hopfield_dynamics import reference_step

    rng = np.random.default_rng(0)
    pick = np.sort(np.concatenate([rng.choice(np.flatnonzero(y[:8000] == d), 60, replace=False) for d in range(10)]))
    data = np.ascontiguousarray(X[pick])
    N, B = 484, 100
    params = dict(p=2.0, delta=0.4, h_star=0.5, w_inh=0.8, dt=1.0, max_steps=1000, tol=1e-6, learning_rate=0.02)
    W0 = np.random.default_rng(1).normal(size=(N, 784)).astype(np.float32)
    slices = [data[i:i + B] for i in range(0, len(data), B)]
    rule = make_rule("krotov_hopfield_dynamics", {**params, "schedule": "constant"}, n_inputs=784, n_neurons=N,
                     dtype="float32")
    args = (params["learning_rate"], params["p"], params["delta"], params["h_star"], params["w_inh"], params["dt"],
            params["max_steps"], params["tol"], 1e-30)
    state = {"weights": W0.copy(), "epoch": np.zeros(1, np.int64), "unrelaxed": np.zeros(1, np.int64)}

    def numpy_rows(step):
        W = W0.copy()
        def go():
            W[...] = W0
            for xb in slices:
                step(W, xb, *args)
        return go

    def kernel():
        state["weights"][...] = W0
        for xb in slices:
            rule.step(state, xb)

    rows = {
        "(e) straightforward numpy": numpy_rows(straightforward_dynamics_step),
        "(f) numpy reference (batched)": numpy_rows(reference_step),
        "(g) Cython kernel (rule.step)": kernel,
    }
    times = measure(rows, repeats)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"\nTable 2 — full dynamics, {N} units, {len(data)} images (60 per digit), batch {B}, one epoch per repeat")
    print(f"{'row':34s} {'s / epoch (median [min–max])':>30s} {'vs (g)':>8s}")
    for name, ts in times.items():
        print(f"{name:34s} {fmt(ts):>30s} {med[name] / med['(g) Cython kernel (rule.step)']:7.1f}×")
    print(f"(g) per epoch: {med['(g) Cython kernel (rule.step)']:.3f} s   (target < 5 s; the slides: 585 s for the "
          f"whole training)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist", default=None, help="directory holding t10k-images-idx3-ubyte.gz")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batches", type=int, default=50, help="mini-batches per repeat in table 1")
    ap.add_argument("--quick", action="store_true", help="2 repeats, 20 batches")
    ap.add_argument("--only", choices=("ranking", "dynamics"), default=None)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts of table 1 (default 1,2)")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats, args.batches = 2, 20

    import plasticity_kit.kernels  # noqa: F401  (sets the OpenMP wait policy before libgomp loads)
    from plasticity_kit.kernels import krotov  # noqa: F401

    found = load_mnist(args.mnist)
    if found is None:
        rng = np.random.default_rng(0)
        X, y, source = rng.random((10000, 784), dtype=np.float32), rng.integers(0, 10, 10000), "uniform random"
    else:
        X, y, source = found
    print(f"data: {source}")
    print(f"cpus: {os.cpu_count()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    if args.only in (None, "ranking"):
        tiled = np.ascontiguousarray(np.tile(X, (6, 1)))
        for nt in (int(t) for t in args.threads.split(",") if t.strip()):
            ranking_table(tiled, args.batches, args.repeats, nt)
    if args.only in (None, "dynamics"):
        dynamics_table(X, y, args.repeats)


if __name__ == "__main__":
    main()
