"""For each synthetic image, the most similar training image by PSNR, SSIM and correlation.

A synthetic image that equals one training face (PSNR → ∞, SSIM → 1, r → 1) was memorised;
one close to many but equal to none generalises.  Images lie in [0, 1] (data range L = 1):

    PSNR(x, y) = 10 log₁₀(L² / mean((x − y)²))
    r(x, y)    = Pearson correlation of the pixels
    SSIM(x, y) = mean over the window positions of
                 (2μₓμᵧ + C₁)(2σₓᵧ + C₂) / ((μₓ² + μᵧ² + C₁)(σₓ² + σᵧ² + C₂)),
                 C₁ = (0.01 L)², C₂ = (0.03 L)²

with μ, σ², σₓᵧ the local means, variances and covariance under an 11×11 Gaussian window of
σ = 1.5 (normalised), over the positions where the window fits ("valid"), as in Wang, Bovik,
Sheikh & Simoncelli 2004.  Images smaller than 11 pixels use the largest odd window that fits.
Colour images average the SSIM of their channels.
"""
from __future__ import annotations

import numpy as np

from ..options import Option, Schema
from .features import NEURONS_OPTION, REFERENCES, ImageMetric, reference_data
from .synthetic import as_images

K1, K2, WINDOW, SIGMA = 0.01, 0.03, 11, 1.5


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian g (the 2-D window is g gᵀ)."""
    t = np.arange(size) - (size - 1) / 2
    g = np.exp(-t * t / (2 * sigma * sigma))
    return g / g.sum()


def _valid_filter_matrix(n: int, g: np.ndarray) -> np.ndarray:
    """F (n − len(g) + 1, n) with (F v)[r] = Σₜ g[t] v[r + t]: 'valid' correlation with g."""
    w = len(g)
    F = np.zeros((n - w + 1, n))
    for r in range(n - w + 1):
        F[r, r:r + w] = g
    return F


def _channels_first(images: np.ndarray) -> np.ndarray:
    """(n, H, W) or (n, H, W, C) → (n, C, H, W) float64."""
    x = np.asarray(images, dtype=np.float64)
    return x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)


def ssim_matrix(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, chunk: int = 8) -> np.ndarray:
    """SSIM of every image of ``a`` (n, H, W[, C]) with every image of ``b`` (m, H, W[, C]) → (n, m)."""
    A, B = _channels_first(a), _channels_first(b)
    if A.shape[1:] != B.shape[1:]:
        raise ValueError(f"image shapes differ: {A.shape[1:]} and {B.shape[1:]}")
    H, W = A.shape[2:]
    size = min(WINDOW, H, W)
    size -= 1 - size % 2
    g = gaussian_window(size)
    Fh, Fw = _valid_filter_matrix(H, g), _valid_filter_matrix(W, g)

    def filt(x):
        return Fh @ x @ Fw.T

    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_a, mu_b = filt(A), filt(B)
    var_a, var_b = filt(A * A) - mu_a ** 2, filt(B * B) - mu_b ** 2
    out = np.empty((len(A), len(B)))
    for start in range(0, len(A), chunk):
        sl = slice(start, start + chunk)
        ma, mb = mu_a[sl, None], mu_b[None]
        cov = filt(A[sl, None] * B[None]) - ma * mb
        num = (2 * ma * mb + c1) * (2 * cov + c2)
        den = (ma ** 2 + mb ** 2 + c1) * (var_a[sl, None] + var_b[None] + c2)
        out[sl] = (num / den).mean(axis=(2, 3, 4))
    return out


def psnr_matrix(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """PSNR in dB of every row of ``a`` (n, D) against every row of ``b`` (m, D); ∞ for equal images."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mse = np.clip(((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T) / a.shape[1], 0.0, None)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / mse)


def correlation_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every row of ``a`` with every row of ``b`` (0 for a constant row)."""
    def standard(x):
        x = np.asarray(x, dtype=np.float64)
        x = x - x.mean(1, keepdims=True)
        norm = np.sqrt((x * x).sum(1, keepdims=True))
        return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    return standard(a) @ standard(b).T


def nearest_training(synthetic: np.ndarray, training: np.ndarray) -> dict:
    """For each synthetic image (n, H, W[, C]) its best PSNR, SSIM and correlation over ``training``
    and the index of the training image reaching it."""
    n = len(synthetic)
    flat_s, flat_t = synthetic.reshape(n, -1), training.reshape(len(training), -1)
    out = {}
    for key, sim in (("psnr", psnr_matrix(flat_s, flat_t)), ("ssim", ssim_matrix(synthetic, training)),
                     ("correlation", correlation_matrix(flat_s, flat_t))):
        best = sim.argmax(axis=1)
        out[key] = sim[np.arange(n), best]
        out[f"{key}_index"] = best.astype(np.int64)
        out[f"{key}_mean"] = float(out[key].mean())
    return out


class Nearest(ImageMetric):
    """Each synthetic image's most similar training image by PSNR, SSIM (Wang et al. 2004) and correlation.

    Values: ``psnr``, ``ssim``, ``correlation`` (best per synthetic image), ``*_index`` (the data-set
    index of the training image reaching it) and ``*_mean`` (averages over the synthetic images).
    """

    name = "nearest"
    options = Schema(
        Option("reference", "choice", "training", "compare with the run's training data or the whole data set",
               choices=REFERENCES),
        NEURONS_OPTION,
    )

    def score(self, images, ctx):
        data = reference_data(ctx, self.reference)
        out = nearest_training(np.asarray(images, dtype=np.float64), as_images(data.X, data.image_shape))
        for key in ("psnr", "ssim", "correlation"):  # rows of the reference set → indices in the data set
            out[f"{key}_index"] = np.asarray(data.indices, dtype=np.int64)[out[f"{key}_index"]]
        out["n_images"] = len(images)
        return out
