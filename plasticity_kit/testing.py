"""Conformance suites for plugin authors (and every built-in), in the style of Hydra and Nengo.

Subclass :class:`RuleTestSuite` in a pytest test module of your plugin package; the subclass
names the rule as a spec does and inherits a set of tests of the :class:`~plasticity_kit.rules.Rule`
contract, down to a real run written to HDF5::

    # tests/test_my_rule.py
    from plasticity_kit.testing import RuleTestSuite

    class TestMyRule(RuleTestSuite):
        rule = "my_rule"                 # the name used in specs (model.rule.name)
        params = {"lr": 0.01}            # model.rule.params for every test (default: none)
        components = {"optimizer": {"name": "sgd", "params": {"lr": 0.05}}}   # optional

The tests use small synthetic data (``n_samples`` × ``n_inputs`` uniform in [0, 1]; override
:meth:`RuleTestSuite.data` for other data) and the plugin as installed: the rule must be
reachable through the ``plasticity_kit`` entry-point group, exactly as ``plasticity-kit run``
finds it.  To test plugin objects that are not installed, list them in ``plugins``.

A test that your rule fails on purpose can be overridden in the subclass (e.g. wrapped in
``pytest.mark.xfail(strict=True, reason=...)`` calling ``super()``).

Two helpers are public too: :func:`array_dataset` (a plugin registering an in-memory data set, to
run specs on arrays) and :func:`make_rule` (a rule instance built exactly as a spec builds it).
"""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import pytest

from .datasets.base import Data, Dataset
from .errors import SpecError
from .hookspecs import hookimpl
from .options import Schema
from .plugins import Registry, build_registry
from .rules.base import COMPONENTS, Rule

__all__ = ["RuleTestSuite", "array_dataset", "make_rule"]

DTYPES = ("float32", "float64")


def array_dataset(X, *, name: str = "arrays", image_shape: tuple | None = None, labels=None):
    """A plugin object registering a data set ``name`` whose ``load`` returns the rows of ``X``.

    Pass it to :func:`plasticity_kit.plugins.build_registry` (``extra_plugins=[...]``) and the
    registry to :func:`plasticity_kit.spec.resolve` (``reg=...``); the spec then says
    ``data: {name: <name>}``.  ``X`` is copied once, as float64.
    """
    X = np.array(X, dtype=np.float64, copy=True)
    if X.ndim != 2:
        raise ValueError(f"array_dataset expects a 2-D array (n_samples, n_inputs), got shape {X.shape}")
    checksum = hashlib.sha256(np.ascontiguousarray(X).tobytes()).hexdigest()
    dataset_name = name

    class ArrayDataset(Dataset):
        """In-memory array data set (plasticity_kit.testing.array_dataset)."""

        name = dataset_name

        def load(self, rng):
            return Data(X=X.copy(), name=dataset_name, indices=np.arange(len(X)), image_shape=image_shape,
                        labels=None if labels is None else np.asarray(labels), source="memory",
                        checksum=checksum)

    class ArrayDatasetPlugin:
        """Registers the in-memory data set."""

        dataset = ArrayDataset

        @hookimpl
        def register_datasets(self, register):
            register(ArrayDataset)

    return ArrayDatasetPlugin()


def _spec(rule: str, params: dict | None, components: dict | None, *, n_neurons: int, dtype: str,
          data: Any = None, schedule: dict | None = None, record: dict | None = None,
          output_dir: str | None = None, exporters: Sequence = ()) -> dict:
    model = {"rule": {"name": rule, "params": dict(params or {})}, "n_neurons": n_neurons, "dtype": dtype}
    model.update(copy.deepcopy(dict(components or {})))
    raw = {
        "name": f"conformance-{rule}",
        "data": data if data is not None else {"name": "olivetti"},  # a placeholder: resolve loads nothing
        "model": model,
        "schedule": dict(schedule or {"epochs": 1, "batch_size": 1}),
        "exporters": list(exporters),
    }
    if record is not None:
        raw["record"] = dict(record)
    if output_dir is not None:
        raw["output"] = {"dir": str(output_dir)}
    return raw


def make_rule(rule: str, params: dict | None = None, components: dict | None = None, *, n_inputs: int,
              n_neurons: int, dtype: str = "float64", reg: Registry | None = None) -> Rule:
    """An instance of the rule named ``rule``, built the way a spec builds it.

    ``params`` are ``model.rule.params``, ``components`` the other ``model`` keys
    (``{"optimizer": {"name": "adam", "params": {"lr": 1e-3}}}``); both are validated and
    defaults filled in by :func:`plasticity_kit.spec.resolve` against ``reg`` (default: the
    process-wide registry, i.e. built-ins plus installed entry points).  Call
    ``rule.init_state(np.random.default_rng(seed))`` for a state.
    """
    from .spec import resolve

    spec = resolve(_spec(rule, params, components, n_neurons=n_neurons, dtype=dtype),
                   source=f"<make_rule {rule}>", reg=reg)
    return spec.build_rule(n_inputs)


def _copy_state(state: dict) -> dict:
    return {key: np.array(value, copy=True) for key, value in state.items()}


def _state_diff(a: dict, b: dict) -> list[str]:
    """Names of the arrays that differ (in keys, shape, dtype or values) between two states."""
    diff = sorted(set(a) ^ set(b))
    for key in sorted(set(a) & set(b)):
        x, y = a[key], b[key]
        if x.shape != y.shape or x.dtype != y.dtype or not np.array_equal(x, y, equal_nan=True):
            diff.append(key)
    return diff


class RuleTestSuite:
    """Conformance tests of one learning rule.  Subclass it (``class TestMyRule(RuleTestSuite)``)
    and set ``rule``; every other attribute has a working default.

    Attributes (class attributes of the subclass):

    ``rule``
        the rule's spec name (required).
    ``params``
        ``model.rule.params`` used by every test.
    ``components``
        other ``model`` keys (activation, interaction, optimizer, initializer).
    ``n_inputs``, ``n_neurons``, ``n_samples``
        sizes of the synthetic problem.
    ``batch_size``, ``steps``
        mini-batch size and number of steps of the unit tests.
    ``epochs``
        epochs of the end-to-end run (``n_samples`` need not divide by ``batch_size``: the last
        batch of an epoch is then smaller, as in real runs).
    ``exporters``
        exporters of the end-to-end run (spec names).
    ``plugin_name``
        if set, the plugin that must own the rule (for an installed package, the entry-point
        name in group ``plasticity_kit``).
    ``plugins``
        plugin objects (modules or instances with ``@hookimpl`` functions) to test instead of the
        installed entry points; leave empty to test the installed package.
    ``random_init``
        the initial state is drawn from the generator given to ``init_state`` (set False for a
        rule whose initial state is deterministic).
    ``seed``
        seed of the data and of the initial states.
    """

    __test__ = False  # the base class itself holds no rule; subclasses are collected

    rule: ClassVar[str] = ""
    params: ClassVar[dict] = {}
    components: ClassVar[dict] = {}
    n_inputs: ClassVar[int] = 16
    n_neurons: ClassVar[int] = 4
    n_samples: ClassVar[int] = 30
    batch_size: ClassVar[int] = 8
    steps: ClassVar[int] = 5
    epochs: ClassVar[int] = 2
    exporters: ClassVar[tuple] = ("summary",)
    plugin_name: ClassVar[str | None] = None
    plugins: ClassVar[tuple] = ()
    random_init: ClassVar[bool] = True
    seed: ClassVar[int] = 0

    DATASET = "plasticity_kit_testing_data"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__test__" not in cls.__dict__:
            cls.__test__ = True

    # ------------------------------------------------------------------ helpers (override freely)

    def data(self, rng: np.random.Generator) -> np.ndarray:
        """Training inputs (n_samples × n_inputs), by default uniform in [0, 1] like image data."""
        return rng.random((self.n_samples, self.n_inputs))

    def _cache(self) -> dict:
        cls = type(self)
        if "_conformance_cache" not in cls.__dict__:
            cls._conformance_cache = {}
        return cls._conformance_cache

    def inputs(self) -> np.ndarray:
        """The suite's data (float64), checked for shape and finiteness, drawn once per class."""
        cache = self._cache()
        if "X" not in cache:
            assert self.rule, f"{type(self).__name__}: set `rule = \"<spec name>\"` on the test class"
            X = np.asarray(self.data(np.random.default_rng(self.seed)), dtype=np.float64)
            assert X.shape == (self.n_samples, self.n_inputs), (
                f"{type(self).__name__}.data() returned shape {X.shape}, expected "
                f"(n_samples, n_inputs) = ({self.n_samples}, {self.n_inputs})")
            assert np.isfinite(X).all(), f"{type(self).__name__}.data() returned NaN or inf"
            cache["X"] = X
        return cache["X"]

    def registry(self) -> Registry:
        """Built-ins + installed entry points (or ``plugins``) + the suite's in-memory data set."""
        cache = self._cache()
        if "registry" not in cache:
            side = int(round(np.sqrt(self.n_inputs)))
            shape = (side, side) if side * side == self.n_inputs else None
            data = array_dataset(self.inputs(), name=self.DATASET, image_shape=shape)
            cache["registry"] = build_registry(load_entry_points=not self.plugins,
                                               extra_plugins=[*self.plugins, data])
        return cache["registry"]

    def rule_class(self) -> type:
        """The registered class of ``rule`` (fails with what is installed when it is missing)."""
        reg = self.registry()
        assert self.rule in reg.rules, self._not_registered(reg)
        return reg.rules.classes[self.rule]

    def _not_registered(self, reg: Registry) -> str:
        where = ("the plugins listed in `plugins`" if self.plugins
                 else "the installed plugins (entry-point group 'plasticity_kit')")
        return (f"rule {self.rule!r} is not registered by {where}; registered rules: "
                f"{', '.join(reg.rules) or 'none'}.  Is your package installed (pip install -e .) and does "
                f"its pyproject.toml declare [project.entry-points.plasticity_kit] with a module whose "
                f"@hookimpl register_rules(register) calls register(YourRule)?")

    def spec_dict(self, *, dtype: str = "float32", output_dir=None, record: dict | None = None) -> dict:
        """The raw spec the suite runs: the suite's data, rule, sizes and schedule."""
        return _spec(self.rule, self.params, self.components, n_neurons=self.n_neurons, dtype=dtype,
                     data={"name": self.DATASET},
                     schedule={"epochs": self.epochs, "batch_size": self.batch_size, "shuffle": True,
                               "seed": self.seed},
                     record=record, output_dir=output_dir, exporters=self.exporters)

    def resolve(self, **kwargs):
        """:func:`plasticity_kit.spec.resolve` of :meth:`spec_dict` against :meth:`registry`."""
        from .spec import resolve

        self.rule_class()
        return resolve(self.spec_dict(**kwargs), source=f"<{type(self).__name__}>", reg=self.registry())

    def make_rule(self, dtype: str = "float32") -> Rule:
        """A fresh rule instance of the given dtype, built as a spec builds it."""
        return self.resolve(dtype=dtype).build_rule(self.n_inputs)

    def batches(self, dtype: str, count: int | None = None) -> list[np.ndarray]:
        """``count`` (default ``steps``) C-contiguous mini-batches of the data, in a fixed order."""
        X = self.inputs().astype(dtype)
        order = np.random.default_rng(self.seed + 1).permutation(len(X))
        out = []
        for i in range((count or self.steps)):
            start = (i * self.batch_size) % len(X)
            idx = np.take(order, np.arange(start, start + self.batch_size), mode="wrap")
            out.append(np.ascontiguousarray(X[idx]))
        return out

    def trained_state(self, rule: Rule, dtype: str, seed: int | None = None) -> dict:
        """``init_state`` then ``steps`` steps of ``rule`` on :meth:`batches`."""
        state = rule.init_state(np.random.default_rng(self.seed if seed is None else seed))
        for batch in self.batches(dtype):
            rule.step(state, batch)
        return state

    # ------------------------------------------------------------------ the tests

    def test_registered_through_plugin_manager(self):
        """The rule is found by the plugin manager, as a spec finds it, under its own name."""
        from . import plugins as plugin_module

        reg = self.registry() if self.plugins else plugin_module.registry()
        assert self.rule in reg.rules, self._not_registered(reg)
        cls = reg.rules.classes[self.rule]
        assert isinstance(cls, type) and issubclass(cls, Rule), (
            f"{cls!r} registered as rule {self.rule!r} is not a subclass of plasticity_kit.rules.Rule")
        assert cls.name == self.rule, f"{cls.__name__}.name is {cls.name!r}, registered as {self.rule!r}"
        if self.plugin_name is not None:
            owner = reg.rules.owners[self.rule]
            assert owner == self.plugin_name, (
                f"rule {self.rule!r} is registered by plugin {owner!r}, expected {self.plugin_name!r}")

    def test_declarations(self):
        """name, uses, defaults, fields and default_record are consistent and resolvable."""
        cls = self.rule_class()
        assert isinstance(cls.options, Schema), f"{cls.__name__}.options must be a plasticity_kit.options.Schema"
        unknown = [c for c in cls.uses if c not in COMPONENTS]
        assert not unknown, f"{cls.__name__}.uses names unknown components {unknown}; allowed: {COMPONENTS}"
        extra = [c for c in cls.defaults if c not in cls.uses]
        assert not extra, f"{cls.__name__}.defaults names components {extra} missing from uses {cls.uses}"
        reg = self.registry()
        for comp, value in cls.defaults.items():
            name = value if isinstance(value, str) else (value or {}).get("name")
            params = {} if isinstance(value, str) else (value or {}).get("params") or {}
            kind = getattr(reg, comp + "s")
            assert name in kind, (f"{cls.__name__}.defaults[{comp!r}] names {name!r}, which is not a registered "
                                  f"{comp}; registered: {', '.join(kind)}")
            kind.classes[name].from_config(params, f"{cls.__name__}.defaults.{comp}.params")
        assert isinstance(cls.fields, dict) and cls.fields, f"{cls.__name__}.fields must map field names to descriptions"
        assert "weights" in cls.fields, f"{cls.__name__}.fields must include 'weights'"
        for name, doc in cls.fields.items():
            assert isinstance(name, str) and isinstance(doc, str) and doc.strip(), (
                f"{cls.__name__}.fields[{name!r}] must be a non-empty description")
        missing = [f for f in cls.default_record if f not in cls.fields]
        assert not missing, f"{cls.__name__}.default_record names {missing}, which are not in fields"

    def test_documented(self):
        """The class and every option have a docstring (shown by ``plasticity-kit plugins``)."""
        cls = self.rule_class()
        assert (cls.__doc__ or "").strip(), f"{cls.__name__} has no docstring"
        undocumented = [opt.name for opt in cls.options if not opt.doc.strip()]
        assert not undocumented, f"{cls.__name__}.options without doc: {undocumented}"

    def test_options_validate_own_defaults(self):
        """Every option's default is a valid value of that option, defaults validate to themselves,
        the suite's params validate, and validation is idempotent (a resolved spec re-validates)."""
        cls = self.rule_class()
        schema = cls.options
        for opt in schema:
            if not opt.required:
                try:
                    opt.coerce(opt.default, opt.name)
                except SpecError as exc:
                    pytest.fail(f"{cls.__name__}: the default of option {opt.name!r} is not valid: {exc}")
        required = [opt.name for opt in schema if opt.required]
        base = {name: self.params[name] for name in required if name in self.params}
        assert len(base) == len(required), (
            f"{cls.__name__} has required options {required}: give them in `params` on the test class")
        defaults = schema.validate(base, "params")
        for name, value in schema.defaults().items():
            assert defaults[name] == value, (
                f"{cls.__name__}: option {name!r} validates its default {value!r} to {defaults[name]!r}")
        params = schema.validate(dict(self.params), "params")
        assert schema.validate(params, "params") == params, f"{cls.__name__}: validation is not idempotent"

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_init_state(self, dtype):
        """init_state returns C-contiguous, finite arrays (floating ones of the model dtype) holding
        every name in fields and default_record; weights are (n_neurons, n_inputs)."""
        rule = self.make_rule(dtype)
        state = rule.init_state(np.random.default_rng(self.seed))
        self.check_state(rule, state, np.dtype(dtype), "init_state")
        cls = type(rule)
        missing = [f for f in (*cls.fields, *cls.default_record) if f not in state]
        assert not missing, f"init_state() lacks fields {missing} (it returned {sorted(state)})"

    def check_state(self, rule: Rule, state: dict, dtype: np.dtype, where: str) -> None:
        """Assert the state invariants the recorder and the kernels rely on."""
        assert isinstance(state, dict), f"{where} must give a dict of arrays, got {type(state).__name__}"
        for key, value in state.items():
            assert isinstance(key, str), f"{where}: state key {key!r} is not a string"
            assert isinstance(value, np.ndarray), f"{where}: state[{key!r}] is a {type(value).__name__}, not an ndarray"
            assert value.flags.c_contiguous, f"{where}: state[{key!r}] is not C-contiguous"
            if value.dtype.kind in "fc":
                assert value.dtype == dtype, f"{where}: state[{key!r}] has dtype {value.dtype}, the model's is {dtype}"
            assert value.dtype.kind not in "fc" or np.isfinite(value).all(), f"{where}: state[{key!r}] is not finite"
        assert "weights" in state, f"{where}: the state has no 'weights'"
        assert state["weights"].shape == (self.n_neurons, self.n_inputs), (
            f"{where}: weights have shape {state['weights'].shape}, expected (n_neurons, n_inputs) = "
            f"({self.n_neurons}, {self.n_inputs})")

    def test_init_state_draws_from_rng(self):
        """The same seed gives the same initial state; another seed other initial weights."""
        rule = self.make_rule("float64")
        a = rule.init_state(np.random.default_rng(self.seed))
        b = rule.init_state(np.random.default_rng(self.seed))
        assert not _state_diff(a, b), f"same seed, different initial {_state_diff(a, b)}"
        if self.random_init:
            c = rule.init_state(np.random.default_rng(self.seed + 12345))
            assert not np.array_equal(a["weights"], c["weights"]), (
                "different seeds gave the same initial weights: init_state must draw from its rng "
                "(set random_init = False if that is intended)")

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_step(self, dtype):
        """step keeps keys, shapes, dtypes and contiguity, changes the weights, keeps the state
        finite, and leaves the batch untouched."""
        rule = self.make_rule(dtype)
        state = rule.init_state(np.random.default_rng(self.seed))
        before = _copy_state(state)
        batch = self.batches(dtype, 1)[0]
        batch_before = batch.copy()
        rule.step(state, batch)
        assert sorted(state) == sorted(before), f"step changed the state's keys: {sorted(before)} → {sorted(state)}"
        for key, value in state.items():
            assert value.shape == before[key].shape, f"step changed the shape of {key!r}"
            assert value.dtype == before[key].dtype, f"step changed the dtype of {key!r}"
        self.check_state(rule, state, np.dtype(dtype), "after step")
        assert not np.array_equal(state["weights"], before["weights"]), "step did not change the weights"
        assert np.array_equal(batch, batch_before), "step modified its input batch (it may be a view of the data)"

    def test_steps_are_deterministic(self):
        """Two rules built from the same spec, started from the same seed and fed the same batches
        end in identical states (bit for bit)."""
        for dtype in DTYPES:
            a = self.trained_state(self.make_rule(dtype), dtype)
            b = self.trained_state(self.make_rule(dtype), dtype)
            diff = _state_diff(a, b)
            assert not diff, f"{dtype}: same seed and batches, different {diff} after {self.steps} steps"

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_transform(self, dtype):
        """transform gives finite (n_samples, n_neurons) responses without touching the state."""
        rule = self.make_rule(dtype)
        state = self.trained_state(rule, dtype)
        before = _copy_state(state)
        X = self.inputs().astype(dtype)
        out = np.asarray(rule.transform(state, X))
        assert out.shape == (self.n_samples, self.n_neurons), (
            f"transform gave shape {out.shape}, expected (n_samples, n_neurons) = ({self.n_samples}, {self.n_neurons})")
        assert np.isfinite(out).all(), "transform gave NaN or inf"
        assert not _state_diff(state, before), f"transform modified the state: {_state_diff(state, before)}"

    def test_synthesize(self):
        """synthesize gives None or finite values in [0, 1] of shape (n_neurons, n_inputs)."""
        rule = self.make_rule("float32")
        state = self.trained_state(rule, "float32")
        before = _copy_state(state)
        images = rule.synthesize(state)
        assert not _state_diff(state, before), f"synthesize modified the state: {_state_diff(state, before)}"
        if images is None:
            return
        images = np.asarray(images)
        assert images.shape == (self.n_neurons, self.n_inputs), (
            f"synthesize gave shape {images.shape}, expected (n_neurons, n_inputs) = ({self.n_neurons}, {self.n_inputs})")
        assert np.isfinite(images).all(), "synthesize gave NaN or inf"
        assert images.min() >= 0.0 and images.max() <= 1.0, (
            f"synthesize gave values in [{images.min()}, {images.max()}], expected [0, 1]")

    def test_divergence_none_when_healthy(self):
        """divergence is None for a fresh state and after a few steps."""
        rule = self.make_rule("float32")
        state = rule.init_state(np.random.default_rng(self.seed))
        assert rule.divergence(state) is None, f"fresh state reported as diverged: {rule.divergence(state)}"
        for batch in self.batches("float32"):
            rule.step(state, batch)
            problem = rule.divergence(state)
            assert problem is None, f"diverged within {self.steps} steps with the suite's params: {problem}"

    def test_divergence_flags_nan(self):
        """divergence returns a message when any floating-point state array holds a NaN."""
        rule = self.make_rule("float32")
        healthy = self.trained_state(rule, "float32")
        missed = []
        for key, value in healthy.items():
            if value.dtype.kind != "f" or value.size == 0:
                continue
            state = _copy_state(healthy)
            state[key].flat[value.size // 2] = np.nan
            problem = rule.divergence(state)
            if problem is None:
                missed.append(key)
            else:
                assert isinstance(problem, str) and problem.strip(), (
                    f"divergence must return a message (str), got {problem!r}")
        assert not missed, f"divergence() returned None for a state with NaN in {missed}"

    def test_replicas_equal_separate_networks(self):
        """``model.replicas``: R networks stepped together (``step`` and ``run_steps``, stacked in
        one kernel call when the rule sets ``steps_replicas``) end exactly where each one ends when
        stepped alone from its initial state."""
        from .rules.replicas import Replicas

        rule = self.make_rule("float64")
        ensemble = Replicas(rule, 3)
        together = ensemble.init_state(np.random.default_rng(self.seed))
        alone = [{k: v[r].copy() for k, v in together.items()} for r in range(3)]
        batches = self.batches("float64")
        X = self.inputs()
        idx = np.stack([np.random.default_rng(self.seed + r).permutation(len(X))[:self.batch_size]
                        for r in range(2)])
        for batch in batches:
            ensemble.step(together, batch)
            for state in alone:
                rule.step(state, batch)
        ensemble.run_steps(together, X, idx)
        for state in alone:
            rule.run_steps(state, X, idx)
        for r, state in enumerate(alone):
            for key, value in state.items():
                np.testing.assert_array_equal(together[key][r], value, err_msg=f"replica {r}: {key}")

    def test_end_to_end_run(self, tmp_path):
        """A tiny run through spec.resolve + runner.execute completes and writes a run.h5 whose
        trajectory has one frame per recorded step for every field, ending at the final state."""
        import h5py
        import yaml

        from .runner import execute
        from .scheduler import steps_per_epoch

        cls = self.rule_class()
        spec = self.resolve(output_dir=tmp_path / "runs", record={"fields": list(cls.fields), "every": 1})
        result = execute(spec, progress=False, log=lambda *a: None)
        assert result.status == "completed", f"the run ended {result.status}: {result.outcome.message}"
        total = self.epochs * steps_per_epoch(self.n_samples, self.batch_size)
        path = Path(result.path)
        assert path == tmp_path / "runs" / spec.name / "run.h5" and path.is_file(), f"no run file at {path}"
        with h5py.File(path, "r") as f:
            assert f.attrs["status"] == "completed", f"status attribute is {f.attrs['status']!r}"
            assert int(f.attrs["steps"]) == total
            recorded = yaml.safe_load(f["spec"].asstr()[()])
            assert recorded["model"]["rule"]["name"] == self.rule
            steps = f["trajectory/step"][()]
            assert list(steps) == list(range(total + 1)), f"trajectory/step is {list(steps)}"
            for name in cls.fields:
                ds = f[f"trajectory/{name}"]
                final = result.state[name]
                assert ds.shape == (len(steps),) + final.shape, (
                    f"trajectory/{name} has shape {ds.shape}, expected {(len(steps),) + final.shape}")
                assert ds.dtype == final.dtype
                np.testing.assert_array_equal(ds[-1], final, err_msg=f"last frame of {name} is not the final state")
                np.testing.assert_array_equal(f[f"final/{name}"][()], final)
            assert not np.array_equal(f["trajectory/weights"][0], f["trajectory/weights"][-1]), (
                "the weights did not change during the run")
            for key in result.state:
                assert f"final/{key}" in f, f"final/{key} missing from the run file"
            images = result.rule.synthesize(result.state)
            if images is not None:
                assert f["final/synthetic_images"].shape == np.asarray(images).shape
