"""What the MNIST examples share: reading the test set and describing what the neurons learned.

MNIST is read by plasticity-kit's ``mnist`` data set from ``--mnist DIR`` or the directory in
``$PLASTICITY_KIT_MNIST`` (else its download cache).  Only the 10,000 test images are needed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from plasticity_kit.datasets.mnist import MNIST
from plasticity_kit.metrics.network import network_properties


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--mnist", default=None, help="directory of the MNIST IDX files (default: $PLASTICITY_KIT_MNIST)")
    p.add_argument("--out", default="examples_out", help="folder the weight grids are written to")
    p.add_argument("--samples", type=int, default=10_000, help="use the first N test images (quick runs)")
    p.add_argument("--epochs", type=int, default=None, help="override the number of epochs (quick runs)")
    return p


def load_mnist_test(args) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test images (n × 784, in [0, 1]) and labels."""
    data = MNIST(path=args.mnist, split="test", range=[0, args.samples]).load(np.random.default_rng(0))
    return data.X, data.labels


def output_dir(args) -> Path:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def describe(model, X: np.ndarray, y: np.ndarray) -> dict:
    """How many different patterns the neurons select.

    * ``top_images``: distinct images among each neuron's most exciting image (argmax of its
      response over X), and ``top_classes``: the digits those images show;
    * ``overlap``: the overlapping index β = S/ᾱ of Curti et al. 2023 (1: every neuron selects the
      same patterns; N: disjoint selections), from plasticity-kit's ``network`` metric;
    * ``twins``: neurons whose weights correlate above 0.9 with another neuron's.
    """
    H = np.asarray(model.transform(X), dtype=np.float64)
    top = H.argmax(axis=0)
    W = np.asarray(model.weights_, dtype=np.float64)
    W = W - W.mean(axis=1, keepdims=True)
    W /= np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-12)
    C = W @ W.T
    np.fill_diagonal(C, -1.0)
    return {
        "top_images": len(np.unique(top)),
        "top_classes": len(np.unique(y[top])),
        "overlap": network_properties(H)["overlap_index"],
        "twins": int((C.max(axis=1) > 0.9).sum()),
    }


def report(name: str, stats: dict, seconds: float, picture: Path) -> None:
    print(f"{name:<28} {stats['top_images']:>10} {stats['top_classes']:>11} {stats['overlap']:>8.2f} "
          f"{stats['twins']:>6} {seconds:>7.1f}s  {picture}")


def header() -> None:
    print(f"{'run':<28} {'top images':>10} {'top classes':>11} {'overlap':>8} {'twins':>6} {'time':>8}  weights")
