"""One run from a validated spec: data → rule → scheduler → recorder → exporters.

Seeds: ``schedule.seed`` feeds a :class:`numpy.random.SeedSequence` whose three children draw the
data subset, the initial state and the shuffling, so the same spec and seed give the same
trajectory.

Resume (``execute(spec, resume=path)``): the run file's last checkpoint gives the full state,
the shuffle generator's state and the position in the epoch, so the continued run records
exactly the frames, metrics and final state of a run never interrupted.

The run file is owned by a :class:`~plasticity_kit.runfile.RunFile`, claimed (locked) before
anything else: a second run of the same output stops at once, an existing file is replaced
only with ``overwrite``, and a file that cannot be written stops the run with
:class:`~plasticity_kit.errors.RunFileError`, the file marked ``failed``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError, SpecError
from .metrics.base import MetricContext, MetricUnavailable, evaluate as evaluate_metric
from .recording import CHECKPOINT_SECONDS, open_for_reading
from .runfile import RunFile
from .scheduler import Outcome, Position, Progress, critical, steps_per_epoch, train
from . import threads
from .spec import DEFAULT_FRAMES, RunSpec


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


SAMPLES_PER_FRAME = 4096
"""A record (frame and checkpoint) costs about as much as training on ~400 samples (measured for
BCM on Olivetti and Krotov–Hopfield on MNIST, batch 100): one frame per 4096 samples at most keeps
recording under ~10% of the training time."""


def default_record_every(total_steps: int, batch_size: int = 1) -> int:
    """``record.every`` when the spec omits it: at most ~100 frames per run (plus the first and
    the last) and at most one frame per :data:`SAMPLES_PER_FRAME` samples trained."""
    return max(1, -(-total_steps // DEFAULT_FRAMES), -(-SAMPLES_PER_FRAME // batch_size))


def execute(spec: RunSpec, *, progress: bool | None = None, log=print, resume=None,
            overwrite: bool = False) -> RunResult:
    """Train the run described by ``spec``, write ``<output>/<name>/run.h5`` and the exports.

    ``resume``: the run file of an interrupted run of the same spec, continued from its last
    checkpoint and appended to (exports then go next to it).  ``overwrite``: replace an existing
    run file (without it, an existing file stops the run with a DataError).  The run file is
    claimed before the data is loaded, so a second run of the same output stops at once.
    """
    path = Path(resume) if resume is not None else spec.output_dir / "run.h5"
    claim = RunFile.claim(path, overwrite=overwrite, resume=resume is not None)
    try:
        streams = seed_streams(spec.schedule["seed"])
        try:
            data = spec.dataset.load(streams["data"])
        except SpecError as exc:
            raise exc.with_source(spec.source) if exc.source is None else exc
        if resume is not None:
            check_resumable(spec, data, path)
        result = execute_data(spec, data, path=path, streams=streams, progress=progress, log=log,
                              resume=resume is not None, claim=claim)
    except BaseException:
        claim.release()
        raise
    if result.outcome.status == "completed":
        for exporter in spec.exporters:
            result.outputs.extend(exporter.export(result, path.parent))
    return result


IGNORED_ON_RESUME = ("description", "output", "exporters")  # do not change the trajectory
IGNORED_RECORD_KEYS = ("checkpoint_seconds",)  # nor does when checkpoints are written


def _differences(a, b, key: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            out += _differences(a.get(k), b.get(k), f"{key}.{k}" if key else str(k))
        return out
    return [] if a == b else [f"{key} is {a!r} there, {b!r} here"]


def check_resumable(spec: RunSpec, data, path: Path) -> None:
    """SpecError/DataError unless the run file at ``path`` was recorded from ``spec`` on ``data``."""
    import yaml

    from .runfile_check import check_run_file
    from .spec import resolve

    check_run_file(path, for_resume=True)
    with open_for_reading(path) as f:
        text = f["spec"][()]
        attrs = dict(f["data"].attrs)
        indices = f["data/indices"][:]
    recorded = resolve(yaml.safe_load(text.decode() if isinstance(text, bytes) else text), f"{path}:spec").resolved
    mine = spec.resolved
    if mine["record"]["every"] is None:  # filled in from the data size, as it was in the file
        mine = {**mine, "record": {**mine["record"], "every": recorded["record"]["every"]}}
    recorded, mine = ({**spec_, "record": {k: v for k, v in spec_.get("record", {}).items()
                                           if k not in IGNORED_RECORD_KEYS}} for spec_ in (recorded, mine))
    diffs = _differences({k: v for k, v in recorded.items() if k not in IGNORED_ON_RESUME},
                         {k: v for k, v in mine.items() if k not in IGNORED_ON_RESUME})
    if diffs:
        raise SpecError("--resume", f"{path} was recorded from another spec: " + "; ".join(diffs))
    if attrs.get("checksum") != data.checksum or not np.array_equal(indices, np.asarray(data.indices)):
        raise DataError(f"{path}: the data set differs from the one the run was recorded on "
                        f"(checksum {attrs.get('checksum', '?')[:12]}…, now {data.checksum[:12]}…)")


def execute_data(spec: RunSpec, data, *, path=None, state: dict | None = None, streams: dict | None = None,
                 progress: bool | None = None, log=print, resume: bool = False, overwrite: bool = False,
                 claim: RunFile | None = None) -> RunResult:
    """Train ``spec``'s rule on ``data`` (a :class:`~plasticity_kit.datasets.base.Data`, e.g. the
    arrays given to an estimator), recording the run to ``path`` (nothing is written when None).

    ``state`` continues training from that state instead of a fresh one; ``streams`` are the
    seeded generators (default ``seed_streams(schedule.seed)``).  Exporters are the caller's.
    ``resume``: continue the interrupted run recorded at ``path`` from its last checkpoint
    (see :func:`check_resumable`).  ``overwrite``: replace an existing file at ``path``.
    ``claim``: the :class:`~plasticity_kit.runfile.RunFile` of ``path`` already claimed by
    the caller (released here).
    """
    if claim is None and path is not None:
        claim = RunFile.claim(path, overwrite=overwrite, resume=resume)
    try:
        return _execute_data(spec, data, claim, state=state, streams=streams, progress=progress, log=log,
                             resume=resume)
    finally:
        if claim is not None:
            claim.release()


def _execute_data(spec: RunSpec, data, run_file: RunFile | None, *, state, streams, progress, log,
                  resume) -> RunResult:
    streams = streams if streams is not None else seed_streams(spec.schedule["seed"])
    try:
        X = np.ascontiguousarray(data.X, dtype=spec.model.dtype)
        if X.ndim != 2 or X.shape[0] == 0:
            raise DataError(f"data set '{data.name}' gave no samples (shape {X.shape})")
        rule = spec.build_rule(X.shape[1])
    except SpecError as exc:  # problems only visible once data and sizes are known
        raise exc.with_source(spec.source) if exc.source is None else exc
    if state is None:
        state = rule.init_state(streams["init"])

    sched = spec.schedule
    total_steps = sched["epochs"] * steps_per_epoch(X.shape[0], sched["batch_size"])
    if spec.record["every"] is None:
        spec.record["every"] = default_record_every(total_steps, sched["batch_size"])
    spec.resolved["record"]["every"] = spec.record["every"]

    position = Position()
    final_metrics: dict = {}
    path = None if run_file is None else run_file.path
    recorder, recorded = None, False
    checkpoint_seconds = spec.record.get("checkpoint_seconds", CHECKPOINT_SECONDS)
    try:
        if resume:
            recorder, checkpoint = run_file.reopen(record_every=spec.record["every"], swmr=spec.record["swmr"],
                                                   checkpoint_seconds=checkpoint_seconds)
            _restore(state, checkpoint.state, path)
            position, recorded = checkpoint.position, recorder.recorded or checkpoint.position.step % spec.record["every"]
            final_metrics.update(recorder.metric_history())
            log(f"resuming {path} at step {position.step} (epoch {position.epoch}, batch {position.batch})")
        elif run_file is not None:
            recorder = run_file.create(
                name=spec.name, spec_yaml=spec.to_yaml(), seed=sched["seed"],
                seeds={name: f"SeedSequence({sched['seed']}).spawn({len(STREAMS)})[{i}]" for i, name in enumerate(STREAMS)},
                data=data, state=state, fields=spec.record["fields"], compression=spec.record["compression"],
                dtype=spec.record["dtype"], swmr=spec.record["swmr"], replicas=spec.replicas,
                rng_state=streams["shuffle"].bit_generator.state, checkpoint_seconds=checkpoint_seconds,
            )
        unavailable: set = set()

        def evaluate(metric, step, epoch):
            if metric.name in unavailable:
                return
            ctx = MetricContext(rule=rule, state=state, data=data, spec=spec, step=step, epoch=epoch)
            try:
                values = evaluate_metric(metric, ctx)
            except MetricUnavailable as exc:
                unavailable.add(metric.name)
                log(f"metric '{metric.name}' skipped: {exc}")
                return
            if recorder is not None:
                with critical():
                    recorder.record_metric(metric.name, step, values)
            final_metrics[metric.name] = (step, values)

        periodic = [(every, lambda step, epoch, _s, m=metric: evaluate(m, step, epoch))
                    for metric, every in spec.metrics if every]
        with threads.using(spec.resolved["output"].get("threads")):  # the kernels' team, BLAS limits
            outcome = train(
                rule, state, X, epochs=sched["epochs"], batch_size=sched["batch_size"], shuffle=sched["shuffle"],
                rng=streams["shuffle"], record_every=spec.record["every"],
                on_record=None if recorder is None else (
                    lambda step, epoch, elapsed, st: recorder.record(step, epoch, elapsed, st, position=position)),
                periodic=periodic, progress=Progress(sched["epochs"], enabled=progress), position=position,
                recorded=bool(recorded), record_fields=spec.record["fields"],
                on_checkpoint=None if recorder is None else (lambda st: recorder.checkpoint_if_due(position, st)),
            )
        if outcome.status == "completed":
            for metric, _ in spec.metrics:
                if final_metrics.get(metric.name, (None,))[0] != outcome.steps:
                    evaluate(metric, outcome.steps, outcome.epochs_completed)
        if recorder is not None:
            synthetic = rule.synthesize(state) if outcome.status != "diverged" else None
            if synthetic is not None and spec.replicas > 1:  # the replica axis first, as every field
                synthetic = synthetic.reshape((spec.replicas, -1) + synthetic.shape[1:])
            run_file.end(outcome, state, position, synthetic)
    except BaseException as exc:
        if run_file is None:
            raise
        stopped = run_file.stopped(exc, state)
        if stopped is exc:
            raise
        raise stopped from None

    return RunResult(spec=spec, rule=rule, data=data, state=state, outcome=outcome, path=path,
                     metrics={name: values for name, (_, values) in final_metrics.items()})


def _restore(state: dict, saved: dict, path) -> None:
    """Overwrite a fresh ``state`` with the checkpoint's arrays (same keys, shapes and dtypes)."""
    if set(saved) != set(state):
        raise DataError(f"{path}: the checkpoint holds state arrays {sorted(saved)}, the rule makes {sorted(state)}")
    for key, value in saved.items():
        if value.shape != state[key].shape or value.dtype != state[key].dtype:
            raise DataError(f"{path}: checkpoint array '{key}' is {value.dtype}{list(value.shape)}, "
                            f"the rule makes {state[key].dtype}{list(state[key].shape)}")
        state[key][...] = value
