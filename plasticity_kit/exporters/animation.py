"""Receptive fields evolving over training, as an animated colormap (GIF, or MP4 with ffmpeg).

Each frame tiles every neuron's recorded weights, reshaped to the data's images.  The colours
suit the sign of the trained weights (the last recorded frame): signed weights are scaled per
neuron by their largest magnitude (w / max|w| in [−1, 1]) on a diverging colormap with symmetric
limits (red excitatory, blue inhibitory), as the receptive-field movies of the plasticity
library's MNIST examples (Curti et al. 2023); one-signed weights (e.g. BCM on faces, all positive)
are min–max scaled per neuron to [0, 1] on a grey scale, as the synthetic images of
``synthetic.png``.  Colour images are shown in colour, min–max scaled per neuron.  Frames are
read from the run file one at a time (:meth:`plasticity_kit.replay.Trajectory.frames`).
"""
from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np

from ..errors import SpecError
from ..options import Option, Schema
from .base import Exporter

FORMATS = (".gif", ".mp4")


AUTO = "auto"
SIGNED_CMAP, ONE_SIGNED_CMAP = "bwr", "gray"


def colour_scale(frame: np.ndarray, cmap: str = AUTO) -> tuple[str, str, float, float]:
    """(colormap, tile scaling, vmin, vmax) for weights like ``frame``: ``peak`` scaling
    (w / max|w|) with symmetric limits [−1, 1] when the weights take both signs, else ``minmax``
    scaling to [0, 1]; ``cmap`` ``auto`` picks a diverging (bwr) or grey colormap accordingly."""
    frame = np.asarray(frame)
    signed = bool(frame.size) and frame.min() < 0 < frame.max()
    if cmap == AUTO:
        cmap = SIGNED_CMAP if signed else ONE_SIGNED_CMAP
    return (cmap, "peak", -1.0, 1.0) if signed else (cmap, "minmax", 0.0, 1.0)


def mosaic(weights: np.ndarray, image_shape: tuple, columns: int | None = None, scaling: str = "peak") -> np.ndarray:
    """Tile ``weights`` (n_neurons, prod(image_shape)) into one image with a 1-pixel gap (NaN).

    Grey images: each tile is w / max|w| (in [−1, 1]) with ``scaling="peak"``, or min–max scaled
    to [0, 1] with ``scaling="minmax"``; colour (H, W, 3) images: min–max per tile.
    """
    w = np.asarray(weights, dtype=np.float64)
    n = w.shape[0]
    size = int(np.prod(image_shape))
    if w.ndim != 2 or w.shape[1] != size:
        raise ValueError(f"expected weights of shape (neurons, {size}) to tile as {tuple(image_shape)} images, "
                         f"got {w.shape}")
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    h, wd = image_shape[:2]
    colour = len(image_shape) == 3
    gap = 1.0 if colour else np.nan  # white between colour tiles; NaN shows as the colormap's "bad"
    out = np.full((rows * (h + 1) - 1, cols * (wd + 1) - 1) + ((image_shape[2],) if colour else ()), gap)
    for i in range(n):
        tile = w[i].reshape(image_shape)
        if colour or scaling == "minmax":
            lo, span = tile.min(), np.ptp(tile)
            tile = (tile - lo) / span if span > 0 else np.full_like(tile, 0.5)
        else:
            peak = np.abs(tile).max()
            tile = tile / peak if peak > 0 else tile
        r, c = divmod(i, cols)
        out[r * (h + 1):r * (h + 1) + h, c * (wd + 1):c * (wd + 1) + wd] = tile
    return out


def writer_for(path: Path, fps: float, key: str = "--animate"):
    """A matplotlib movie writer for ``path``: Pillow for .gif, ffmpeg for .mp4 (SpecError without it)."""
    from matplotlib import animation

    suffix = path.suffix.lower()
    if suffix == ".gif":
        return animation.PillowWriter(fps=fps)
    if suffix == ".mp4":
        if shutil.which("ffmpeg") is None or not animation.FFMpegWriter.isAvailable():
            raise SpecError(key, f"writing {path.name} needs ffmpeg, which is not on PATH; "
                                 f"install ffmpeg or write a .gif instead")
        return animation.FFMpegWriter(fps=fps, codec="libx264", extra_args=["-pix_fmt", "yuv420p"])
    raise SpecError(key, f"expected a file name ending in {' or '.join(FORMATS)}, got {path.name!r}")


MIN_TILE = 40  # pixels: smaller images (a layer's 5×5 filters) are drawn larger than ``scale`` says
LAYER_FIELD = re.compile(r"layers/([0-9]+)/weights")


def default_field(trajectory, layer: int | None = None) -> str:
    """``weights``, or for a layered run ``layers/<i>/weights`` of learned layer ``layer`` (default: the first)."""
    layers = trajectory.spec["model"].get("layers")
    if layer is None and layers:
        layer = next(i for i, entry in enumerate(layers) if "rule" in entry)
    return "weights" if layer is None else f"layers/{layer}/weights"


def animate(trajectory, path, *, field: str = "weights", every: int = 1, fps: float = 10.0,
            cmap: str = AUTO, columns: int | None = None, scale: float = 1.5, key: str = "--animate",
            layer: int | None = None) -> tuple[Path, int]:
    """Write the animation of ``field`` over the recorded frames (every ``every``-th, the last
    always included) to ``path``; returns (path, number of frames written).  ``cmap``: a matplotlib
    colormap, or ``auto`` (see :func:`colour_scale`).  A learned layer of a layered run (``layer``,
    or ``field`` ``layers/<i>/weights``) is drawn as its receptive fields' image patches
    (:meth:`~plasticity_kit.replay.Trajectory.layer_patches`: k×k×C tiles for a first
    convolutional layer, a deeper layer by its strongest inputs)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    writer = writer_for(path, fps, key)
    if cmap != AUTO and cmap not in matplotlib.colormaps:
        raise SpecError("--cmap", f"unknown matplotlib colormap {cmap!r} (auto, or e.g. bwr, RdBu_r, viridis, gray)")
    layer_key = "--layer" if layer is not None else "--field"
    match = LAYER_FIELD.fullmatch(field)
    if layer is None and match and trajectory.spec["model"].get("layers"):
        layer = int(match[1])
    if layer is not None:
        field = f"layers/{trajectory.learned_layer(layer, layer_key)}/weights"
    shape = trajectory.image_shape
    if len(trajectory) == 0:
        raise SpecError("--animate", f"{trajectory.path} has no recorded frame yet")
    if layer is not None:
        def tiles(i, _):
            patches = trajectory.layer_patches(layer, i, key=layer_key)
            return 2 * patches.reshape(len(patches), -1) - 1  # back to r / max|r| in [−1, 1]

        patches = trajectory.layer_patches(layer, 0, key=layer_key)
        shape = patches.shape[1:] if patches.shape[3] == 3 else patches.shape[1:3]
    else:
        if field not in trajectory:
            raise SpecError("--field", f"{trajectory.path} has no recorded field {field!r}; "
                                       f"recorded: {', '.join(trajectory.fields)}")
        frame_shape = trajectory[field].shape[1:]
        if not shape or len(frame_shape) != 2 or frame_shape[1] != int(np.prod(shape)):
            raise SpecError("--field", f"field {field!r} has frames of shape {frame_shape}, not one "
                                       f"{'x'.join(map(str, shape)) if shape else '?'} image per neuron")

        def tiles(_, frame):
            return frame
    cmap, scaling, vmin, vmax = colour_scale(tiles(-1, trajectory[field][-1]), cmap)
    first = mosaic(tiles(0, trajectory[field][0]), shape, columns, scaling)
    dpi, band = 100, 30  # title band in pixels; even sizes for the yuv420p of MP4
    scale = max(scale, MIN_TILE / max(shape[:2]))  # 5×5 filters drawn 40 pixels wide, not 8
    width_px = 2 * math.ceil(first.shape[1] * scale / 2)
    height_px = 2 * math.ceil(first.shape[0] * scale / 2)
    fig = plt.figure(figsize=(width_px / dpi, (height_px + band) / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, height_px / (height_px + band)))
    ax.axis("off")
    colormap = matplotlib.colormaps[cmap].with_extremes(bad="white")
    image = ax.imshow(first, cmap=colormap, vmin=vmin, vmax=vmax, interpolation="nearest")
    title = fig.text(0.5, 0.995, "", ha="center", va="top", fontsize=9)
    epochs = trajectory.epochs
    steps = trajectory.steps
    index = {int(s): i for i, s in enumerate(steps)}
    n = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with writer.saving(fig, str(path), dpi=dpi):
        for step, weights in trajectory.frames(field, every=every):
            image.set_data(mosaic(tiles(index[step], weights), shape, columns, scaling))
            title.set_text(f"{trajectory.attrs.get('name', '')}: {field}, step {step}, epoch {epochs[index[step]]}")
            writer.grab_frame()
            n += 1
    plt.close(fig)
    return path, n


class Animation(Exporter):
    """Receptive fields over training as an animated colormap → ``<run>/receptive_fields.gif`` (or .mp4)."""

    name = "animation"
    options = Schema(
        Option("filename", "filename", "receptive_fields.gif", "file name inside the run folder (.gif, or .mp4 with ffmpeg)"),
        Option("field", "string", None, "recorded field to animate (one image per neuron; default: weights, a "
               "layered model's first learned layer as image patches)", nullable=True),
        Option("every", "integer", 1, "use every N-th recorded frame", low=1),
        Option("fps", "number", 10.0, "frames per second", low=0, low_open=True),
        Option("cmap", "string", AUTO, "matplotlib colormap, or auto: diverging (bwr, limits ±max|w|) for "
               "signed weights, grey (min–max per neuron) for one-signed weights"),
    )

    def export(self, result, out_dir):
        from ..replay import Trajectory

        with Trajectory(result.path) as t:
            path, _ = animate(t, Path(out_dir) / self.filename, field=self.field or default_field(t),
                              every=self.every, fps=self.fps, cmap=self.cmap, key="exporters.animation.params.filename")
        return [path]
