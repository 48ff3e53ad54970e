"""Convolutional layers: the layer against its bare convolution products, measured in the same run.

    python benchmarks/bench_conv.py            # 7 repeats
    python benchmarks/bench_conv.py --quick    # 3 repeats

For each shape (SoftHebb's first layer on 28×28 grey images, 96 filters 5×5, padding 2, and a
second layer 14×14×96 → 384 filters 3×3, padding 1) and mini-batch, rows:

  (a) bare products: given the patches P (B·L × K) already extracted, the two products a
      convolutional learning step needs, U = P·Wᵀ and ΔW = Yᵀ·P (numpy → BLAS, float32);
  (b) the layer's learning step: patch extraction (``kernels.conv.im2col``) + the SoftHebb rule's
      step (``kernels.conv.softhebb_products``: U = P·Wᵀ, the soft winner-take-all and ΔW = Yᵀ·P
      fused per block of rows; then − diag(Σ y⊙u)·W and the norm-scaled update) — what
      ``Stack.step`` runs for the layer;
  (c) the forward product alone, U = P·Wᵀ on extracted patches;
  (d) the layer's forward pass: the fused kernel ``kernels.conv.conv_forward`` (patches gathered
      and multiplied per sample, OpenMP over samples).

Target (issue 16): a convolutional layer within 1.3× of its bare convolution products: (b)/(a)
and (d)/(c).  Timings are medians over the repeats (rows interleaved) with [min–max]; the load
average is printed beside them (the machine may be shared); each timed call follows a pause and
untimed calls of the same row (benchmarks/steady.py).  Threads: the libraries' defaults
(set OMP_NUM_THREADS / OPENBLAS_NUM_THREADS before running).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from steady import settle

from plasticity_kit.kernels.conv import conv_forward, im2col
from plasticity_kit.model.conv import Geometry
from plasticity_kit.testing import make_rule

SHAPES = [("layer 1: 28×28×1, 96 × 5×5, pad 2", Geometry(28, 28, 1, 5, 1, 2), 96),
          ("layer 2: 14×14×96, 384 × 3×3, pad 1", Geometry(14, 14, 96, 3, 1, 1), 384)]


def timed(fn, repeats):
    out = []
    for _ in range(repeats):
        settle(fn)
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    repeats = 3 if args.quick else 7
    rng = np.random.default_rng(0)
    print(f"load average {os.getloadavg()}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'default')}")
    print(f"{'shape':38s} {'batch':>5s} {'(a) products':>14s} {'(b) step':>14s} {'b/a':>6s} "
          f"{'(c) U=PWᵀ':>12s} {'(d) fused':>12s} {'d/c':>6s}")
    for label, g, F in SHAPES:
        for B in (10, 100):
            if g.channels > 1 and B > 10 and args.quick:
                continue
            X = rng.random((B, g.height * g.width * g.channels), dtype=np.float32)
            rule = make_rule("softhebb", {}, n_inputs=g.patch_size, n_neurons=F, dtype="float32")
            state = rule.init_state(np.random.default_rng(1))
            W = state["weights"]
            P = np.empty((B * g.positions, g.patch_size), np.float32)
            im2col(X, *g.args, P)
            Y = rng.random((B * g.positions, F), dtype=np.float32)
            U = np.empty((B * g.positions, F), np.float32)

            def products():
                np.matmul(P, W.T, out=U)
                return Y.T @ P

            def step():
                im2col(X, *g.args, P)
                rule.step(state, P)

            def forward():
                np.matmul(P, W.T, out=U)

            def fused():
                conv_forward(X, W, *g.args, U, P)

            rows = {"a": [], "b": [], "c": [], "d": []}
            for _ in range(repeats):  # interleaved, so that a change of load hits every row alike
                for key, fn in (("a", products), ("b", step), ("c", forward), ("d", fused)):
                    rows[key] += timed(fn, 1)
            med = {k: statistics.median(v) for k, v in rows.items()}
            span = lambda k: f"{med[k] * 1e3:6.2f} ms"  # noqa: E731
            print(f"{label:38s} {B:5d} {span('a'):>14s} {span('b'):>14s} {med['b'] / med['a']:6.2f} "
                  f"{span('c'):>12s} {span('d'):>12s} {med['d'] / med['c']:6.2f}")
            rng_a = f"[{min(rows['a']) * 1e3:.2f}–{max(rows['a']) * 1e3:.2f}]"
            rng_b = f"[{min(rows['b']) * 1e3:.2f}–{max(rows['b']) * 1e3:.2f}]"
            print(f"{'':38s} {'':5s} {rng_a:>14s} {rng_b:>14s}")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
