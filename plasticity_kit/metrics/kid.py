"""Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD² with the cubic polynomial
kernel k(x, y) = (xᵀy / d + 1)³ on Inception features, and its jackknife standard error.

    KID = 1/(m(m−1)) Σ_{i≠i'} k(xᵢ, xᵢ')  +  1/(n(n−1)) Σ_{j≠j'} k(yⱼ, yⱼ')  −  2/(mn) Σ_{i,j} k(xᵢ, yⱼ)

The estimator is unbiased at any sample size, unlike FID, so it suits the reference study's
small sets.  It is computed once on the full sets (no random subsets, so it is deterministic);
the standard error is the two-sample delete-one jackknife (Arvesen 1969):

    se² = (m−1)/m Σᵢ (KID₋ᵢ − mean KID₋·)² + (n−1)/n Σⱼ (KID₋ⱼ − mean KID₋·)²

where KID₋ᵢ leaves synthetic image i out and KID₋ⱼ reference image j out.
"""
from __future__ import annotations

import numpy as np

from ..options import Option, Schema
from .base import MetricUnavailable
from .features import INCEPTION_OPTIONS, NEURONS_OPTION, REFERENCES, InceptionMetric


def polynomial_kernel(a: np.ndarray, b: np.ndarray, degree: int = 3) -> np.ndarray:
    """k(a, b) = (aᵀb / d + 1)^degree for all rows of ``a`` and ``b``."""
    return (a @ b.T / a.shape[1] + 1.0) ** degree


def kernel_inception_distance(x: np.ndarray, y: np.ndarray, degree: int = 3) -> tuple[float, float]:
    """(unbiased MMD², jackknife standard error) between feature sets ``x`` (m, d) and ``y`` (n, d)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    m, n = len(x), len(y)
    if m < 3 or n < 3:
        raise ValueError(f"KID and its standard error need at least 3 samples per set, got {m} and {n}")
    kxx, kyy, kxy = polynomial_kernel(x, x, degree), polynomial_kernel(y, y, degree), polynomial_kernel(x, y, degree)
    rx = kxx.sum(1) - np.diag(kxx)          # off-diagonal row sums
    ry = kyy.sum(1) - np.diag(kyy)
    sxx, syy = rx.sum(), ry.sum()
    cx, cy = kxy.sum(1), kxy.sum(0)
    sxy = cx.sum()
    value = sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2.0 * sxy / (m * n)
    drop_x = (sxx - 2 * rx) / ((m - 1) * (m - 2)) + syy / (n * (n - 1)) - 2.0 * (sxy - cx) / ((m - 1) * n)
    drop_y = sxx / (m * (m - 1)) + (syy - 2 * ry) / ((n - 1) * (n - 2)) - 2.0 * (sxy - cy) / (m * (n - 1))
    var = (m - 1) / m * ((drop_x - drop_x.mean()) ** 2).sum() + (n - 1) / n * ((drop_y - drop_y.mean()) ** 2).sum()
    return float(value), float(np.sqrt(var))


class KID(InceptionMetric):
    """Kernel Inception Distance, unbiased, with its jackknife standard error (Bińkowski et al. 2018)."""

    name = "kid"
    options = Schema(
        *INCEPTION_OPTIONS,
        Option("reference", "choice", "dataset", "reference images: the run's training data or the whole data set",
               choices=REFERENCES),
        NEURONS_OPTION,
    )

    def score(self, images, ctx):
        if len(images) < 3:
            raise MetricUnavailable(f"KID needs at least 3 synthetic images, got {len(images)}")
        value, se = kernel_inception_distance(self.inception(images), self.reference_inception(ctx))
        return {"kid": value, "kid_se": se, "n_images": len(images)}
