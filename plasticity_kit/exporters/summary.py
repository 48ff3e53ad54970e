"""Run summary as JSON and as a one-row CSV: status, timings, sizes and final-state statistics."""
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


class Summary(Exporter):
    """Run summary → ``<run>/summary.json`` and ``<run>/summary.csv``."""

    name = "summary"
    options = Schema(Option("stem", "string", "summary", "file name without extension"))

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
