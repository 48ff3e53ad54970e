"""PNG grid of the synthetic images: each neuron's weights mapped to grey levels (min–max per
neuron, as in the reference study, Rondini 2023 §1).  A replicated run shows its first replicas,
one row per replica."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np

from ..options import Option, Schema
from .base import Exporter


def mosaic(images: np.ndarray, columns: int, gap: int = 2) -> np.ndarray:
    """``images`` (n, H, W[, C]) tiled row by row into one array, ``gap`` pixels of NaN between."""
    n, h, w = images.shape[:3]
    rows = math.ceil(n / columns)
    out = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap) + images.shape[3:], np.nan)
    for i in range(n):
        r, c = divmod(i, columns)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = images[i]
    return out


def save_image_grid(images: np.ndarray, path, *, columns: int | None = None, cmap: str = "gray",
                    title: str | None = None, scale: float = 1.2) -> Path:
    """Save ``images`` (n, H, W) or (n, H, W, C) with values in [0, 1] as one PNG grid, each image
    numbered (one mosaic drawn once: fast for the thousand images of a replicated run)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    images = np.asarray(images, dtype=np.float64)
    n, h, w = images.shape[:3]
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    width = scale * cols
    title = textwrap.fill(title, max(20, int(width * 11))) if title else None
    top = 0.2 + 0.17 * title.count("\n") + 0.2 if title else 0.0  # inches for the title lines
    fig = plt.figure(figsize=(width, scale * rows * h / w + top))
    ax = fig.add_axes((0, 0, 1, 1 - top / fig.get_figheight()))
    ax.axis("off")
    colormap = matplotlib.colormaps[cmap].copy()
    colormap.set_bad("white")
    ax.imshow(mosaic(images, cols), cmap=colormap, vmin=0.0, vmax=1.0, interpolation="nearest")
    for i in range(n):
        r, c = divmod(i, cols)
        ax.text(c * (w + 2) + 1, r * (h + 2) + 1, str(i), fontsize=6, color="yellow", va="top", ha="left")
    if title:
        fig.suptitle(title, fontsize=9)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class ImageGrid(Exporter):
    """PNG grid of synthetic images (each neuron's weights as a grey image) → ``<run>/synthetic.png``."""

    name = "image_grid"
    options = Schema(
        Option("filename", "filename", "synthetic.png", "file name inside the run folder"),
        Option("columns", "integer", None, "images per row (default: about √n)", low=1, nullable=True),
        Option("cmap", "string", "gray", "matplotlib colormap"),
        Option("replicas", "integer", 8, "replicated runs: the first this many replicas, one row each", low=1),
    )

    def export(self, result, out_dir):
        from ..rules.replicas import replica_count

        images = result.rule.synthesize(result.state)
        shape = result.data.image_shape
        if images is None or not shape:
            return []
        R = replica_count(result.rule)
        n = len(images) // R
        what = getattr(result.rule, "synthesized", None) or f"{n} neurons"  # a stack: its first learned layer
        title = f"{result.spec.name}: {result.spec.rule_class.name}, {what}"
        columns = self.columns
        if R > 1:
            shown = min(R, self.replicas)
            images = images[:shown * n]
            columns = columns or n
            title += f", replicas 0–{shown - 1} of {R} (one per row)"
        images = images.reshape((images.shape[0],) + tuple(shape))
        return [save_image_grid(images, Path(out_dir) / self.filename, columns=columns, cmap=self.cmap, title=title)]
