"""Fréchet Inception Distance (Heusel et al. 2017), on pytorch-fid's Inception features.

    FID = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^{1/2})

with μ, Σ the mean and covariance (``np.cov``, ddof 1) of the Inception features of the
synthetic and the reference images.  tr (Σ₁Σ₂)^{1/2} is the sum of the square roots of the
eigenvalues of Σ₁Σ₂, which are those of the symmetric Σ₁^{1/2} Σ₂ Σ₁^{1/2}; with the features at
hand and fewer samples than dims they are the squared singular values of X̃₁X̃₂ᵀ / √((n₁−1)(n₂−1))
(X̃ centred features), i.e. the eigenvalues of a min(n₁, n₂)-square Gram matrix, which replaces
the dims×dims problem.  Both give the value of
pytorch-fid's ``calculate_frechet_distance`` (scipy ``sqrtm``) without its cost or its
imaginary-part failures on rank-deficient covariances: with 64 images against 400 at dims 2048
the Gram matrix is 64×64 and a score takes milliseconds instead of scipy ``sqrtm``'s ~30 s.
FID is biased upwards for small sets (64 images) and depends on the images' scaling: the
metric reports it beside its real-image floor (same count, same scaling; see ``floor``).
"""
from __future__ import annotations

import os

import numpy as np

from ..options import Option, Schema
from .base import MetricUnavailable
from .features import (INCEPTION_OPTIONS, NEURONS_OPTION, REFERENCES, SCALINGS, InceptionMetric, cache_file,
                       data_identity, reference_data)
from .kid import kernel_inception_distance


def _nonnegative(eigenvalues: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with rounding noise (|λ| ≤ d·ε·λ_max) set to 0."""
    tol = len(eigenvalues) * np.finfo(np.float64).eps * np.abs(eigenvalues).max(initial=0.0)
    return np.where(eigenvalues > tol, eigenvalues, 0.0)


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh(sigma)
    return (V * np.sqrt(_nonnegative(w))) @ V.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂ − 2 Σₖ √λₖ(Σ₁^{1/2} Σ₂ Σ₁^{1/2}) (Fréchet distance of two Gaussians)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64)), np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != mu1.shape * 2:
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    root = _psd_sqrt(s1)
    middle = root @ s2 @ root
    lam = np.linalg.eigvalsh((middle + middle.T) / 2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.sqrt(_nonnegative(lam)).sum())


def frechet_distance_features(f1: np.ndarray, f2: np.ndarray) -> float:
    """Fréchet distance between the Gaussians fitted to feature sets ``f1`` (n₁, d) and ``f2`` (n₂, d)."""
    f1, f2 = np.asarray(f1, dtype=np.float64), np.asarray(f2, dtype=np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"expected two feature matrices with the same number of columns, got {f1.shape} and {f2.shape}")
    (n1, d), n2 = f1.shape, f2.shape[0]
    if min(n1, n2) < 2:
        raise ValueError(f"a covariance needs at least 2 samples per set, got {n1} and {n2}")
    if min(n1, n2) > d:
        return frechet_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))
    mu1, mu2 = f1.mean(0), f2.mean(0)
    c1, c2 = f1 - mu1, f2 - mu2
    a = c1 @ c2.T
    gram = a @ a.T if n1 <= n2 else a.T @ a  # its eigenvalues are the squared singular values of a
    cross = np.sqrt(_nonnegative(np.linalg.eigvalsh(gram))).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    diff = mu1 - mu2
    return float(diff @ diff + (c1 * c1).sum() / (n1 - 1) + (c2 * c2).sum() / (n2 - 1) - 2.0 * cross)


def read_statistics(path: str, dims: int, key: str = "params.reference_stats") -> tuple[np.ndarray, np.ndarray]:
    """``mu``, ``sigma`` from a pytorch-fid statistics ``.npz``; MetricUnavailable naming ``key`` if unusable."""
    if not path:
        raise MetricUnavailable(f"{key}: reference: npz needs the path of a pytorch-fid statistics .npz")
    if not os.path.isfile(path):
        raise MetricUnavailable(f"{key}: file not found: {path}")
    try:
        with np.load(path) as npz:
            mu, sigma = np.asarray(npz["mu"], dtype=np.float64), np.asarray(npz["sigma"], dtype=np.float64)
    except Exception as exc:  # not an npz, or no mu/sigma
        raise MetricUnavailable(f"{key}: {path} is not a pytorch-fid statistics file with 'mu' and 'sigma' "
                                f"({type(exc).__name__}: {exc})") from None
    if mu.shape != (dims,) or sigma.shape != (dims, dims):
        raise MetricUnavailable(f"{key}: {path} holds statistics of shape mu {mu.shape}, sigma {sigma.shape}; "
                                f"expected dims {dims} (params.dims)")
    return mu, sigma


class FID(InceptionMetric):
    """Fréchet Inception Distance of the synthetic images to a reference set (Heusel et al. 2017; pytorch-fid),
    with KID (Bińkowski et al. 2018) on the same features and the real-image floor of both
    (:mod:`~plasticity_kit.metrics.floor`).

    Values: ``fid``; ``floor_mean``, ``floor_sd`` — FID of ``floor_draws`` random subsets of as many
    real reference images, min–max scaled per image like the synthetic ones; ``ratio`` =
    fid / floor_mean; ``kid``, ``kid_se``, ``kid_floor_mean``, ``kid_floor_sd`` (KID is unbiased, so
    its real floor sits at 0 ± sd and is read as a noise level, not divided by); ``n_images``.  With ``reference: npz`` there are no real images to draw: no floor and no KID.
    """

    name = "fid"
    options = Schema(
        *INCEPTION_OPTIONS,
        Option("reference", "choice", "dataset", "reference images: the run's training data, the whole data set, "
               "or precomputed statistics (npz)", choices=REFERENCES + ("npz",)),
        Option("reference_stats", "path", None, "pytorch-fid statistics .npz (mu, sigma) for reference: npz",
               nullable=True),
        NEURONS_OPTION,
        Option("kid", "bool", True, "also compute KID (and its floor) on the same features"),
        Option("floor_draws", "integer", 10, "random real subsets scored for the floor (0: no floor)", low=0),
        Option("floor_seed", "integer", 0, "seed of the floor's subsets", low=0),
        Option("floor_scaling", "choice", "minmax", "scaling of the floor's real images: per-image min-max "
               "(as the synthetic images) or as stored", choices=SCALINGS),
        checks=(lambda p: ("reference_stats", "missing; reference: npz needs the path of a pytorch-fid .npz")
                if p["reference"] == "npz" and not p["reference_stats"] else None,),
    )

    def score(self, images, ctx):
        if len(images) < 2:
            raise MetricUnavailable(f"FID needs at least 2 synthetic images, got {len(images)} "
                                    "(pool the middle neurons of several runs with `plasticity-kit metrics --pool`)")
        features = self.inception(images)
        if self.reference == "npz":
            mu, sigma = read_statistics(self.reference_stats, self.dims)
            value = frechet_distance(features.mean(0), np.cov(features, rowvar=False), mu, sigma)
            return {"fid": value, "n_images": len(images)}
        reference = self.reference_inception(ctx)
        out = {"fid": frechet_distance_features(features, reference)}
        kid = self.kid and len(images) >= 3
        if kid:
            out["kid"], out["kid_se"] = kernel_inception_distance(features, reference)
        if self.floor_draws and len(images) <= len(reference):
            floor = self.floor(ctx, len(images), reference, kid)
            out.update(floor_mean=floor["fid_mean"], floor_sd=floor["fid_sd"], ratio=out["fid"] / floor["fid_mean"])
            if kid:
                out.update(kid_floor_mean=floor["kid_mean"], kid_floor_sd=floor["kid_sd"])
        out["n_images"] = len(images)
        return out

    def floor(self, ctx, count: int, reference: np.ndarray, kid: bool) -> dict:
        """The real floor of ``count`` images (cached on disk beside the reference features)."""
        from .floor import cached_floor, floor_file, real_floor

        p = self.params
        data = reference_data(ctx, p["reference"])
        features_file = cache_file(data_identity(data), p["dims"], p["weights"], p["cache_dir"])
        path = floor_file(features_file, count, p["floor_draws"], p["floor_seed"], p["floor_scaling"])

        def compute():
            candidates = self.reference_inception(ctx, scaling=p["floor_scaling"])
            return real_floor(candidates, reference, count, p["floor_draws"], p["floor_seed"], kid=True)

        return cached_floor(path, compute)
