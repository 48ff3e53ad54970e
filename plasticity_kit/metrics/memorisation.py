"""Memorisation ratio: are the synthetic images closer to a training image than real images are to each other?

A generator that copies its training images scores well on FID but has learnt nothing new
(Meehan, Chaudhuri & Dasgupta 2020, "A non-parametric test to detect data-copying in generative
models"; Alaa et al. 2022, authenticity).  The yardstick is the training set itself: how similar
a real image is to its nearest *other* real image.  With s = SSIM (Wang et al. 2004, as in
:mod:`~plasticity_kit.metrics.nearest`) or the pixel correlation r, x_j the synthetic images and
tᵢ the training images, all min–max scaled per image (the synthetic images' scaling):

    s_syn(j)  = maxᵢ s(x_j, tᵢ)                 nearest training image of each synthetic image
    s_real(i) = max_{i'≠i} s(tᵢ, tᵢ')            nearest other training image of each training image
    ratio     = mean_j s_syn(j) / mean_i s_real(i)

ratio > 1: the synthetic images are closer to training images than the training images are to
one another — copies rather than new faces.  ``above_real`` is the fraction of synthetic images
with s_syn above the median s_real.

SSIM costs a windowed filter per pair of images; on large training sets (all 400 faces) the max
over i is taken over the ``candidates`` training images most correlated with the image (default
16; 0 or at least the set's size: all of them, exact).  The SSIM-nearest image is almost always
among the most correlated ones; the correlation max is always exact.
"""
from __future__ import annotations

import hashlib

import numpy as np

from ..options import Option, Schema
from .base import MetricUnavailable
from .features import NEURONS_OPTION, REFERENCES, ImageMetric, minmax_images, reference_data
from .nearest import correlation_matrix, ssim_matrix
from .synthetic import as_images

SIMILARITIES = ("ssim", "correlation")
_REAL: dict = {}


def similarity(kind: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) SSIM or pixel correlation of the images ``a`` (n, H, W[, C]) with ``b`` (m, H, W[, C])."""
    if kind == "ssim":
        return ssim_matrix(a, b)
    if kind == "correlation":
        return correlation_matrix(a.reshape(len(a), -1), b.reshape(len(b), -1))
    raise ValueError(f"similarity must be one of {SIMILARITIES}, got {kind!r}")


def nearest(kind: str, images: np.ndarray, training: np.ndarray, candidates: int = 0,
            exclude_self: bool = False) -> np.ndarray:
    """For each image, its largest similarity to an image of ``training`` (another one, with
    ``exclude_self``: ``images`` is ``training``), SSIM searched among the ``candidates`` most
    correlated training images (0: all)."""
    r = similarity("correlation", images, training)
    if exclude_self:
        np.fill_diagonal(r, -np.inf)
    if kind == "correlation":
        return r.max(axis=1)
    limit = len(training) - (1 if exclude_self else 0)
    if not candidates or candidates >= limit:
        sim = similarity(kind, images, training)
        if exclude_self:
            np.fill_diagonal(sim, -np.inf)
        return sim.max(axis=1)
    top = np.argpartition(-r, candidates - 1, axis=1)[:, :candidates]
    return np.array([similarity(kind, images[j:j + 1], training[top[j]]).max() for j in range(len(images))])


def nearest_other(kind: str, images: np.ndarray, candidates: int = 0) -> np.ndarray:
    """For each image, its largest similarity to another image of the same set."""
    return nearest(kind, images, images, candidates, exclude_self=True)


def memorisation(synthetic: np.ndarray, training: np.ndarray, kind: str = "ssim", real_nearest=None,
                 candidates: int = 0) -> dict:
    """``ratio`` = mean nearest-training similarity of ``synthetic`` / mean nearest-other similarity
    within ``training`` (both image stacks in [0, 1], compared as given), with its parts."""
    if len(training) < 2:
        raise ValueError(f"a nearest other training image needs at least 2 training images, got {len(training)}")
    syn = nearest(kind, synthetic, training, candidates)
    real = nearest_other(kind, training, candidates) if real_nearest is None else real_nearest
    return {"synthetic": syn, "real": real, "synthetic_mean": float(syn.mean()), "real_mean": float(real.mean()),
            "ratio": float(syn.mean() / real.mean()), "above_real": float((syn > np.median(real)).mean())}


class Memorisation(ImageMetric):
    """Memorisation ratio: synthetic-to-nearest-training vs real-to-nearest-other similarity (SSIM and
    correlation; Meehan et al. 2020, Alaa et al. 2022), all images min–max scaled.

    Values per similarity s (``ssim``, ``correlation``): ``<s>_ratio``, ``<s>_synthetic`` (mean
    nearest-training similarity), ``<s>_real`` (mean nearest-other similarity of the training
    images), ``<s>_above_real``; and ``n_images``.
    """

    name = "memorisation"
    options = Schema(
        Option("reference", "choice", "training", "the images memorised from: the run's training data or the whole "
               "data set", choices=REFERENCES),
        Option("candidates", "integer", 16, "SSIM nearest searched among this many most correlated training "
               "images (0: all, exact)", low=0),
        NEURONS_OPTION,
    )

    def score(self, images, ctx):
        data = reference_data(ctx, self.reference)
        if len(data.X) < 2:
            raise MetricUnavailable(f"memorisation needs at least 2 training images, got {len(data.X)}")
        training = minmax_images(as_images(data.X, data.image_shape))
        images = np.asarray(images, dtype=np.float64)
        key = (data.checksum, hashlib.sha256(np.ascontiguousarray(data.indices).tobytes()).hexdigest())
        out = {"n_images": len(images)}
        for kind in SIMILARITIES:
            memo = (key, kind, self.candidates)
            if memo not in _REAL:  # the training set's own nearest-other similarities, once per set
                if len(_REAL) > 64:
                    _REAL.clear()
                _REAL[memo] = nearest_other(kind, training, self.candidates)
            values = memorisation(images, training, kind, _REAL[memo], self.candidates)
            out.update({f"{kind}_ratio": values["ratio"], f"{kind}_synthetic": values["synthetic_mean"],
                        f"{kind}_real": values["real_mean"], f"{kind}_above_real": values["above_real"]})
        return out
