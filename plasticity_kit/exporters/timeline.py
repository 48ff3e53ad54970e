"""θ of every neuron and every scalar metric against the training step, one panel each, from a
run file (``plasticity-kit replay RUN.h5 --plot metrics.png``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SpecError


def panels(trajectory) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(title, steps, values) for ``theta`` (frames × neurons) and every scalar metric value."""
    out = []
    if "theta" in trajectory:
        out.append(("θ of every neuron", trajectory.steps, trajectory["theta"][:]))
    for name, values in trajectory.metrics.items():
        for key, series in values.items():
            if key != "step" and series.ndim == 1 and len(series):
                out.append((f"{name}: {key}", values["step"], series))
    return out


MARKERS_BELOW = 30
"""Series with fewer points than this are drawn with markers (a metric scored once is one point)."""


def draw_timeline(trajectory, *, key: str = "--plot"):
    """The matplotlib Figure of the panels: a line per series, with markers when it has few
    points, and the value written beside a metric scored only once."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    items = panels(trajectory)
    if not items:
        raise SpecError(key, f"{trajectory.path} has neither a recorded 'theta' nor any metric over time to plot")
    fig, axes = plt.subplots(len(items), 1, figsize=(7, 2.4 * len(items)), squeeze=False, sharex=True)
    for ax, (title, steps, values) in zip(axes[:, 0], items):
        ax.plot(steps, values, lw=0.9, marker="o" if len(steps) < MARKERS_BELOW else None, ms=4)
        if len(steps) == 1 and np.ndim(values) == 1:
            value = float(values[0])
            ax.annotate(f"{value:.4g} at step {int(steps[0])} (scored once)", (steps[0], value),
                        xytext=(8, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("training step")
    fig.suptitle(f"{trajectory.attrs.get('name', '')} ({trajectory.status})", fontsize=10)
    fig.tight_layout()
    return fig


def plot_timeline(trajectory, path, *, key: str = "--plot") -> tuple[Path, int]:
    """Save the panels to ``path`` (PNG/PDF/SVG by suffix); returns (path, number of panels)."""
    import matplotlib.pyplot as plt

    fig = draw_timeline(trajectory, key=key)
    items = fig.axes
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path, len(items)
