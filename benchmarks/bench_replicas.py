"""R BCM networks in one kernel call versus R calls, one network each (the sweep workload).

The reference study trains, per configuration, 64 networks that differ only in their initial
weights on the same 10 Olivetti faces (batch 10, so one step per epoch).  The replicas' rows are
stacked (N = R·n) and the kernel steps each block as a network of its own, in one call.

    python benchmarks/bench_replicas.py [--replicas 64] [--neurons 13] [--epochs 300]

Prints seconds for `epochs` steps of R networks both ways, the speed-up, and the projected
training time of the study's Fig. 1 sweep (6,400 networks × 3000 epochs, mean N = 13).
"""
import argparse
import time

import numpy as np

from plasticity_kit import activations, interactions, optimizers
from plasticity_kit.datasets.olivetti import Olivetti
from plasticity_kit.kernels.bcm import bcm_step
from plasticity_kit.interactions import interaction_factor


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=64)
    ap.add_argument("--neurons", type=int, default=13)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    args = ap.parse_args()
    R, n, E = args.replicas, args.neurons, args.epochs
    X = Olivetti(select="persons", persons=[0]).load(np.random.default_rng(0)).X.astype(np.float32)
    D = X.shape[1]
    F = interaction_factor(interactions.Binocular().lateral(n)).astype(np.float32)
    opt = optimizers.SGD(lr=1e-4) if args.optimizer == "sgd" else optimizers.Adam(lr=0.001)
    lr, a, b, eps = opt.kernel_args()
    W0 = np.random.default_rng(1).normal(0, 0.01, (R * n, D)).astype(np.float32)

    def fresh(rows):
        moments = [np.zeros((rows, D), np.float32) for _ in opt.state_names]
        return (moments + [None, None])[:2], np.zeros(rows, np.float32), np.zeros(1, np.int64)

    def one_call():
        W = W0.copy()
        (m1, m2), theta, t = fresh(R * n)
        start = time.perf_counter()
        for _ in range(E):
            bcm_step(W, theta, X, F, activations.RELU, 0.5, False, 1e-8, opt.kernel_code, lr, a, b, eps, m1, m2, t,
                     replicas=R)
        return time.perf_counter() - start, W

    def separate():
        Ws = [W0[r * n:(r + 1) * n].copy() for r in range(R)]
        st = [fresh(n) for _ in range(R)]
        start = time.perf_counter()
        for _ in range(E):
            for W, ((m1, m2), theta, t) in zip(Ws, st):
                bcm_step(W, theta, X, F, activations.RELU, 0.5, False, 1e-8, opt.kernel_code, lr, a, b, eps, m1, m2, t)
        return time.perf_counter() - start, np.concatenate(Ws)

    t_sep, W_sep = separate()
    t_one, W_one = one_call()
    same = np.array_equal(W_one, W_sep)
    print(f"BCM, {R} replicas × {n} neurons, Olivetti person 0 (10 faces, batch 10), {args.optimizer}, "
          f"{E} epochs, binocular")
    print(f"{'':34s} {'seconds':>9s} {'ms/epoch':>9s}")
    print(f"{'R separate calls per epoch':34s} {t_sep:9.3f} {1e3 * t_sep / E:9.3f}")
    print(f"{'one call with R stacked replicas':34s} {t_one:9.3f} {1e3 * t_one / E:9.3f}")
    print(f"speed-up {t_sep / t_one:.2f}×; identical weights: {same}")
    fig1 = 6400 / R * 3000 / E * t_one
    print(f"projected Fig. 1 training (6,400 networks × 3000 epochs at N = {n}): {fig1 / 60:.1f} min "
          "of kernel time, one process")


if __name__ == "__main__":
    main()
