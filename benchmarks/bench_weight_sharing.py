"""Speed of the locally connected kernels against their numpy references, measured in one run.

Time per sleep phase (``sleep_steps`` Hebbian iterations incl. SNR_w after each), per wake step
and per forward pass, for the Fig. 4 toy (100 neurons, k = 9) and a CIFAR-10 layer (32×32×3,
k = 5, 784 positions × 8 channels).  Best of ``--repeat`` runs for the kernel, one run for numpy.

    python benchmarks/bench_weight_sharing.py [--repeat 3] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from plasticity_kit.kernels import locally_connected as lc
from plasticity_kit.model.conv import Geometry
from plasticity_kit.rules.weight_sharing import (
    WAKE_CODES, circuit_coefficients, kernel_args, reference_forward, reference_sleep_phase, reference_wake_step,
    sharing_groups,
)

TOY = ("toy k=9 (100 pos x 1 ch)", Geometry(90, 90, 1, kernel=9, stride=9), 1)
CIFAR = ("CIFAR k=5 (784 pos x 8 ch)", Geometry(32, 32, 3, kernel=5, stride=1), 8)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def sleep_case(name, g, F, sharing, coefficients, T, B, repeat, threads):
    rng = np.random.default_rng(0)
    W = rng.normal(size=(g.positions, F, g.patch_size)).astype(np.float32)
    tiles = rng.normal(size=(T, B, g.kernel, g.kernel, g.channels)).astype(np.float32)
    groups = sharing_groups(g, sharing)
    snr = np.empty(T + 1)

    def kernel():
        lc.lc_sleep_phase(W.copy(), tiles, groups.order, groups.ptr, groups.offsets, 0.02, 1e-3, *coefficients,
                          snr, threads)

    return best(kernel, repeat), best(lambda: reference_sleep_phase(W.copy(), tiles, groups, 0.02, 1e-3,
                                                                      coefficients), 1)


def wake_case(g, F, B, repeat, threads, rule="sanger"):
    rng = np.random.default_rng(1)
    W = (0.1 * rng.normal(size=(g.positions, F, g.patch_size))).astype(np.float32)
    X = rng.random((B, g.n_inputs)).astype(np.float32)
    out = np.empty((B, g.positions, F), np.float32)
    wake = best(lambda: lc.lc_wake_step(W.copy(), X, *kernel_args(g), WAKE_CODES[rule], 1e-3, 0.0, threads), repeat)
    wake_np = best(lambda: reference_wake_step(W.copy(), X, g, rule, 1e-3, 0.0), 1)
    fwd = best(lambda: lc.lc_forward(W, X, *kernel_args(g), out, threads), repeat)
    fwd_np = best(lambda: reference_forward(W, X, g), 1)
    return (wake, wake_np), (fwd, fwd_np)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="OpenMP threads of the kernels (0: default)")
    parser.add_argument("--steps", type=int, default=100, help="iterations per sleep phase")
    args = parser.parse_args(argv)
    T = args.steps
    print(f"float32; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')} "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '-')}")
    rows = []
    circuit = circuit_coefficients(10.0, 10.0, 150.0)
    for (name, g, F), sharing, coefficients, label, B in (
            (TOY, "all", (1.0, 0.0), "Hebbian", 64),
            (TOY, "all", circuit, "circuit", 64),
            (CIFAR, "all", (1.0, 0.0), "Hebbian", 64),
            (CIFAR, "grid", (1.0, 0.0), "Hebbian", 64),
            (CIFAR, "all", circuit, "circuit", 64)):
        k, n = sleep_case(name, g, F, sharing, coefficients, T, B, args.repeat, args.threads)
        rows.append((f"sleep phase {label}, sharing {sharing}", name, f"T={T} B={B}", k, n))
    for name, g, F in (TOY, CIFAR):
        (w, wn), (f, fn) = wake_case(g, F, 100, args.repeat, args.threads)
        rows.append(("wake step (Sanger)", name, "batch 100", w, wn))
        rows.append(("forward", name, "batch 100", f, fn))
    print(f"{'operation':34} {'layer':28} {'size':12} {'kernel s':>10} {'numpy s':>10} {'speed-up':>9}")
    for op, name, size, k, n in rows:
        print(f"{op:34} {name:28} {size:12} {k:10.4f} {n:10.4f} {n / k:8.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
