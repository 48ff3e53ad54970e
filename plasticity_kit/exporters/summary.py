"""Run summary as JSON and as a one-row CSV: status, timings, sizes and final-state statistics; and
the final scores as terminal lines (:func:`score_lines`, printed by ``plasticity-kit run``)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..options import Option, Schema
from .base import Exporter


def summarize(result) -> dict:
    o = result.outcome
    spec = result.spec
    summary = {
        "name": spec.name,
        "status": o.status,
        "message": o.message,
        "rule": spec.rule_class.name,
        "n_neurons": spec.model.n_neurons,
        "n_samples": int(result.data.X.shape[0]),
        "n_inputs": int(result.data.X.shape[1]),
        "epochs_completed": o.epochs_completed,
        "steps": o.steps,
        "train_seconds": round(o.elapsed, 4),
        "seconds_per_epoch": round(o.elapsed / max(o.epochs_completed, 1), 6),
        "run_file": str(result.path),
    }
    for name, values in result.metrics.items():
        for key, value in values.items():
            arr = np.asarray(value)
            if arr.ndim == 0 and arr.dtype.kind in "biuf":
                summary[f"{name}.{key}"] = arr.item()
    for key, value in result.state.items():
        if key.startswith("optimizer/") or value.dtype.kind != "f":
            continue
        v = value.astype(np.float64)
        summary.update({f"{key}_mean": float(v.mean()), f"{key}_min": float(v.min()), f"{key}_max": float(v.max())})
    return summary


def _g(value, digits: int = 4) -> str:
    return f"{value:.{digits}g}"


def _fid_line(v: dict, params: dict) -> list[str]:
    n = v.get("n_images")
    head = f"fid (dims {params.get('dims')}, {n} images): {_g(v['fid'])}"
    if "floor_mean" in v:
        head += f"  real floor {_g(v['floor_mean'])} ± {_g(v['floor_sd'], 2)}  ratio {v['ratio']:.2f}"
    lines = [head]
    if "kid" in v:
        kid = f"kid: {_g(v['kid'])} ± {_g(v['kid_se'], 2)}"
        if "kid_floor_mean" in v:
            kid += f"  real floor {_g(v['kid_floor_mean'], 2)} ± {_g(v['kid_floor_sd'], 2)}"
        lines.append(kid)
    return lines


def _memorisation_line(v: dict, params: dict) -> list[str]:
    return [f"memorisation: nearest-training SSIM {v['ssim_synthetic']:.3f} vs real nearest-other "
            f"{v['ssim_real']:.3f} (ratio {v['ssim_ratio']:.2f}; correlation ratio {v['correlation_ratio']:.2f}; "
            f"{100 * v['ssim_above_real']:.0f}% of images above the real median)"]


_FORMATS = {
    "fid": _fid_line,
    "identities": lambda v, p: [f"distinct identities: {v['distinct_identities']}/{v['n_images']}"],
    "memorisation": _memorisation_line,
    "authenticity": lambda v, p: [f"α-precision {v['alpha_precision']:.3f}  β-recall {v['beta_recall']:.3f}  "
                                  f"authenticity {v['authenticity']:.3f} ({v['n_images']} images)"],
}


def score_lines(result) -> list[str]:
    """One or two lines per metric of the run's spec with the final values: the image scores with
    their real floor (``fid``: FID and KID, floor mean ± sd, ratio), distinct identities,
    memorisation and authenticity written out; other metrics as ``name: key = value, ...`` (scalars)."""
    lines = []
    for metric, _ in result.spec.metrics:
        values = result.metrics.get(metric.name)
        if not values:
            continue
        fmt = _FORMATS.get(metric.name)
        try:
            if fmt is not None:
                lines.extend(fmt(values, dict(metric.params)))
                continue
        except KeyError:
            pass  # a value is missing (e.g. no floor with reference: npz): fall back to the plain list
        scalars = [(k, np.asarray(v)) for k, v in values.items()]
        scalars = [f"{k} = {_g(a.item())}" for k, a in scalars if a.ndim == 0 and a.dtype.kind in "biuf"]
        if scalars:
            lines.append(f"{metric.name}: " + ", ".join(scalars))
    return lines


class Summary(Exporter):
    """Run summary → ``<run>/summary.json`` and ``<run>/summary.csv``."""

    name = "summary"
    options = Schema(Option("stem", "filename", "summary", "file name without extension"))

    def export(self, result, out_dir):
        data = summarize(result)
        out_dir = Path(out_dir)
        json_path = out_dir / f"{self.stem}.json"
        json_path.write_text(json.dumps(data, indent=2) + "\n")
        csv_path = out_dir / f"{self.stem}.csv"
        with open(csv_path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(data))
            writer.writeheader()
            writer.writerow(data)
        return [json_path, csv_path]
