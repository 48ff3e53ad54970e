"""Run specs: YAML loading, ``--set`` overrides, validation with key-path errors, defaults.

A spec has the sections ``name``, ``description``, ``data``, ``model``, ``schedule``,
``record``, ``output`` and ``exporters``.  Pluggable things are written ``{name: ..., params:
{...}}`` (or just the name); their params are checked against the plugin's own options schema.
:func:`load_spec` returns a :class:`RunSpec` holding the built objects and ``resolved``: the
complete spec, every default filled in, as recorded in the run file.
"""
from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .errors import SpecError
from .options import (SEED_MAX, Option, Schema, describe, did_you_mean, filename_problem, path_problem,
                      text_problem, unknown_key_error)
from .plugins import Registry, registry
from .rules.base import COMPONENTS, Model, Rule

SECTIONS = ("name", "description", "data", "model", "schedule", "record", "output", "exporters", "metrics",
            "sweep")  # sweep: expanded by plasticity_kit.sweep before resolve, ignored here
DEFAULT_EXPORTERS = ("image_grid", "summary")
DEFAULT_FRAMES = 100
MAX_SPEC_BYTES = 4 << 20  # a spec is a few kB; an inline interaction matrix of 300² numbers ~1 MB
MAX_DEPTH = 50  # nesting levels of a spec (the deepest shipped spec has 6)
MAX_VALUES = 1_000_000  # values in the spec once YAML aliases are expanded ("billion laughs")
PATH_MAX = 4096

SCHEDULE = Schema(
    Option("epochs", "integer", doc="passes over the data", low=1),
    Option("batch_size", "integer", doc="samples per mini-batch (the last batch of an epoch may be smaller)", low=1),
    Option("shuffle", "bool", True, "reshuffle the samples every epoch"),
    Option("seed", "integer", 0, "seed of every random draw of the run (data subset, initial weights, shuffling)",
           low=0, high=SEED_MAX),
)
MODEL_KEYS = ("rule", "n_neurons", "dtype", "replicas") + COMPONENTS
MODEL = Schema(
    Option("n_neurons", "integer", doc="number of neurons (hidden units)", low=1),
    Option("dtype", "choice", "float32", "floating type of the state", choices=("float32", "float64")),
    Option("replicas", "integer", 1, "independent networks trained side by side on the same batches, differing "
           "in their initial state (a leading axis of every state array)", low=1),
)
RECORD = Schema(
    Option("fields", "any", None, "state arrays recorded over time (default: the rule's)", nullable=True),
    Option("every", "integer", None, "record every N steps (default: at most ~100 frames per run and one "
           "per 4096 samples trained)", low=1, nullable=True),
    Option("compression", "choice", "none", "HDF5 compression of recorded fields (float weights barely compress: "
           "gzip saves ~20% of the file for 3-4x the recording time)", choices=("none", "gzip", "lzf")),
    Option("dtype", "choice", None, "floating type the recorded fields are stored as (default: the state's); "
           "float16 halves the file", choices=("float16", "float32", "float64"), nullable=True),
    Option("swmr", "bool", False, "write the run file in HDF5 SWMR mode, so that readers (plasticity-kit watch) "
           "see a consistent file while it is written"),
    Option("checkpoint_seconds", "number", 30.0, "wall-clock seconds between resume checkpoints (taken at a "
           "record, or at the end of a kernel call that took its frames inside; also at an interruption); "
           "0: at every one", low=0, high=86400),
)
EVERY = Option("every", "integer", None, "also compute every N steps (default: only at the end)", low=1, nullable=True)
OUTPUT = Schema(Option("dir", "string", "runs", "the run is written to <dir>/<name>/"),
                Option("threads", "integer", None, "threads of the kernels (never changes the result; default: "
                       "$PLASTICITY_KIT_THREADS, else the CPUs this process may use)", low=1, high=1024,
                       nullable=True))


@dataclass
class RunSpec:
    """A validated spec with its plugin objects built."""

    name: str
    source: str
    dataset: Any
    rule_class: type
    model: Model
    schedule: dict
    record: dict
    output_dir: Path
    exporters: list
    resolved: dict
    metrics: list = field(default_factory=list)
    raw: dict = field(repr=False, default_factory=dict)
    replicas: int = 1
    memory: Any = field(repr=False, default=None)  # the memory.Estimate of the last build_rule

    def build_rule(self, n_inputs: int, n_samples: int | None = None) -> Rule:
        """The rule for ``n_inputs`` inputs; with ``model.replicas`` R > 1, an ensemble of R
        networks (:class:`~plasticity_kit.rules.replicas.Replicas`).

        First checks, before anything is allocated, that the run fits in the available memory
        (:func:`plasticity_kit.memory.check`; ``n_samples``: the data set's size, when known).
        SpecError names the key.
        """
        from .memory import check
        from .rules.replicas import Replicas

        self.memory = check(self, n_samples or 0, n_inputs)
        self.model.n_inputs = n_inputs
        self.model.epochs = self.schedule["epochs"]
        rule = self.rule_class(self.model)
        return Replicas(rule, self.replicas) if self.replicas > 1 else rule

    def to_yaml(self) -> str:
        return dump_yaml(self.resolved)


def dump_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, allow_unicode=True)


class SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no tags that build Python objects) that refuses nesting deeper than
    :data:`MAX_DEPTH` while composing, before recursion can run out."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


PLAIN = (dict, list, str, int, float, bool, type(None))


def _kind_of(value) -> str:
    names = {"date": "a date", "datetime": "a timestamp", "bytes": "binary data", "set": "a set",
             "tuple": "a pair"}
    return names.get(type(value).__name__, f"a {type(value).__name__}")


def check_values(data, key: str = "") -> None:
    """SpecError unless ``data`` is a tree of plain YAML values: mappings with text keys, lists,
    text without NUL, numbers, true/false, null — no more than :data:`MAX_VALUES` of them once
    aliases are expanded, none of which contains itself."""
    sizes: dict[int, int] = {}
    # iterative post-order walk: (value, key path, children visited?)
    stack = [(data, key, False)]
    active: set[int] = set()
    while stack:
        value, where, done = stack.pop()
        if isinstance(value, (dict, list)):
            ident = id(value)
            if done:
                active.discard(ident)
                children = value.values() if isinstance(value, dict) else value
                total = 1 + sum(sizes.get(id(c), 1) for c in children)
                if total > MAX_VALUES:
                    raise SpecError(where, f"expands to more than {MAX_VALUES:,} values (YAML aliases "
                                    "repeating an anchor?); a spec holds at most that many")
                sizes[ident] = total
                continue
            if ident in sizes:
                continue  # an alias of a value already checked
            if ident in active:
                raise SpecError(where, "contains itself (a YAML alias inside its own anchor)")
            active.add(ident)
            stack.append((value, where, True))
            if isinstance(value, dict):
                for k, v in value.items():
                    if not isinstance(k, str):
                        shown = describe(k) if isinstance(k, PLAIN) else _kind_of(k)
                        raise SpecError(f"{where}.{shown}" if where else shown,
                                        f"expected a text key, got the key {shown}; quote it")
                    problem = text_problem(k)
                    if problem:
                        raise SpecError(f"{where}.{describe(k)}" if where else describe(k),
                                        f"expected a text key, got {describe(k)} ({problem})")
                    stack.append((v, f"{where}.{k}" if where else k, False))
            else:
                for i, v in enumerate(value):
                    stack.append((v, f"{where}[{i}]", False))
        elif isinstance(value, str):
            problem = text_problem(value)
            if problem:
                raise SpecError(where, f"expected text, got {describe(value)} ({problem})")
        elif not isinstance(value, PLAIN):
            raise SpecError(where, f"expected a plain YAML value (text, number, true/false, null, list or "
                            f"mapping), got {_kind_of(value)} {describe(value)}; quote it to make it text")


def parse_yaml(text: str):
    """The value in ``text``, read with :class:`SpecLoader`; yaml.YAMLError or ValueError (an
    integer of more than 4300 digits) for text that is not YAML."""
    loader = SpecLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: str | os.PathLike) -> dict:
    """The mapping in a YAML file; SpecError naming the file (and line) if it cannot be read."""
    source = str(path)
    try:
        size = os.path.getsize(path)
        if size > MAX_SPEC_BYTES:
            raise SpecError("", f"the spec file is {size:,} bytes; a spec has at most {MAX_SPEC_BYTES:,}", source)
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("", "spec file not found", source) from None
    except UnicodeDecodeError as exc:
        raise SpecError("", f"the spec is not UTF-8 text (byte {exc.start})", source) from None
    except OSError as exc:
        raise SpecError("", f"cannot read spec: {exc.strerror}", source) from None
    except ValueError as exc:  # a path with NUL
        raise SpecError("", f"cannot read spec: {exc}", source) from None
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError("", f"invalid YAML: {where}{problem}", source) from None
    except ValueError as exc:  # int('1' * 5000): Python's limit on the digits of an integer
        raise SpecError("", f"invalid YAML: {exc}", source) from None
    if data is None:
        raise SpecError("", "the spec is empty", source)
    if not isinstance(data, dict):
        raise SpecError("", f"expected a mapping of sections ({', '.join(SECTIONS)}), got {describe(data)}", source)
    try:
        check_values(data)
    except SpecError as exc:
        raise exc.with_source(source) from None
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``"model.n_neurons=9"`` → ``("model.n_neurons", 9)`` (the value is read as YAML)."""
    if "=" not in text:
        raise SpecError("--set", f"expected key.path=value, got {text!r}")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise SpecError("--set", f"expected key.path=value, got {text!r}")
    try:
        parsed = parse_yaml(value) if value.strip() else ""
    except (yaml.YAMLError, ValueError):
        parsed = value
    check_values(parsed, key)
    return key, parsed


def _list_index(items: list, part: str, where: str) -> int:
    """``part`` read as an index into ``items`` (the list at ``where``); SpecError otherwise."""
    size = f"{len(items)} item{'s' if len(items) != 1 else ''}" + (f" (0 to {len(items) - 1})" if items else "")
    if re.fullmatch(r"-?[0-9]+", part) is None:
        raise SpecError(f"{where}.{part}", f"expected a list index: {where} is a list of {size}, got {part!r}")
    index = int(part)
    if not 0 <= index < len(items):
        raise SpecError(f"{where}.{part}", f"index {index} out of range: {where} has {size}")
    return index


def apply_overrides(raw: dict, overrides) -> dict:
    """A copy of ``raw`` with every ``key.path=value`` override set (intermediate mappings made);
    an integer part indexes into a list (``model.layers.1.n_neurons=64``)."""
    out = copy.deepcopy(raw)
    for item in overrides or ():
        key, value = parse_override(item) if isinstance(item, str) else item
        node = out
        parts = key.split(".")
        for depth, part in enumerate(parts):
            if isinstance(node, list):
                part = _list_index(node, part, ".".join(parts[:depth]))
            if depth == len(parts) - 1:
                node[part] = value
                break
            nxt = node[part] if isinstance(node, list) else node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif isinstance(nxt, str) and parts[depth + 1] in ("name", "params"):
                nxt = node[part] = {"name": nxt}  # `rule: bcm` shorthand, then --set model.rule.params.x=…
            elif not isinstance(nxt, (dict, list)):
                raise SpecError(".".join(parts[: depth + 1]), f"--set {key}: cannot set a key inside {describe(nxt)}")
            node = nxt
    return out


def _check_keys(mapping: dict, allowed, key: str) -> None:
    for name in mapping:
        if name not in allowed:
            raise unknown_key_error(f"{key}.{name}" if key else str(name), str(name), allowed)


def _section(raw: dict, name: str, required: bool = True) -> dict:
    value = raw.get(name)
    if value is None:
        if required:
            raise SpecError(name, "missing section")
        return {}
    if not isinstance(value, dict):
        raise SpecError(name, f"expected a mapping, got {describe(value)}")
    return value


def _plugin_ref(value, key: str, extra_keys=()) -> tuple[str, dict]:
    """``"adam"`` or ``{name: adam, params: {...}}`` → ``("adam", {...})``."""
    if isinstance(value, str):
        return value, {}
    if not isinstance(value, dict):
        raise SpecError(key, f"expected a plugin name or {{name: ..., params: {{...}}}}, got {describe(value)}")
    _check_keys(value, ("name", "params") + tuple(extra_keys), key)
    name = value.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{key}.name", f"expected a plugin name, got {describe(name)}")
    params = value.get("params") or {}
    if not isinstance(params, dict):
        raise SpecError(f"{key}.params", f"expected a mapping of parameters, got {describe(params)}")
    return name, params


def _resolve_paths(params: dict, schema: Schema, base_dir: Path | None) -> dict:
    """Relative ``path`` options that do not exist from the current directory are read relative to the spec file."""
    if base_dir is None:
        return params
    out = dict(params)
    for opt in schema:
        value = out.get(opt.name)
        if opt.kind == "path" and isinstance(value, str) and not os.path.isabs(value) and not os.path.exists(value):
            candidate = base_dir / value
            if candidate.exists():
                out[opt.name] = str(candidate)
    return out


def _build(kind, value, key: str, base_dir, extra_keys=()):
    name, params = _plugin_ref(value, key, extra_keys)
    cls = kind.get(name, f"{key}.name" if isinstance(value, dict) else key)
    obj = cls.from_config(params, f"{key}.params")
    obj.params = _resolve_paths(obj.params, cls.options, base_dir)
    return obj


def resolve(raw: dict, source: str = "<spec>", reg: Registry | None = None) -> RunSpec:
    """Validate ``raw`` (a parsed spec) and build its objects; SpecError carries ``source``."""
    try:
        return _resolve(raw, source, reg or registry())
    except SpecError as exc:
        raise exc.with_source(source) if exc.source is None else exc


def _resolve(raw: dict, source: str, reg: Registry) -> RunSpec:
    if not isinstance(raw, dict):
        raise SpecError("", "expected a mapping of sections")
    _check_keys(raw, SECTIONS, "")
    base_dir = Path(source).resolve().parent if os.path.exists(source) else None

    name = raw.get("name", Path(source).stem if source != "<spec>" else "run")
    problem = filename_problem(name) if isinstance(name, str) and name else "it names the output folder"
    if problem:
        raise SpecError("name", f"expected a run name that is a file name (it names the output folder), "
                        f"got {describe(name)} ({problem})")
    description = raw.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise SpecError("description", f"expected a string, got {describe(description)}")

    # data
    if raw.get("data") is None:
        raise SpecError("data", f"missing section; expected a data set: one of {', '.join(reg.datasets)}")
    dataset = _build(reg.datasets, raw["data"], "data", base_dir)

    # model
    model_raw = _section(raw, "model")
    if "layers" in model_raw:  # a stack of layers (plasticity_kit.model.stack)
        from .model.stack import resolve_layers

        rule_cls, model, model_resolved = resolve_layers(model_raw, reg, base_dir)
        rule_name, basic = "stack", {"replicas": 1}
    else:
        _check_keys(model_raw, MODEL_KEYS, "model")
        if "rule" not in model_raw:
            raise SpecError("model.rule", f"missing; expected one of the installed rules: {', '.join(reg.rules)}")
        rule_name, rule_params = _plugin_ref(model_raw["rule"], "model.rule")
        rule_cls = reg.rules.get(rule_name, "model.rule.name" if isinstance(model_raw["rule"], dict) else "model.rule")
        params = rule_cls.options.validate(rule_params, "model.rule.params")
        params = _resolve_paths(params, rule_cls.options, base_dir)
        basic = MODEL.validate({k: v for k, v in model_raw.items() if k in ("n_neurons", "dtype", "replicas")}, "model")
        components = {}
        for comp in COMPONENTS:
            value = model_raw.get(comp)
            if comp not in rule_cls.uses:
                if value is not None:
                    raise SpecError(f"model.{comp}", f"rule '{rule_name}' does not use an {comp}; remove this key")
                continue
            if value is None:
                value = rule_cls.defaults.get(comp)
                if value is None:
                    raise SpecError(f"model.{comp}", f"missing; rule '{rule_name}' needs an {comp}")
            components[comp] = _build(getattr(reg, comp + "s"), value, f"model.{comp}", base_dir)
        model = Model(n_inputs=0, n_neurons=basic["n_neurons"], dtype=np.dtype(basic["dtype"]), params=params, **components)
        model_resolved = {
            "rule": {"name": rule_name, "params": params},
            "n_neurons": model.n_neurons,
            "dtype": basic["dtype"],
            "replicas": basic["replicas"],
            **{comp: obj.to_config() for comp, obj in components.items()},
        }

    # schedule
    schedule = SCHEDULE.validate(_section(raw, "schedule"), "schedule")
    dataset.min_samples = schedule["batch_size"]  # a batch larger than the data is refused when it loads

    # record
    record = RECORD.validate(_section(raw, "record", required=False), "record")
    fields = record["fields"]
    if fields is None:
        fields = list(rule_cls.default_record)
    if isinstance(fields, str):
        fields = [fields]
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise SpecError("record.fields", f"expected a list of field names, got {describe(fields)}")
    for i, f in enumerate(fields):
        if f not in rule_cls.fields:
            raise SpecError(
                f"record.fields[{i}]",
                f"rule '{rule_name}' has no field {f!r}{did_you_mean(f, rule_cls.fields)}; "
                f"recordable fields: {', '.join(rule_cls.fields)}",
            )
    record["fields"] = fields

    output = OUTPUT.validate(_section(raw, "output", required=False), "output")
    problem = path_problem(output["dir"])
    run_file = os.path.join(output["dir"], name, "run.h5")
    if problem is None and len(os.fsencode(os.path.abspath(run_file))) >= PATH_MAX:
        problem = f"the run file {describe(run_file)} would be longer than {PATH_MAX - 1} bytes"
    if problem:
        raise SpecError("output.dir", f"expected a folder path, got {describe(output['dir'])} ({problem})")

    exporters_raw = raw.get("exporters", list(DEFAULT_EXPORTERS))
    if exporters_raw is None:
        exporters_raw = []
    if not isinstance(exporters_raw, list):
        raise SpecError("exporters", f"expected a list of exporters, got {describe(exporters_raw)}")
    exporters = [_build(reg.exporters, item, f"exporters[{i}]", base_dir) for i, item in enumerate(exporters_raw)]

    metrics_raw = raw.get("metrics") or []
    if not isinstance(metrics_raw, list):
        raise SpecError("metrics", f"expected a list of metrics, got {describe(metrics_raw)}")
    metrics = []
    for i, item in enumerate(metrics_raw):
        key = f"metrics[{i}]"
        metric = _build(reg.metrics, item, key, base_dir, extra_keys=("every",))
        every = EVERY.coerce(item.get("every") if isinstance(item, dict) else None, f"{key}.every")
        metrics.append((metric, every))

    resolved = {
        "name": name,
        "description": description,
        "data": dataset.to_config(),
        "model": model_resolved,
        "schedule": schedule,
        "record": record,
        "output": output,
        "exporters": [e.to_config() for e in exporters],
        "metrics": [{**m.to_config(), "every": every} for m, every in metrics],
    }
    return RunSpec(
        name=name, source=source, dataset=dataset, rule_class=rule_cls, model=model, schedule=schedule,
        record=record, output_dir=Path(output["dir"]) / name, exporters=exporters, resolved=resolved, raw=raw,
        metrics=metrics, replicas=basic["replicas"],
    )


def preflight(spec: RunSpec):
    """Everything ``run`` does before it allocates the state: load the data (as seeded by
    ``schedule.seed``), check the batch against its size and the memory estimate, build the rule.
    Returns ``(data, rule)``; SpecError/DataError naming the spec file and key otherwise."""
    from .datasets.base import Data
    from .errors import DataError
    from .runner import seed_streams

    try:
        data = spec.dataset.load(seed_streams(spec.schedule["seed"])["data"])
        if not isinstance(data, Data) or np.ndim(data.X) != 2 or len(data.X) == 0:
            raise DataError(f"data set '{spec.dataset.name}' gave no samples")
        rule = spec.build_rule(int(data.X.shape[1]), int(data.X.shape[0]))
    except SpecError as exc:
        raise exc.with_source(spec.source) if exc.source is None else exc
    return data, rule


def read_with_overrides(path: str | os.PathLike, overrides=()) -> dict:
    """The raw spec at ``path`` with every ``--set`` override applied (errors name the file)."""
    raw = read_yaml(path)
    try:
        return apply_overrides(raw, overrides)
    except SpecError as exc:
        raise exc.with_source(str(path)) from None


def load_spec(path: str | os.PathLike, overrides=(), reg: Registry | None = None) -> RunSpec:
    """Read, override and validate the spec at ``path``."""
    return resolve(read_with_overrides(path, overrides), str(path), reg)
