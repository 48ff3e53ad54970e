"""One run from a validated spec: data → rule → scheduler → recorder → exporters.

Seeds: ``schedule.seed`` feeds a :class:`numpy.random.SeedSequence` whose three children draw the
data subset, the initial state and the shuffling, so the same spec and seed give the same
trajectory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError, SpecError
from .metrics.base import MetricContext, MetricUnavailable
from .recording import Recorder
from .scheduler import Outcome, Progress, steps_per_epoch, train
from .spec import RunSpec


@dataclass
class RunResult:
    """What a finished (or stopped) run produced."""

    spec: RunSpec
    rule: object
    data: object
    state: dict
    outcome: Outcome
    path: Path
    outputs: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.outcome.status


STREAMS = ("data", "init", "shuffle")


def seed_streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators for the data subset, the initial state and the shuffling."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}


def default_record_every(total_steps: int) -> int:
    return max(1, total_steps // 100)


def execute(spec: RunSpec, *, progress: bool | None = None, log=print) -> RunResult:
    """Train the run described by ``spec``, write ``<output>/<name>/run.h5`` and the exports."""
    streams = seed_streams(spec.schedule["seed"])
    try:
        data = spec.dataset.load(streams["data"])
        X = np.ascontiguousarray(data.X, dtype=spec.model.dtype)
        if X.ndim != 2 or X.shape[0] == 0:
            raise DataError(f"data set '{data.name}' gave no samples (shape {X.shape})")
        rule = spec.build_rule(X.shape[1])
    except SpecError as exc:  # problems only visible once data and sizes are known
        raise exc.with_source(spec.source) if exc.source is None else exc
    state = rule.init_state(streams["init"])

    sched = spec.schedule
    total_steps = sched["epochs"] * steps_per_epoch(X.shape[0], sched["batch_size"])
    if spec.record["every"] is None:
        spec.record["every"] = default_record_every(total_steps)
    spec.resolved["record"]["every"] = spec.record["every"]

    out_dir = spec.output_dir
    path = out_dir / "run.h5"
    if path.exists():
        log(f"replacing {path}")
    recorder = Recorder(
        path, name=spec.name, spec_yaml=spec.to_yaml(), seed=sched["seed"],
        seeds={name: f"SeedSequence({sched['seed']}).spawn({len(STREAMS)})[{i}]" for i, name in enumerate(STREAMS)},
        data=data, state=state, fields=spec.record["fields"], compression=spec.record["compression"],
    )
    final_metrics: dict = {}
    unavailable: set = set()

    def evaluate(metric, step, epoch):
        if metric.name in unavailable:
            return
        ctx = MetricContext(rule=rule, state=state, data=data, spec=spec, step=step, epoch=epoch)
        try:
            values = metric.compute(ctx)
        except MetricUnavailable as exc:
            unavailable.add(metric.name)
            log(f"metric '{metric.name}' skipped: {exc}")
            return
        recorder.record_metric(metric.name, step, values)
        final_metrics[metric.name] = (step, values)

    periodic = [(every, lambda step, epoch, _s, m=metric: evaluate(m, step, epoch))
                for metric, every in spec.metrics if every]
    try:
        outcome = train(
            rule, state, X, epochs=sched["epochs"], batch_size=sched["batch_size"], shuffle=sched["shuffle"],
            rng=streams["shuffle"], record_every=spec.record["every"], on_record=recorder.record,
            periodic=periodic, progress=Progress(sched["epochs"], enabled=progress),
        )
        if outcome.status == "completed":
            for metric, _ in spec.metrics:
                if final_metrics.get(metric.name, (None,))[0] != outcome.steps:
                    evaluate(metric, outcome.steps, outcome.epochs_completed)
        synthetic = rule.synthesize(state) if outcome.status != "diverged" else None
        recorder.finish(outcome.status, outcome.message, state, steps=outcome.steps,
                        epochs_completed=outcome.epochs_completed, synthetic=synthetic)
    except BaseException as exc:
        if recorder.file.id.valid:
            recorder.finish("interrupted", f"stopped by {type(exc).__name__}: {exc}", state,
                            steps=int(recorder.file.attrs["steps"]),
                            epochs_completed=int(recorder.file.attrs["epochs_completed"]))
        raise
    finally:
        recorder.close()

    result = RunResult(spec=spec, rule=rule, data=data, state=state, outcome=outcome, path=path,
                       metrics={name: values for name, (_, values) in final_metrics.items()})
    if outcome.status == "completed":
        for exporter in spec.exporters:
            result.outputs.extend(exporter.export(result, out_dir))
    return result
