"""Geometry of convolutional layers and the plain-numpy references of the conv kernels.

An image is a row of H·W·C values in channel-last order.  A k×k layer with stride s and zero
padding p has OH × OW output positions, OH = (H + 2p − k)//s + 1; position (oy, ox) sees the patch
whose top-left corner is (oy·s − p, ox·s − p), flattened in (ky, kx, c) order (K = k·k·C):

    P[b·L + oy·OW + ox, (ky·k + kx)·C + c] = X_b[oy·s − p + ky, ox·s − p + kx, c]      (im2col)
    U_b = P_b Wᵀ                                                                          (conv)

The compiled versions are in :mod:`plasticity_kit.kernels.conv`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Geometry:
    """A k×k, stride-s, zero-padding-p window over (H, W, C) images: a convolutional layer's (weights
    tied across positions) or a locally connected one's (one filter per position)."""

    height: int
    width: int
    channels: int
    kernel: int
    stride: int = 1
    padding: int = 0

    @property
    def out_height(self) -> int:
        return (self.height + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def out_width(self) -> int:
        return (self.width + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def positions(self) -> int:
        """L = OH·OW output positions per image."""
        return self.out_height * self.out_width

    @property
    def patch_size(self) -> int:
        """K = k·k·C inputs per patch."""
        return self.kernel * self.kernel * self.channels

    @property
    def n_inputs(self) -> int:
        """H·W·C values per image."""
        return self.height * self.width * self.channels

    @property
    def args(self) -> tuple[int, ...]:
        """(H, W, C, k, stride, padding), the kernels' geometry arguments."""
        return self.height, self.width, self.channels, self.kernel, self.stride, self.padding


def im2col_reference(X: np.ndarray, g: Geometry) -> np.ndarray:
    """Patches of every row of ``X`` (n × H·W·C) as an (n·L × K) array, by slicing a padded copy."""
    n = len(X)
    images = np.asarray(X).reshape(n, g.height, g.width, g.channels)
    p = g.padding
    padded = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
    out = np.empty((n, g.out_height, g.out_width, g.kernel, g.kernel, g.channels), dtype=X.dtype)
    for ky in range(g.kernel):
        for kx in range(g.kernel):
            out[:, :, :, ky, kx, :] = padded[:, ky:ky + g.stride * g.out_height:g.stride,
                                             kx:kx + g.stride * g.out_width:g.stride, :]
    return out.reshape(n * g.positions, g.patch_size)


def im2col(X: np.ndarray, g: Geometry) -> np.ndarray:
    """Patches of every row of ``X`` (compiled kernel, OpenMP over samples)."""
    from ..kernels.conv import im2col as kernel

    X = np.ascontiguousarray(X)
    out = np.empty((len(X) * g.positions, g.patch_size), dtype=X.dtype)
    kernel(X, *g.args, out)
    return out


def conv_reference(X: np.ndarray, W: np.ndarray, g: Geometry) -> np.ndarray:
    """U = im2col(X)·Wᵀ, (n·L × F), in numpy."""
    return im2col_reference(X, g) @ W.T


def conv(X: np.ndarray, W: np.ndarray, g: Geometry, patches: np.ndarray | None = None) -> np.ndarray:
    """U = im2col(X)·Wᵀ (n·L × F) by the fused kernel (one BLAS product per sample, OpenMP over
    samples); ``patches``, if given (n·L × K), receives the patches."""
    from ..kernels.conv import conv_forward

    X = np.ascontiguousarray(X)
    W = np.ascontiguousarray(W, dtype=X.dtype)
    out = np.empty((len(X) * g.positions, len(W)), dtype=X.dtype)
    if patches is None:
        patches = np.empty((len(X) * g.positions, g.patch_size), dtype=X.dtype)
    conv_forward(X, W, *g.args, out, patches)
    return out
