"""PNG grid of the synthetic images: each neuron's weights mapped to grey levels (min–max per
neuron, as in the reference study, Rondini 2023 §1).  A replicated run shows its first replicas,
one row per replica."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..options import Option, Schema
from .base import Exporter


def save_image_grid(images: np.ndarray, path, *, columns: int | None = None, cmap: str = "gray",
                    title: str | None = None, scale: float = 1.2) -> Path:
    """Save ``images`` (n, H, W) or (n, H, W, C) with values in [0, 1] as one PNG grid."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(images)
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(scale * cols, scale * rows + (0.4 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(str(i), fontsize=7, pad=1)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class ImageGrid(Exporter):
    """PNG grid of synthetic images (each neuron's weights as a grey image) → ``<run>/synthetic.png``."""

    name = "image_grid"
    options = Schema(
        Option("filename", "string", "synthetic.png", "file name inside the run folder"),
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
        n = result.spec.model.n_neurons
        title = f"{result.spec.name}: {result.spec.rule_class.name}, {n} neurons"
        columns = self.columns
        R = replica_count(result.rule)
        if R > 1:
            shown = min(R, self.replicas)
            images = images[:shown * n]
            columns = columns or n
            title += f", replicas 0–{shown - 1} of {R} (one per row)"
        images = images.reshape((images.shape[0],) + tuple(shape))
        return [save_image_grid(images, Path(out_dir) / self.filename, columns=columns, cmap=self.cmap, title=title)]
