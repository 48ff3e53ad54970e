"""PNG of −log SNR_w curves, as in Pogodin et al. 2021, Fig. 4 (SNR_w: Eq. 6, see
:mod:`plasticity_kit.metrics.weight_sharing_snr`).

For a run of the ``hebbian_weight_sharing`` rule: −log SNR_w over the iterations of the latest
sleep phase (the rule's ``sleep_snr``) with the closed-form end point as a dotted line (the
paper's "theoretical minimum", ``sleep_snr_limit``); and, when the spec records the
``weight_sharing_snr`` metric over training, −log SNR_w against the training step.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..metrics.weight_sharing_snr import neg_log
from ..options import Option, Schema
from .base import Exporter


def plot_neg_log_snr(panels: list[dict], path, *, title: str | None = None) -> Path:
    """Save one PNG with a panel per entry of ``panels``.

    A panel is ``{"xlabel": str, "curves": [{"label", "x", "y", "limit"?}], "xscale"?: "linear"|"log"}``:
    ``y`` is −log SNR_w, ``limit`` (optional) a dotted horizontal line in the curve's colour.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        for i, curve in enumerate(panel["curves"]):
            color = curve.get("color", f"C{i % 10}")
            y = np.asarray(curve["y"], dtype=np.float64)
            ax.plot(curve["x"], np.where(np.isfinite(y), y, np.nan), color=color, lw=1.3, label=curve["label"])
            limit = curve.get("limit")
            if limit is not None and math.isfinite(limit):
                ax.axhline(limit, color=color, ls=":", lw=1.2)
        ax.set_xscale(panel.get("xscale", "linear"))
        ax.set_xlabel(panel["xlabel"])
        ax.set_ylabel("−log SNR$_w$")
        ax.grid(alpha=0.3)
        if panel.get("title"):
            ax.set_title(panel["title"], fontsize=9)
        if panel["curves"]:
            ax.legend(fontsize=7, ncol=panel.get("legend_columns", 1))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def metric_series(run_file, name: str = "weight_sharing_snr") -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, −log SNR_w) of metric ``name`` recorded in a run file, or None if absent."""
    import h5py

    with h5py.File(run_file, "r") as f:
        g = f.get(f"metrics/{name}")
        if g is None or "step" not in g:
            return None
        if "neg_log_snr" in g:
            return g["step"][()], g["neg_log_snr"][()]
        if "snr" in g:
            return g["step"][()], neg_log(g["snr"][()])
    return None


class SNRPlot(Exporter):
    """PNG of −log SNR_w: over the latest sleep phase (with its closed-form minimum) and over training."""

    name = "snr_plot"
    options = Schema(
        Option("filename", "filename", "snr.png", "file name inside the run folder"),
        Option("metric", "string", "weight_sharing_snr", "metric whose recorded SNR_w is plotted against the step"),
    )

    def export(self, result, out_dir):
        panels = []
        state = result.state
        if "sleep_snr" in state:
            sleep = neg_log(state["sleep_snr"])
            limit = float(neg_log(state["sleep_snr_limit"][0])) if "sleep_snr_limit" in state else None
            panels.append({"xlabel": "sleep iteration (latest phase)", "title": "sleep phase",
                           "curves": [{"label": "−log SNR$_w$", "x": np.arange(len(sleep)), "y": sleep,
                                       "limit": limit}]})
        series = metric_series(result.path, self.metric)
        if series is not None and len(series[0]) > 1:
            panels.append({"xlabel": "training step", "title": f"metric {self.metric}",
                           "curves": [{"label": "−log SNR$_w$", "x": series[0], "y": series[1]}]})
        if not panels:
            return []
        return [plot_neg_log_snr(panels, Path(out_dir) / self.filename, title=result.spec.name)]
