"""Metrics recomputed from a saved run file (``plasticity-kit metrics RUN.h5 --metric fid --step last``).

The run file holds the resolved spec as YAML text; the rule is rebuilt from it with
:func:`plasticity_kit.spec.resolve`, the data set reloaded with the run's seed (and checked
against the recorded checksum and indices), and the state taken from ``trajectory/<field>`` at the
requested step (or from ``final/``).  Fields that were not recorded keep their initial values, so
a metric should read only recorded fields (the image and network metrics read ``weights``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import yaml

from ..errors import DataError, SpecError
from ..plugins import registry
from .base import MetricContext
from .features import ImageMetric

AXES = ("step", "epoch", "time")


@dataclass
class SavedRun:
    """A run file opened for recomputation: its spec, data, rule and recorded steps."""

    path: Path
    spec: object
    data: object
    rule: object
    initial: dict
    steps: np.ndarray
    epochs: np.ndarray
    final_step: int
    final_epoch: int

    def frames(self, which: str) -> list:
        """Frame indices for ``which``: ``last``, ``final``, ``all`` or a recorded step number."""
        if which == "final":
            return ["final"]
        if which == "all":
            return list(range(len(self.steps)))
        if len(self.steps) == 0:
            raise DataError(f"{self.path}: no recorded frames in trajectory/")
        if which == "last":
            return [len(self.steps) - 1]
        try:
            step = int(which)
        except ValueError:
            raise DataError(f"--step: expected last, final, all or a step number, got {which!r}") from None
        hits = np.flatnonzero(self.steps == step)
        if not len(hits):
            raise DataError(f"--step {step}: not recorded in {self.path}; recorded steps: {len(self.steps)} "
                            f"from {self.steps[0]} to {self.steps[-1]} (every {_spacing(self.steps)})")
        return [int(hits[-1])]

    def context(self, frame) -> MetricContext:
        """The :class:`MetricContext` of frame index ``frame`` (or ``"final"``)."""
        state = {k: v.copy() for k, v in self.initial.items()}
        with h5py.File(self.path, "r") as f:
            if frame == "final":
                if "final" not in f:
                    raise DataError(f"{self.path}: the run has no final state (it was still running or was killed)")
                group, step, epoch = f["final"], self.final_step, self.final_epoch
                names = [k for k in _dataset_names(group) if k in state]
                values = {k: group[k][()] for k in names}
            else:
                t = f["trajectory"]
                step, epoch = int(self.steps[frame]), int(self.epochs[frame])
                values = {k: t[k][frame] for k in t if k not in AXES and k in state}
        for key, value in values.items():
            state[key] = np.ascontiguousarray(value, dtype=state[key].dtype)
        return MetricContext(rule=self.rule, state=state, data=self.data, spec=self.spec, step=step, epoch=epoch)


def _spacing(steps: np.ndarray) -> str:
    d = np.unique(np.diff(steps))
    return str(d[0]) if len(d) == 1 else "irregular"


def _dataset_names(group) -> list[str]:
    names = []
    group.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def open_run(path) -> SavedRun:
    """Rebuild spec, data and rule of the run file ``path``; DataError if it is not one or its data changed."""
    from ..runner import seed_streams
    from ..spec import resolve

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: run file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not an HDF5 run file ({exc})") from None
    with f:
        if f.attrs.get("format") != "plasticity-kit/trajectory" or "spec" not in f:
            raise DataError(f"{path}: not a plasticity-kit run file (no format attribute or spec)")
        text = f["spec"][()]
        text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
        indices = f["data/indices"][()]
        checksum = f["data"].attrs.get("checksum", "")
        steps = f["trajectory/step"][()]
        epochs = f["trajectory/epoch"][()]
        final_step, final_epoch = int(f.attrs.get("steps", 0)), int(f.attrs.get("epochs_completed", 0))
    spec = resolve(yaml.safe_load(text), source=f"{path}:spec")
    streams = seed_streams(spec.schedule["seed"])
    data = spec.dataset.load(streams["data"])
    if data.checksum != checksum or not np.array_equal(np.asarray(data.indices), indices):
        raise DataError(f"{path}: the data set rebuilt from the run's spec differs from the one it was trained on "
                        f"(checksum or selected indices changed)")
    rule = spec.build_rule(data.X.shape[1])
    initial = rule.init_state(streams["init"])
    return SavedRun(path, spec, data, rule, initial, steps, epochs, final_step, final_epoch)


def build_metrics(run: SavedRun, names, params: dict) -> list:
    """The metrics ``names`` (default: the run spec's list) with the spec's params updated by ``params``."""
    reg = registry()
    in_spec = {m.name: m for m, _ in run.spec.metrics}
    if not names:
        if not in_spec:
            raise SpecError("--metric", "the run's spec lists no metrics; name one, e.g. --metric fid")
        names = list(in_spec)
    out = []
    for name in names:
        cls = reg.metrics.get(name, "--metric")
        base = dict(in_spec[name].params) if name in in_spec else {}
        usable = {k: v for k, v in params.items() if k in cls.options}
        out.append(cls.from_config({**base, **usable}, name))
    unknown = [k for k in params if not any(k in type(m).options for m in out)]
    if unknown:
        raise SpecError(f"--param {unknown[0]}", f"no selected metric has this parameter "
                        f"(metrics: {', '.join(names)})")
    return out


def recompute(paths, names=(), params=None, step: str = "last", pool: bool = False):
    """Yield ``(run label, step, metric name, values)`` for each run file (or once for the pool)."""
    runs = [open_run(p) for p in paths]
    metrics = build_metrics(runs[0], names, params or {})
    if not pool:
        for run in runs:
            for frame in run.frames(step):
                ctx = run.context(frame)
                for metric in metrics:
                    yield str(run.path), ctx.step, metric.name, metric.compute(ctx)
        return
    for metric in metrics:
        if not isinstance(metric, ImageMetric):
            raise SpecError("--pool", f"metric '{metric.name}' does not score images; --pool pools synthetic images")
    first = runs[0]
    for run in runs[1:]:
        if run.data.checksum != first.data.checksum or run.data.image_shape != first.data.image_shape:
            raise DataError(f"--pool: {run.path} was trained on another data set than {first.path}")
    contexts = [run.context(run.frames(step)[-1]) for run in runs]
    for metric in metrics:
        images = np.concatenate([metric.synthetic(ctx) for ctx in contexts])
        yield f"{len(runs)} runs pooled", contexts[0].step, metric.name, metric.score(images, contexts[0])
