"""Plots of learned weights, in the style of the Nico-Curti/plasticity library's ``view_weights``."""
from __future__ import annotations

import math

import numpy as np


def weight_mosaic(weights, dims, columns: int | None = None) -> np.ndarray:
    """One image holding every neuron's weights reshaped to ``dims``, row-major in a grid of
    ``columns`` (default ⌈√n⌉) tiles separated by one NaN pixel; shape (rows·(H+1)−1, cols·(W+1)−1[, C])."""
    W = np.asarray(weights, dtype=np.float64)
    dims = tuple(int(d) for d in dims)
    if W.ndim == 1:
        W = W[None, :]
    if W.ndim != 2:
        raise ValueError(f"weights: expected a 2-D array (n_neurons, n_inputs), got shape {W.shape}")
    if len(dims) not in (2, 3) or math.prod(dims) != W.shape[1]:
        raise ValueError(f"dims={dims}: expected (height, width) or (height, width, channels) holding the "
                         f"{W.shape[1]} weights of each neuron, got {math.prod(dims)} values")
    n = W.shape[0]
    cols = columns or math.ceil(math.sqrt(n))
    if cols < 1:
        raise ValueError(f"columns: expected an integer >= 1, got {columns}")
    rows = math.ceil(n / cols)
    h, w = dims[:2]
    mosaic = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1) + dims[2:], np.nan)
    for i in range(n):
        r, c = divmod(i, cols)
        mosaic[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = W[i].reshape(dims)
    return mosaic


def view_weights(weights, dims, *, columns: int | None = None, cmap: str = "bwr", per_neuron: bool = False,
                 title: str | None = None, figsize: tuple | None = None):
    """Grid of every neuron's weights as an image, on one colour scale symmetric around zero
    (vmin = −max|W|, vmax = max|W|; blue negative, red positive, as the reference library), with a
    colour bar.  ``weights``: (n_neurons, n_inputs), e.g. ``model.weights``; ``dims``: the image shape
    of one neuron, (28, 28) for MNIST.  ``per_neuron=True`` divides each neuron's weights by its own
    max|W_i| first (when a few large neurons would wash the others out).  Colour images (H, W, 3)
    are shown as 0.5 + W/(2·max|W|).

    Returns the :class:`matplotlib.figure.Figure` (not registered with pyplot, so a notebook shows it
    once, as the cell's value; ``fig.savefig(path)`` writes it).
    """
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure
    import matplotlib

    W = np.asarray(weights, dtype=np.float64)
    if per_neuron and W.ndim == 2:
        peak = np.abs(W).max(axis=1, keepdims=True)
        W = np.divide(W, peak, out=np.zeros_like(W), where=peak > 0)
    mosaic = weight_mosaic(W, dims, columns)
    scale = float(np.abs(W).max()) or 1.0
    height, width = mosaic.shape[:2]
    if figsize is None:
        side = 8.0
        figsize = (side * min(1.0, width / height) + 1.2, side * min(1.0, height / width))
    fig = Figure(figsize=figsize)
    ax = fig.add_subplot()
    ax.set_axis_off()
    if mosaic.ndim == 3:
        ax.imshow(np.nan_to_num(0.5 + 0.5 * mosaic / scale, nan=1.0).clip(0, 1), interpolation="nearest")
    else:
        colormap = (cmap if isinstance(cmap, Colormap) else matplotlib.colormaps[cmap]).with_extremes(bad="white")
        image = ax.imshow(np.ma.masked_invalid(mosaic), cmap=colormap, vmin=-scale, vmax=scale,
                          interpolation="nearest")
        fig.colorbar(image, ax=ax, ticks=[W.min(), 0.0, W.max()], fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
