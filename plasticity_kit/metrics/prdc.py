"""Precision, recall, density and coverage (Naeem et al. 2020) of synthetic against real samples.

With B(x, r) the ball around x of radius r and NN_k(x) the distance from x to its k-th nearest
neighbour within its own set (real Xᵢ, i = 1..N; fake Yⱼ, j = 1..M):

    precision = 1/M Σⱼ 1[∃i: Yⱼ ∈ B(Xᵢ, NN_k(Xᵢ))]
    recall    = 1/N Σᵢ 1[∃j: Xᵢ ∈ B(Yⱼ, NN_k(Yⱼ))]
    density   = 1/(kM) Σⱼ Σᵢ 1[Yⱼ ∈ B(Xᵢ, NN_k(Xᵢ))]
    coverage  = 1/N Σᵢ 1[∃j: Yⱼ ∈ B(Xᵢ, NN_k(Xᵢ))]

(open balls, Euclidean distance, as the authors' ``prdc`` package).  Features are Inception
activations or the raw pixels.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from ..options import Option, Schema
from .base import MetricUnavailable
from .features import INCEPTION_OPTIONS, NEURONS_OPTION, REFERENCES, InceptionMetric, reference_data


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` and of ``b``, summed difference by difference so
    that equal rows are exactly 0 apart and ball memberships do not flip on rounding."""
    return cdist(a, b)


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of ``x`` to its k-th nearest other row."""
    return np.partition(pairwise_distances(x, x), k, axis=1)[:, k]


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict:
    """Precision, recall, density, coverage of ``fake`` (M, d) against ``real`` (N, d) with k neighbours."""
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    if k >= min(len(real), len(fake)):
        raise ValueError(f"k = {k} needs more than k samples in each set, got {len(real)} real and {len(fake)} fake")
    real_r, fake_r = knn_radii(real, k), knn_radii(fake, k)
    d = pairwise_distances(real, fake)
    inside_real = d < real_r[:, None]
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((d < fake_r[None, :]).any(axis=1).mean()),
        "density": float(inside_real.sum(axis=0).mean() / k),
        "coverage": float((d.min(axis=1) < real_r).mean()),
    }


class PRDC(InceptionMetric):
    """Precision, recall, density and coverage of the synthetic images (Naeem et al. 2020)."""

    name = "prdc"
    options = Schema(
        Option("features", "choice", "inception", "inception activations or raw pixels", choices=("inception", "pixels")),
        Option("k", "integer", 5, "nearest neighbour that sets each sample's radius", low=1),
        Option("reference", "choice", "dataset", "real images: the run's training data or the whole data set",
               choices=REFERENCES),
        *INCEPTION_OPTIONS,
        NEURONS_OPTION,
    )

    def score(self, images, ctx):
        if self.k >= len(images):
            raise MetricUnavailable(f"params.k: k = {self.k} needs more than k synthetic images, got {len(images)}")
        if self.features == "pixels":
            real = reference_data(ctx, self.reference).X
            fake = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
        else:
            real, fake = self.reference_inception(ctx), self.inception(images)
        return prdc(real, fake, self.k)
