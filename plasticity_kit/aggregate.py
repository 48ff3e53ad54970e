"""A sweep's aggregate: one CSV row per run, and metric-vs-parameter figures with error bars.

``<output.dir>/<sweep name>/sweep.csv`` has the columns ``name, repeat, seed, status, message,
seconds``, one column per swept key (values as YAML flow text) and one per final scalar metric
(``network.selectivity``, ``fid.fid``…).  :func:`plot_metric` draws metric vs one swept key —
mean ± standard deviation over the repeats, one curve per combination of the other swept keys —
as in Rondini 2023 (FID vs number of neurons, one curve per interaction matrix / data set type);
:func:`plot_examples` draws one example synthetic image per configuration (its Figs. 2, 4, 6).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import yaml

from .errors import DataError

FIXED = ("name", "repeat", "seed", "status", "message", "seconds")


def _text(value) -> str:
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip()
    return str(value)


def write_table(records: list[dict], sweep) -> Path:
    """Write ``records`` (from :func:`plasticity_kit.executors.run_task`) to ``<sweep dir>/sweep.csv``."""
    metrics = sorted({k for r in records for k in r.get("metrics", {})})
    path = Path(sweep.directory) / "sweep.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(FIXED) + list(sweep.keys) + metrics)
        for r in records:
            row = [r.get(k, "") for k in FIXED]
            row += [_text(r["params"].get(k, "")) for k in sweep.keys]
            row += [r.get("metrics", {}).get(m, "") for m in metrics]
            writer.writerow(row)
    tmp.replace(path)
    return path


def read_table(path) -> list[dict]:
    """The rows of a sweep.csv as dicts of strings."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: sweep table not found (run plasticity-kit sweep first)")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _number(text: str):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def swept_columns(rows: list[dict]) -> list[str]:
    """The swept-key columns of a sweep table: those named by a spec section (``model.n_neurons``)."""
    from .sweep import SWEEPABLE

    return [c for c in (rows[0] if rows else ()) if c not in FIXED and c.split(".")[0] in SWEEPABLE]


def curves(rows: list[dict], x: str, metric: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{label of the other swept values: (x values, mean, std over repeats)}`` for completed runs."""
    if rows and x not in rows[0]:
        raise DataError(f"sweep table has no column {x!r}; swept: {', '.join(swept_columns(rows))}")
    if rows and metric not in rows[0]:
        cols = [c for c in rows[0] if c not in FIXED and c not in swept_columns(rows)]
        raise DataError(f"sweep table has no metric {metric!r}; metrics: {', '.join(cols) or 'none'}")
    others = [c for c in swept_columns(rows) if c != x]
    groups: dict[str, dict[float, list[float]]] = {}
    for r in rows:
        value, xv = _number(r.get(metric)), _number(r.get(x))
        if r.get("status") != "completed" or value is None or xv is None:
            continue
        label = ", ".join(f"{c.split('.')[-1]}={r[c]}" for c in others) or metric
        groups.setdefault(label, {}).setdefault(xv, []).append(value)
    out = {}
    for label, by_x in groups.items():
        xs = np.array(sorted(by_x))
        out[label] = (xs, np.array([np.mean(by_x[v]) for v in xs]), np.array([np.std(by_x[v]) for v in xs]))
    return out


def plot_metric(table, x: str, metric: str, out_path) -> Path:
    """metric vs ``x`` with ± std error bars over repeats, one curve per other swept combination → PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_table(table) if not isinstance(table, list) else table
    data = curves(rows, x, metric)
    if not data:
        raise DataError(f"no completed run has a numeric {metric!r} and {x!r} to plot")
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
    for label, (xs, mean, std) in data.items():
        ax.errorbar(xs, mean, yerr=std, marker="o", capsize=3, label=label)
    ax.set_xlabel(x.split(".")[-1])
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path)
    plt.close(fig)
    return out_path


def example_image(run_file) -> np.ndarray | None:
    """One synthetic image of a finished run: its first network's binocular middle neuron (odd N),
    else its neuron 0 — the image the study shows per configuration (Rondini 2023, Figs. 2, 4, 6)."""
    from .runfile_check import MalformedRunFile, open_checked, read

    try:
        f, info = open_checked(run_file)  # a missing or damaged file has no example
    except MalformedRunFile:
        return None
    with f:
        if "final/synthetic_images" not in f:
            return None
        images = f["final/synthetic_images"]
        shape = tuple(int(s) for s in f["data"].attrs.get("image_shape", ()))
        spec = info["spec"]
        try:
            first = read(run_file, images, 0 if info["replicas"] > 1 else (), what="'final/synthetic_images'")
        except MalformedRunFile:
            return None
    if first.ndim != 2 or (shape and first.shape[1] != int(np.prod(shape))):
        return None
    from .metrics.synthetic import middle_index

    model = spec.get("model", {})
    middle = middle_index((model.get("interaction") or {}).get("name"), int(model.get("n_neurons", len(first))))
    return first[middle or 0].reshape(shape) if shape else None


def plot_examples(sweep, x: str, out_path) -> Path:
    """A grid of example synthetic images: one row per combination of the other swept values, one
    column per value of ``x``, each cell from the first repeat (see :func:`example_image`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = [k for k in sweep.keys if k != x]
    cells: dict[str, dict] = {}
    for run in sweep.runs:
        if run.repeat != 0:
            continue
        image = example_image(run.output_dir / "run.h5")
        if image is None:
            continue
        label = ", ".join(f"{k.split('.')[-1]}={_text(run.params[k])}" for k in others) or x
        cells.setdefault(label, {})[_text(run.params[x])] = image
    if not cells:
        raise DataError(f"no finished run of sweep '{sweep.name}' has synthetic images")
    columns = list(dict.fromkeys(_text(run.params[x]) for run in sweep.runs))
    fig, axes = plt.subplots(len(cells), len(columns), figsize=(1.3 * len(columns) + 2.2, 1.4 * len(cells)),
                             squeeze=False)
    for i, (label, row) in enumerate(cells.items()):
        for j, value in enumerate(columns):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if value in row:
                ax.imshow(row[value], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            if i == 0:
                ax.set_title(f"{x.split('.')[-1]}={value}", fontsize=7)
            if j == 0:
                ax.set_ylabel(label.replace(", ", "\n"), fontsize=6, rotation=0, ha="right", va="center")
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
