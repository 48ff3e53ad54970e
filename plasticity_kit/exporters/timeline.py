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


def plot_timeline(trajectory, path, *, key: str = "--plot") -> tuple[Path, int]:
    """Save the panels to ``path`` (PNG/PDF/SVG by suffix); returns (path, number of panels)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    items = panels(trajectory)
    if not items:
        raise SpecError(key, f"{trajectory.path} has neither a recorded 'theta' nor any metric over time to plot")
    fig, axes = plt.subplots(len(items), 1, figsize=(7, 2.4 * len(items)), squeeze=False, sharex=True)
    for ax, (title, steps, values) in zip(axes[:, 0], items):
        ax.plot(steps, values, lw=0.9)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("training step")
    fig.suptitle(f"{trajectory.attrs.get('name', '')} ({trajectory.status})", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path, len(items)
