"""Metrics recomputed from saved run files (``plasticity-kit metrics RUN.h5 --metric fid --step last``).

The run file is read with :class:`plasticity_kit.replay.Trajectory`: the rule is rebuilt from the
recorded spec (``plasticity_kit.spec.resolve``) and the state is the recorded fields at the asked
step (every state array at the last step).  The training data are reloaded from the spec with the
run's seed and checked against the recorded checksum and indices.  Metrics read only recorded
fields (the image and network metrics read ``weights``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError, SpecError
from ..plugins import registry
from ..replay import Trajectory
from ..runfile_check import as_text, read
from .base import MetricContext
from .base import evaluate as evaluate_metric
from .features import ImageMetric


@dataclass
class SavedRun:
    """A run file opened for recomputation: its trajectory, spec and training data."""

    trajectory: Trajectory
    spec: object
    data: object

    @property
    def label(self) -> str:
        return str(self.trajectory.path)

    def steps(self, which: str) -> list[int]:
        """The recorded steps meant by ``which``: ``last``, ``all`` or one step number."""
        steps = [int(s) for s in self.trajectory.steps]
        if not steps:
            raise DataError(f"{self.label}: no recorded frames")
        if which == "all":
            return steps
        if which == "last":
            return steps[-1:]
        try:
            step = int(which)
        except ValueError:
            raise DataError(f"--step: expected last, all or a recorded step number, got {which!r}") from None
        self.trajectory.index(step)  # DataError naming the nearest recorded steps
        return [step]

    def context(self, step: int) -> MetricContext:
        state = self.trajectory.at(step)
        return MetricContext(rule=self.trajectory.rule, state=state, data=self.data, spec=self.spec,
                             step=state.step, epoch=state.epoch)


def open_run(path) -> SavedRun:
    """Open the run file ``path``; DataError if it is not one or its training data cannot be rebuilt."""
    from ..runner import seed_streams
    from ..spec import resolve

    t = Trajectory(path)
    try:
        recorded = read(t.path, t.file["data/indices"], what="'data/indices'")
        checksum = as_text(t.data_info.get("checksum", ""))
    except BaseException:
        t.close()
        raise
    try:
        spec = resolve(t.spec, f"{t.path}:spec")
        data = spec.dataset.load(seed_streams(spec.schedule["seed"])["data"])
    except (SpecError, DataError) as exc:
        t.close()
        raise DataError(f"cannot rebuild the training data of {t.path} from its recorded spec: {exc}") from None
    if data.checksum != checksum or not np.array_equal(np.asarray(data.indices), recorded):
        t.close()
        raise DataError(f"{t.path}: the data set rebuilt from the run's spec differs from the one it was trained on "
                        f"(checksum or selected indices changed)")
    return SavedRun(t, spec, data)


def build_metrics(run: SavedRun, names, params: dict) -> list:
    """The metrics ``names`` (default: the run spec's list) with the spec's params updated by ``params``."""
    in_spec = {m.name: m for m, _ in run.spec.metrics}
    if not names:
        if not in_spec:
            raise SpecError("--metric", f"{run.label}: the run's spec lists no metrics; name one, e.g. --metric fid")
        names = list(in_spec)
    out = []
    for name in names:
        cls = registry().metrics.get(name, "--metric")
        base = dict(in_spec[name].params) if name in in_spec else {}
        out.append(cls.from_config({**base, **{k: v for k, v in params.items() if k in cls.options}}, name))
    for key in params:
        if not any(key in type(m).options for m in out):
            raise SpecError(f"--param {key}", f"no selected metric has this parameter (metrics: {', '.join(names)})")
    return out


def recompute(paths, names=(), params=None, step: str = "last", pool: bool = False):
    """Yield ``(run label, step, metric name, values)`` per run file and step — or, with ``pool``,
    once per metric on the synthetic images of all the runs together (at ``step``; ``all`` → last)."""
    runs = []
    try:
        for path in paths:
            runs.append(open_run(path))
        metrics = build_metrics(runs[0], names, params or {})
        if not pool:
            for run in runs:
                for s in run.steps(step):
                    ctx = run.context(s)
                    for metric in metrics:
                        yield run.label, ctx.step, metric.name, evaluate_metric(metric, ctx)
            return
        for metric in metrics:
            if not isinstance(metric, ImageMetric):
                raise SpecError("--pool", f"metric '{metric.name}' does not score images; --pool pools synthetic images")
        first = runs[0]
        for run in runs[1:]:
            if run.data.checksum != first.data.checksum or run.data.image_shape != first.data.image_shape:
                raise DataError(f"--pool: {run.label} was trained on another data set than {first.label}")
        contexts = [run.context(run.steps(step)[-1]) for run in runs]
        for metric in metrics:
            images = np.concatenate([metric.synthetic(ctx) for ctx in contexts])
            yield f"{len(runs)} runs pooled", contexts[0].step, metric.name, metric.score(images, contexts[0])
    finally:
        for run in runs:
            run.trajectory.close()
