"""R BCM networks in one kernel call versus R calls, one network each (the sweep workload).

The reference study trains, per configuration, 64 networks that differ only in their initial
weights on the same 10 Olivetti faces (batch 10, so one step per epoch).  The replicas' rows are
stacked (N = R·n) and the kernel steps each block as a network of its own, in one call.

    python benchmarks/bench_replicas.py [--replicas 64] [--neurons 13] [--epochs 300]

Prints seconds for `epochs` steps of R networks both ways — one kernel call per step, all steps in
one call (``bcm_steps``), and for SGD the sample-space form — with the speed-up of stacking and
whether the stacked weights equal the separate ones bit for bit.
"""
import argparse
import os
import time

import numpy as np

from plasticity_kit import activations, interactions, optimizers
from plasticity_kit.datasets.olivetti import Olivetti
from plasticity_kit.kernels.bcm import bcm_step, bcm_steps
from plasticity_kit.interactions import interaction_factor


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=64)
    ap.add_argument("--neurons", type=int, default=13)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    ap.add_argument("--threads", type=int, default=0,
                    help="kernel threads (default: plasticity_kit.threads.get_threads(); stacked replicas are shared "
                    "out one network per thread)")
    args = ap.parse_args()
    from plasticity_kit.threads import get_threads

    nt = args.threads or get_threads()
    R, n, E = args.replicas, args.neurons, args.epochs
    X = Olivetti(select="persons", persons=[0]).load(np.random.default_rng(0)).X.astype(np.float32)
    D = X.shape[1]
    F = interaction_factor(interactions.Binocular().lateral(n)).astype(np.float32)
    opt = optimizers.SGD(lr=3e-4) if args.optimizer == "sgd" else optimizers.Adam(lr=0.001)
    lr, a, b, eps = opt.kernel_args()
    W0 = np.random.default_rng(1).normal(0, 1e-4 if args.optimizer == "sgd" else 0.01, (R * n, D)).astype(np.float32)

    def fresh(rows):
        moments = [np.zeros((rows, D), np.float32) for _ in opt.state_names]
        return (moments + [None, None])[:2], np.zeros(rows, np.float32), np.zeros(rows // n, np.int64)

    G = (X.astype(np.float64) @ X.astype(np.float64).T).astype(np.float32)  # in the state's type
    batches = np.stack([np.random.default_rng(2).permutation(len(X)) for _ in range(E)]).astype(np.int32)

    def kernel(W, moments, theta, t, replicas, steps_at_once, gram):
        m1, m2 = moments
        if steps_at_once:
            bcm_steps(W, theta, X, batches, F, activations.RELU, 0.5, False, 1e-8, opt.kernel_code, lr, a, b, eps,
                      m1, m2, t, gram=gram, num_threads=nt, replicas=replicas)
        else:
            for idx in batches:
                bcm_step(W, theta, np.ascontiguousarray(X[idx]), F, activations.RELU, 0.5, False, 1e-8,
                         opt.kernel_code, lr, a, b, eps, m1, m2, t, num_threads=nt, replicas=replicas)

    def one_call(steps_at_once, gram):
        W = W0.copy()
        moments, theta, t = fresh(R * n)
        start = time.perf_counter()
        kernel(W, moments, theta, t, R, steps_at_once, gram)
        return time.perf_counter() - start, W

    def separate(steps_at_once, gram):
        Ws = [W0[r * n:(r + 1) * n].copy() for r in range(R)]
        st = [fresh(n) for _ in range(R)]
        start = time.perf_counter()
        if steps_at_once:
            for W, (moments, theta, t) in zip(Ws, st):
                kernel(W, moments, theta, t, 1, True, gram)
        else:
            for idx in batches:
                for W, ((m1, m2), theta, t) in zip(Ws, st):
                    bcm_step(W, theta, np.ascontiguousarray(X[idx]), F, activations.RELU, 0.5, False, 1e-8,
                             opt.kernel_code, lr, a, b, eps, m1, m2, t, num_threads=nt)
        return time.perf_counter() - start, np.concatenate(Ws)

    print(f"BCM kernel, {R} replicas × {n} neurons, Olivetti person 0 (10 faces, batch 10), {args.optimizer}, "
          f"{E} epochs, binocular, {nt} kernel thread(s), load average {os.getloadavg()[0]:.2f}")
    print(f"{'':62s} {'seconds':>9s} {'ms/epoch':>9s} {'speed-up':>9s} identical")
    forms = [("one step per call (bcm_step)", False, None), ("all steps in one call (bcm_steps)", True, None)]
    if args.optimizer == "sgd":
        forms.append(("all steps, sample space (bcm_steps, gram)", True, G))
    for label, at_once, gram in forms:
        t_sep, W_sep = separate(at_once, gram)
        t_one, W_one = one_call(at_once, gram)
        same = np.array_equal(W_one, W_sep)
        print(f"{label + ': R networks apart':62s} {t_sep:9.3f} {1e3 * t_sep / E:9.3f} {1.0:8.2f}×")
        print(f"{label + ': R stacked':62s} {t_one:9.3f} {1e3 * t_one / E:9.3f} {t_sep / t_one:8.2f}× {same}")
    print("(benchmarks/bench_sweep.py times the whole Fig. 1 sweep)")


if __name__ == "__main__":
    main()
