"""α-precision, β-recall and authenticity (Alaa, van Breugel, Saveliev & van der Schaar 2022,
"How faithful is your synthetic data? Sample-level metrics for evaluating and auditing generative
models", ICML), on Inception features.

With real features Xᵢ (i = 1..N), synthetic Yⱼ (j = 1..M), c_r the mean of the real features
and c_s that of the synthetic ones, α ∈ [0, 1] on a grid of ``steps`` points:

* α-support of the real data: the ball B(c_r, r_α), r_α the α-quantile of ‖Xᵢ − c_r‖;
  P_α = 1/M Σⱼ 1[‖Yⱼ − c_r‖ ≤ r_α]  (a faithful generator has P_α = α).
* β-recall: real Xᵢ is covered when its nearest synthetic Y_(i) is closer than Xᵢ's nearest other
  real sample and Y_(i) lies in the β-support of the synthetic data,
  R_β = 1/N Σᵢ 1[‖Xᵢ − Y_(i)‖ ≤ NN(Xᵢ)] · 1[‖Y_(i) − c_s‖ ≤ q_β], q_β the β-quantile of ‖Y_(i) − c_s‖.
* The scalar summaries ΔP = 1 − 2 ∫|P_α − α| dα and ΔR = 1 − 2 ∫|R_β − β| dβ (1 is ideal).
* Authenticity: synthetic Yⱼ with nearest real X_(j) is *authentic* unless it is closer to X_(j)
  than X_(j)'s nearest other real sample is, A = 1/M Σⱼ 1[‖Yⱼ − X_(j)‖ > NN(X_(j))];
  a copy of a training image (distance 0) is never authentic.

The paper evaluates in the embedding of a one-class network trained on the real data; here the
embedding is the Inception feature space itself (no network is trained: the reference sets hold
5–400 images), as the authors' code allows, which makes the supports balls around the feature
means.  PRDC (Naeem et al. 2020, :mod:`~plasticity_kit.metrics.prdc`) measures fidelity and
diversity with k-NN balls but has no notion of copying; authenticity adds that.
"""
from __future__ import annotations

import numpy as np

from ..options import Option, Schema
from .base import MetricUnavailable
from .features import INCEPTION_OPTIONS, NEURONS_OPTION, REFERENCES, InceptionMetric
from .prdc import pairwise_distances


def _delta(alphas: np.ndarray, curve: np.ndarray) -> float:
    """1 − 2 ∫₀¹ |curve(α) − α| dα (trapezoidal rule on the grid)."""
    gap = np.abs(curve - alphas)
    return float(1.0 - 2.0 * np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(alphas)))


def alpha_beta_authenticity(real: np.ndarray, fake: np.ndarray, steps: int = 30) -> dict:
    """α-precision and β-recall curves, their summaries ΔP, ΔR, and authenticity of ``fake`` (M, d)
    against ``real`` (N, d)."""
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    if len(real) < 2 or len(fake) < 1:
        raise ValueError(f"need at least 2 real and 1 synthetic samples, got {len(real)} and {len(fake)}")
    alphas = np.linspace(0.0, 1.0, steps)
    c_r, c_s = real.mean(0), fake.mean(0)
    radii = np.quantile(np.linalg.norm(real - c_r, axis=1), alphas)
    fake_to_center = np.linalg.norm(fake - c_r, axis=1)
    precision = (fake_to_center[None, :] <= radii[:, None]).mean(axis=1)

    rr = pairwise_distances(real, real)
    np.fill_diagonal(rr, np.inf)
    real_nn = rr.min(axis=1)
    rf = pairwise_distances(real, fake)
    closest_fake = rf.argmin(axis=1)
    real_to_fake = rf[np.arange(len(real)), closest_fake]
    closest_to_cs = np.linalg.norm(fake[closest_fake] - c_s, axis=1)
    q = np.quantile(closest_to_cs, alphas)
    recall = ((real_to_fake <= real_nn)[None, :] & (closest_to_cs[None, :] <= q[:, None])).mean(axis=1)

    closest_real = rf.argmin(axis=0)
    authentic = rf[closest_real, np.arange(len(fake))] > real_nn[closest_real]
    return {"alphas": alphas, "alpha_precision_curve": precision, "beta_recall_curve": recall,
            "alpha_precision": _delta(alphas, precision), "beta_recall": _delta(alphas, recall),
            "authenticity": float(authentic.mean())}


class Authenticity(InceptionMetric):
    """α-precision, β-recall and authenticity on Inception features (Alaa et al. 2022).

    Values: ``alpha_precision`` (ΔP), ``beta_recall`` (ΔR), ``authenticity`` (fraction of synthetic
    images not closer to their nearest real image than it is to its own nearest real neighbour),
    the curves ``alpha_precision_curve``, ``beta_recall_curve`` and ``n_images``.
    """

    name = "authenticity"
    options = Schema(
        Option("reference", "choice", "training", "real images: the run's training data or the whole data set",
               choices=REFERENCES),
        Option("steps", "integer", 30, "points of the α/β grid", low=2),
        *INCEPTION_OPTIONS,
        NEURONS_OPTION,
    )

    def score(self, images, ctx):
        real = self.reference_inception(ctx)
        if len(real) < 2:
            raise MetricUnavailable(f"authenticity needs at least 2 real images, got {len(real)}")
        out = alpha_beta_authenticity(real, self.inception(images), self.steps)
        out.pop("alphas")
        out["n_images"] = len(images)
        return out
