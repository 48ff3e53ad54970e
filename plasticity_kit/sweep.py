"""Sweeps: one spec with a ``sweep:`` section expanded into many concrete runs.

::

    sweep:
      seed: 7                       # root of every run's seed
      repeats: 5                    # each configuration re-run with re-drawn data (derived seeds)
      replicas: 64                  # networks per run trained side by side from different initial
                                    # weights (sets model.replicas of every run)
      grid:                         # cartesian product over dotted spec keys
        model.n_neurons: [5, 9, 13]
        model.interaction: [uniform, binocular]
      zip:                          # lists walked in step (all the same length), crossed with the grid
        data.params.select: [random_persons, random]
      plot: {x: model.n_neurons, metric: network.selectivity}   # optional figure of the aggregate

Seeds: repeat ``r`` of every configuration runs with ``schedule.seed =
SeedSequence(seed).spawn(repeats)[r].generate_state(1)[0]`` — the configurations of one repeat
share their seed (hence their data subset, when the selection rule is the same), so differences
between configurations are not confounded with different data draws (common random numbers).
Names are built from the parameter values (``n_neurons=5,interaction=uniform,rep=0``); runs are
written to ``<output.dir>/<sweep name>/<run name>/`` and the aggregate to
``<output.dir>/<sweep name>/sweep.csv``.
"""
from __future__ import annotations

import copy
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import SpecError
from .options import SEED_MAX, Option, describe, filename_problem, unknown_key_error
from .spec import OUTPUT, SECTIONS, apply_overrides, read_with_overrides, resolve

SWEEP_KEYS = ("seed", "repeats", "replicas", "grid", "zip", "plot")
MAX_RUNS = 100_000
SWEEP_OPTIONS = {o.name: o for o in (
    Option("seed", "integer", 0, "root of every run's seed", low=0, high=SEED_MAX),
    Option("repeats", "integer", 1, "runs of each configuration", low=1, high=MAX_RUNS),
    Option("replicas", "integer", None, "networks per run", low=1, nullable=True),
)}
PLOT_KEYS = ("x", "metric")
SWEEPABLE = tuple(s for s in SECTIONS if s not in ("name", "description", "sweep"))


@dataclass
class SweepRun:
    """One concrete run of a sweep: its name, swept values, repeat index, seed and raw spec."""

    name: str
    params: dict
    repeat: int
    seed: int
    raw: dict = field(repr=False)
    source: str = "<spec>"

    @property
    def output_dir(self) -> Path:
        return Path(self.raw["output"]["dir"]) / self.name


@dataclass
class Sweep:
    """All runs of a sweep and where they (and the aggregate) are written."""

    name: str
    runs: list
    directory: Path
    keys: list
    plot: dict | None = None


def _check_key(key, where: str) -> str:
    if not isinstance(key, str) or not key or any(not p for p in key.split(".")):
        raise SpecError(where, f"expected a dotted spec key such as model.n_neurons, got {describe(key)}")
    top = key.split(".")[0]
    if top not in SWEEPABLE:
        raise unknown_key_error(f"{where}.{key}" if where else key, top, SWEEPABLE)
    return key


def _values(value, key: str) -> list:
    if not isinstance(value, list) or not value:
        raise SpecError(key, f"expected a non-empty list of values, got {describe(value)}")
    return value


def derived_seeds(seed: int, repeats: int) -> list[int]:
    """The ``schedule.seed`` of each repeat: SeedSequence(seed).spawn(repeats)[r].generate_state(1)[0]."""
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(repeats)]


def _short(keys: list[str]) -> dict[str, str]:
    """The last part of each key, or the whole key where two keys share their last part."""
    last = [k.split(".")[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def _fmt(value) -> str:
    if isinstance(value, dict):
        text = "-".join(_fmt(v) for v in (value.get("name"), *value.get("params", {}).values())
                        if v is not None) if "name" in value else "-".join(_fmt(v) for v in value.values())
    elif isinstance(value, (list, tuple)):
        text = "-".join(_fmt(v) for v in value)
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text)


def run_name(params: dict, repeat: int | None) -> str:
    """``n_neurons=5,interaction=uniform,rep=0`` from the swept values (keys shortened when unique)."""
    short = _short(list(params))
    parts = [f"{short[k]}={_fmt(v)}" for k, v in params.items()]
    if repeat is not None:
        parts.append(f"rep={repeat}")
    return ",".join(parts) or "run"


def expand(raw: dict, source: str = "<spec>", validate: bool = True, preflight: bool = False) -> Sweep:
    """The concrete runs of the spec ``raw`` (one run if it has no ``sweep`` section).

    Every run's spec is validated with :func:`~plasticity_kit.spec.resolve`; an error caused by a
    swept value names the sweep key (``sweep.grid.model.n_neurons``) and the run.  ``preflight``:
    also check each run as ``run`` does before allocating (:func:`~plasticity_kit.spec.preflight`:
    data, batch size, memory, rule), loading each distinct data set once.
    """
    try:
        return _expand(raw, source, validate, {} if preflight else None)
    except SpecError as exc:
        raise exc.with_source(source) if exc.source is None else exc


def _expand(raw: dict, source: str, validate: bool, sizes: dict | None = None) -> Sweep:
    if not isinstance(raw, dict):
        raise SpecError("", "expected a mapping of sections")
    sweep = raw.get("sweep") or {}
    if not isinstance(sweep, dict):
        raise SpecError("sweep", f"expected a mapping with {', '.join(SWEEP_KEYS)}, got {describe(sweep)}")
    for k in sweep:
        if k not in SWEEP_KEYS:
            raise unknown_key_error(f"sweep.{k}", str(k), SWEEP_KEYS)
    seed = SWEEP_OPTIONS["seed"].coerce(sweep.get("seed", 0), "sweep.seed")
    repeats = SWEEP_OPTIONS["repeats"].coerce(sweep.get("repeats", 1), "sweep.repeats")
    replicas = SWEEP_OPTIONS["replicas"].coerce(sweep.get("replicas"), "sweep.replicas")

    grid = sweep.get("grid") or {}
    zipped = sweep.get("zip") or {}
    for section, mapping in (("grid", grid), ("zip", zipped)):
        if not isinstance(mapping, dict):
            raise SpecError(f"sweep.{section}", f"expected a mapping of spec key → list of values, got {describe(mapping)}")
        for key, values in mapping.items():
            _check_key(key, f"sweep.{section}")
            _values(values, f"sweep.{section}.{key}")
    both = set(grid) & set(zipped)
    if both:
        key = sorted(both)[0]
        raise SpecError(f"sweep.zip.{key}", "swept in both grid and zip; keep it in one")
    lengths = {k: len(v) for k, v in zipped.items()}
    if len(set(lengths.values())) > 1:
        key = max(lengths, key=lambda k: lengths[k] != next(iter(lengths.values())))
        raise SpecError(f"sweep.zip.{key}", "zip lists must all have the same length, got "
                        + ", ".join(f"{k}: {n}" for k, n in lengths.items()))
    if "schedule.seed" in grid or "schedule.seed" in zipped:
        raise SpecError("sweep.grid.schedule.seed", "seeds are derived from sweep.seed; use sweep.repeats instead")
    if replicas is not None and ("model.replicas" in grid or "model.replicas" in zipped):
        raise SpecError("sweep.replicas", "model.replicas is swept too; keep one of them")

    base = {k: v for k, v in raw.items() if k != "sweep"}
    name = base.get("name", Path(source).stem if source != "<spec>" else "sweep")
    problem = filename_problem(name) if isinstance(name, str) and name else "it names the output folder"
    if problem:
        raise SpecError("name", f"expected a sweep name that is a file name (it names the output folder), "
                        f"got {describe(name)} ({problem})")
    for section in ("output", "schedule", "model"):  # each run's seed, folder and replicas are set in these
        if base.get(section) is not None and not isinstance(base[section], dict):
            raise SpecError(section, f"expected a mapping, got {describe(base[section])}")
    output = base.get("output") or {}
    directory = Path(OUTPUT.validate(output, "output")["dir"]) / name  # output.dir checked before it is a path

    keys = list(grid) + list(zipped)
    count = math.prod(len(v) for v in grid.values()) * (next(iter(lengths.values())) if zipped else 1) * repeats
    if count > MAX_RUNS:
        raise SpecError("sweep", f"expected at most {MAX_RUNS:,} runs, got {count:,} (grid × zip × repeats)")
    zip_rows = [dict(zip(zipped, row)) for row in zip(*zipped.values())] if zipped else [{}]
    seeds = derived_seeds(seed, repeats)
    runs, names = [], set()
    for combo in itertools.product(*grid.values()):
        for zrow in zip_rows:
            params = {**dict(zip(grid, combo)), **zrow}
            for r in range(repeats):
                rname = run_name(params, r if repeats > 1 else None)
                if rname in names:
                    raise SpecError("sweep", f"two runs would both be named {rname!r}; make the swept values distinct")
                names.add(rname)
                try:
                    run_raw = apply_overrides(base, [(k, copy.deepcopy(v)) for k, v in params.items()])
                except SpecError as exc:  # a list index out of range or not a number, under a swept key
                    swept = next((k for k in params if k == exc.key or k.startswith(exc.key + ".")), None)
                    raise exc.with_prefix(f"sweep.{'zip' if swept in zipped else 'grid'}") from None
                for section in ("output", "schedule", "model"):
                    if run_raw.get(section) is not None and not isinstance(run_raw[section], dict):
                        section_key = "grid" if section in grid else "zip"
                        raise SpecError(f"sweep.{section_key}.{section}", f"expected a mapping, got "
                                        f"{describe(run_raw[section])} (run {rname})")
                run_raw["name"] = rname
                run_raw["output"] = {**(run_raw.get("output") or {}), "dir": str(directory)}
                run_raw["schedule"] = {**(run_raw.get("schedule") or {}), "seed": seeds[r]}
                if replicas is not None:
                    run_raw["model"] = {**(run_raw.get("model") or {}), "replicas": replicas}
                run = SweepRun(rname, params, r, seeds[r], run_raw, source)
                if validate:
                    _validate(run, grid, sizes)
                runs.append(run)

    plot = sweep.get("plot")
    if plot is not None:
        if not isinstance(plot, dict):
            raise SpecError("sweep.plot", f"expected {{x: swept key, metric: name}}, got {describe(plot)}")
        for k in plot:
            if k not in PLOT_KEYS:
                raise unknown_key_error(f"sweep.plot.{k}", str(k), PLOT_KEYS)
        if plot.get("x") not in keys:
            raise SpecError("sweep.plot.x", f"expected one of the swept keys ({', '.join(keys) or 'none'}), "
                            f"got {describe(plot.get('x'))}")
        if not isinstance(plot.get("metric"), str):
            raise SpecError("sweep.plot.metric", f"expected a metric column such as network.selectivity, "
                            f"got {describe(plot.get('metric'))}")
    return Sweep(name=name, runs=runs, directory=directory, keys=keys, plot=plot)


def _validate(run: SweepRun, grid: dict, sizes: dict | None = None) -> None:
    """Resolve ``run``'s spec (and with ``sizes``, a cache of data config → (samples, inputs),
    preflight it); a SpecError names the sweep key that caused it and the run."""
    from .spec import dump_yaml, preflight

    try:
        spec = resolve(run.raw, run.source)
        if sizes is not None:
            data_key = dump_yaml({"data": spec.resolved["data"], "seed": spec.schedule["seed"]})
            if data_key not in sizes:
                data, _ = preflight(spec)
                sizes[data_key] = data.X.shape
            else:
                try:
                    spec.dataset.check_size(sizes[data_key][0])
                    spec.build_rule(sizes[data_key][1], sizes[data_key][0])
                except SpecError as exc:
                    raise exc.with_source(spec.source) if exc.source is None else exc
    except SpecError as exc:
        if exc.key == "name":  # the run name is made of the swept values
            section = "grid" if grid else "zip"
            raise SpecError(f"sweep.{section}", f"the swept values make the run name {describe(run.name)}, "
                            f"which is not a file name: {exc.message.rsplit('(', 1)[-1].rstrip(')')}; "
                            "use shorter values", exc.source) from None
        for key in run.params:
            if exc.key == key or exc.key.startswith(key + ".") or exc.key.startswith(key + "["):
                section = "grid" if key in grid else "zip"
                raise SpecError(f"sweep.{section}.{exc.key}", f"{exc.message} (run {run.name})", exc.source) from None
        if sizes is not None:
            raise SpecError(exc.key, f"{exc.message} (run {run.name})", exc.source) from None
        raise


def load_sweep(path, overrides=(), validate: bool = True) -> Sweep:
    """Read the spec at ``path``, apply ``--set`` overrides and expand its sweep."""
    return expand(read_with_overrides(path, overrides), str(path), validate)




def finished(run: SweepRun) -> dict | None:
    """The saved record of ``run`` if its run.h5 says ``completed`` (then a resumed sweep skips it)."""
    import json

    from .runfile_check import MalformedRunFile, check_run_file

    try:
        if check_run_file(run.output_dir / "run.h5")["status"] != "completed":
            return None  # a damaged file is not finished either: the run is done again
        record = json.loads((run.output_dir / "sweep-run.json").read_text())
    except (MalformedRunFile, OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("status") == "completed" else None


def run_sweep(sweep: Sweep, executor, log=print) -> list[dict]:
    """Run every unfinished run of ``sweep`` on ``executor``; write and return the aggregate.

    Runs whose run.h5 is ``completed`` are skipped (their saved records are reused); a failed
    run — an error, or a worker process that died — is recorded with ``status: failed`` and the
    reason.  The aggregate table is rewritten after each run; on Ctrl-C or SIGTERM the executor
    stops its workers, the runs not finished are recorded ``interrupted`` in the table and the
    KeyboardInterrupt goes on (exit status 130), so a restarted sweep runs exactly those again,
    each from its checkpoint where it has one (``executors.run_task``).
    """
    from .aggregate import write_table
    from .executors import run_task
    from .scheduler import Terminated, signals_raise

    records, todo = {}, []
    for run in sweep.runs:
        done = finished(run)
        if done is not None:
            records[run.name] = done
        else:
            todo.append(run)
    log(f"{sweep.name}: {len(sweep.runs)} runs, {len(records)} already completed, {len(todo)} to run")
    order = {run.name: i for i, run in enumerate(sweep.runs)}
    try:
        with signals_raise():  # SIGTERM → Terminated here too: the executor stops its workers
            for record in executor.map(run_task, todo):
                records[record["name"]] = record
                log(f"[{len(records)}/{len(sweep.runs)}] {record['name']}: {record['status']} in "
                    f"{record['seconds']:.1f} s" + (f" — {record['message']}" if record["status"] != "completed" else ""))
                write_table(sorted(records.values(), key=lambda r: order[r["name"]]), sweep)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (Terminated): what did not finish is interrupted
        why = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"
        for run in todo:
            if run.name not in records:
                records[run.name] = {"name": run.name, "repeat": run.repeat, "seed": run.seed, "params": run.params,
                                     "status": "interrupted", "message": f"the sweep was stopped ({why})",
                                     "metrics": {}, "seconds": 0.0}
        write_table(sorted(records.values(), key=lambda r: order[r["name"]]), sweep)
        raise
    rows = sorted(records.values(), key=lambda r: order[r["name"]])
    write_table(rows, sweep)
    return rows
