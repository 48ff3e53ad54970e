"""R Krotov–Hopfield networks in one ranking-kernel call versus R calls, one network each.

A sweep trains many networks that differ only in their initial weights on the same data.  Their
rows are stacked (N = R·n) and ``kernels.krotov.ranking_step(..., replicas=R)`` steps each block
as a network of its own (its own currents, ranking among its own n units and normaliser), in one
call, bit for bit as R separate calls.

    python benchmarks/bench_krotov_replicas.py [--replicas 64] [--units 100] [--epochs 5]

Data: the MNIST test images (10,000 × 784, pixels / 255, float32) when ``$PLASTICITY_KIT_MNIST``
names the folder holding ``t10k-images-idx3-ubyte[.gz]`` (or that file itself); otherwise uniform
random numbers of shape 2,000 × 784 (the output says which).  Mini-batches of 100 in a fixed
order, p = 3, k = 7, Δ = 0.4, eps = 0.02, float32, weights from N(0, 1).  Prints seconds for
``epochs`` epochs of R networks both ways, ms per mini-batch, the speed-up, and whether the
weights and normalisers of the two ways are identical.
"""
import argparse
import os
import time
from pathlib import Path

import numpy as np

IMAGES = "t10k-images-idx3-ubyte"


def load_images():
    """(X float32 in [0, 1], description) from $PLASTICITY_KIT_MNIST, else random data."""
    from plasticity_kit.datasets.mnist import find_file, read_idx

    root = os.environ.get("PLASTICITY_KIT_MNIST")
    if root:
        path = Path(root) if Path(root).is_file() else find_file(Path(root), IMAGES)
        if path is not None:
            X = read_idx(path)
            X = X.reshape(len(X), -1)
            return (X / np.float32(255)).astype(np.float32), f"MNIST test images {X.shape[0]}x{X.shape[1]} ({path})"
    X = np.random.default_rng(0).random((2000, 784), dtype=np.float32)
    why = "not set" if not root else f"has no {IMAGES}[.gz] at {root}"
    return X, f"uniform random 2000x784 ($PLASTICITY_KIT_MNIST {why})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=64)
    ap.add_argument("--units", type=int, default=100, help="hidden units per network")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    R, n, E, B = args.replicas, args.units, args.epochs, args.batch

    import plasticity_kit.kernels  # noqa: F401  (sets the OpenMP wait policy before libgomp loads)
    from plasticity_kit.kernels.krotov import ranking_step

    X, source = load_images()
    D = X.shape[1]
    batches = [X[i:i + B] for i in range(0, X.shape[0] - B + 1, B)]
    steps = E * len(batches)
    p, k, delta, eps, prec = 3.0, 7, 0.4, 0.02, 1e-30
    W0 = np.random.default_rng(1).normal(size=(R * n, D)).astype(np.float32)

    def separate():
        Ws = [W0[r * n:(r + 1) * n].copy() for r in range(R)]
        norms = np.empty(R)
        start = time.perf_counter()
        for _ in range(E):
            for xb in batches:
                for r, W in enumerate(Ws):
                    norms[r] = ranking_step(W, xb, eps, p, k, delta, prec)
        return time.perf_counter() - start, np.concatenate(Ws), norms

    def one_call():
        W = W0.copy()
        start = time.perf_counter()
        for _ in range(E):
            for xb in batches:
                norms = ranking_step(W, xb, eps, p, k, delta, prec, replicas=R)
        return time.perf_counter() - start, W, norms

    # warm-up (BLAS threads, first-touch of the buffers)
    ranking_step(W0[:n].copy(), batches[0], eps, p, k, delta, prec)
    ranking_step(W0.copy(), batches[0], eps, p, k, delta, prec, replicas=R)
    t_sep, W_sep, nc_sep = separate()
    t_one, W_one, nc_one = one_call()
    same = np.array_equal(W_one, W_sep)
    same_nc = np.array_equal(nc_one, nc_sep)

    print(f"Krotov–Hopfield ranking rule, {R} replicas x {n} units, D = {D}, batch {B}, p = {p:g}, k = {k}, "
          f"float32, {E} epochs ({len(batches)} batches/epoch, {steps} batches)")
    print(f"data: {source}")
    print(f"cpus: {os.cpu_count()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print(f"{'':34s} {'seconds':>9s} {'ms/batch':>9s}")
    print(f"{'R separate calls per batch':34s} {t_sep:9.3f} {1e3 * t_sep / steps:9.3f}")
    print(f"{'one call with R stacked replicas':34s} {t_one:9.3f} {1e3 * t_one / steps:9.3f}")
    print(f"speed-up {t_sep / t_one:.2f}x; identical weights: {same}; identical normalisers: {same_nc}")


if __name__ == "__main__":
    main()
