"""scikit-learn style estimators over the rules, kernels and run files of the command line.

The workflow of the Nico-Curti/plasticity library, in a notebook, on numpy arrays::

    from plasticity_kit import BCM
    from plasticity_kit.activations import Relu
    from plasticity_kit.optimizers import Adam
    from plasticity_kit.initializers import Normal
    from plasticity_kit.plot import view_weights

    model = BCM(outputs=100, num_epochs=10, batch_size=1000, activation=Relu(), optimizer=Adam(),
                weights_init=Normal(mu=0., std=1.), interaction_strength=0.)
    model.fit(X)
    view_weights(model.weights, dims=(28, 28))

Every fit builds a spec from the parameters, validates it with :func:`plasticity_kit.spec.resolve`
(the checks, defaults and messages of ``plasticity-kit validate``) and trains with
:func:`plasticity_kit.runner.execute_data`, the function behind ``plasticity-kit run``: the same
kernels, the same seeds (``random_state`` is ``schedule.seed``, so an estimator and a CLI run of the
same spec give identical weights) and, with ``record_to``, the same HDF5 trajectory.  Changing a
parameter (``set_params``) rebuilds everything at the next fit, the interaction matrix included.

Parameters map one-to-one to spec keys (:data:`PARAM_KEYS`); the names are those of the
Nico-Curti/plasticity library where it has one:

======================== ==========================================================
estimator parameter      spec key
======================== ==========================================================
``outputs``              ``model.n_neurons``
``num_epochs``           ``schedule.epochs``
``batch_size``           ``schedule.batch_size``
``shuffle``              ``schedule.shuffle``
``random_state``         ``schedule.seed`` (None: a seed drawn at fit time, kept in ``seed_``)
``dtype``                ``model.dtype``
``activation``           ``model.activation``      (object, class, name or ``{name, params}``)
``optimizer``            ``model.optimizer``       (same; ``lr`` 2e-2 when not given, see below)
``weights_init``         ``model.initializer``     (same)
``interaction``          ``model.interaction``     (same)
``interaction_strength`` ``model.interaction: {name: uniform, params: {strength: s}}`` when s ≠ 0
``record_every``         ``record.every``
``record_to``            ``output.dir`` and ``name``: the CLI writes ``<dir>/<name>/run.h5``
any other parameter      ``model.rule.params.<name>`` (the rule's own options)
``verbose``              (not in the spec: progress bar)
``readout_power``        (not in the spec: the exponent n of predict's and inpaint's read-out)
======================== ==========================================================

Defaults follow the Nico-Curti/plasticity library, whose documented examples rely on them: an
optimizer given without a learning rate (``Adam()``, ``"adam"``, ``{"name": "sgd"}``) uses
lr = 2e-2 (:data:`REFERENCE_LR`, every optimizer's default there), and ``BCM`` defaults to that
library's logistic activation, ``SGD(lr=2e-2)``, N(0, 1) initial weights and no interaction.
Specs and the command line keep each optimizer's own default lr (SGD 0.01, Adam 1e-3), so
``Adam()`` means lr 2e-2 here and 1e-3 in ``plasticity_kit.optimizers`` or a spec; ``to_spec``
writes the lr in effect.

Supervised variant (as the Nico-Curti/plasticity library): ``fit(X, y)`` appends the one-hot labels
to the inputs, x̃ = [x, onehot(y)], so each neuron's weights W_i = [W_i^x, W_i^y] also hold a label
part.  The network then reconstructs what an input lacks from its responses h = transform(x):
r = Σ_i a_i W_i with a_i = (h_i⁺ / max_j h_j⁺)^n, n = ``readout_power`` (the rectified power of
Krotov & Hopfield's read-out; n → ∞ keeps only the most active neuron).  ``predict`` presents
[x, 0] and returns the class whose label entry of r is largest; ``inpaint`` fills the missing
entries of x (NaN, or a mask) with those of r, scaled to the observed entries by least squares.

Design: the estimators implement scikit-learn's conventions themselves (``get_params`` /
``set_params`` read the constructor signature, ``clone`` works, fitted attributes end with ``_``,
``__sklearn_tags__`` imports scikit-learn only when scikit-learn asks) instead of inheriting from
``sklearn.base.BaseEstimator``: scikit-learn stays optional and ``import plasticity_kit`` does not
import it.  ``sklearn.utils.estimator_checks`` runs against every estimator in the test suite.
"""
from __future__ import annotations

import hashlib
import inspect
import math
import sys
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .component import Component
from .datasets.base import Data, Dataset
from .errors import DataError, DivergedError, SpecError
from .options import Option, did_you_mean
from .plugins import Kind, Registry, registry
from .runner import execute_data, seed_streams
from .spec import read_yaml, resolve

__all__ = ["PlasticityEstimator", "Plasticity", "BCM", "KrotovHopfield", "Hopfield", "from_spec",
           "NotFittedError", "PARAM_KEYS"]

ARRAYS = "arrays"

PARAM_KEYS = {
    "rule": "model.rule.name",
    "outputs": "model.n_neurons",
    "dtype": "model.dtype",
    "activation": "model.activation",
    "interaction": "model.interaction",
    "interaction_strength": "model.interaction",
    "optimizer": "model.optimizer",
    "weights_init": "model.initializer",
    "num_epochs": "schedule.epochs",
    "batch_size": "schedule.batch_size",
    "shuffle": "schedule.shuffle",
    "random_state": "schedule.seed",
    "record_every": "record.every",
    "record_to": "output.dir",
}
"""Estimator parameter → spec key; every other parameter is ``model.rule.params.<name>``."""
COMPONENT_PARAMS = {"activation": "activation", "interaction": "interaction", "optimizer": "optimizer",
                    "weights_init": "initializer"}
NOT_IN_SPEC = ("verbose", "readout_power")
REFERENCE_LR = 2e-2
"""Learning rate of an optimizer given to an estimator without ``lr``: every optimizer of the
Nico-Curti/plasticity library defaults to 2e-2 (its ``Optimizer(lr=2e-2)``, BCM's
``SGD(learning_rate=2e-2)``), and its documented examples (``optimizer=Adam()``) rely on it.
Specs keep each optimizer's own default (SGD 0.01, Adam 1e-3): ``plasticity-kit validate --print``."""
STRENGTH = Option("interaction_strength", "number", 0.0, "off-diagonal L of the uniform interaction")


class NotFittedError(ValueError, AttributeError):
    """A method that needs a fitted estimator was called before ``fit`` (scikit-learn's convention)."""


def _not_fitted(message: str) -> NotFittedError:
    """A NotFittedError that is also scikit-learn's when scikit-learn is in use (imported)."""
    sk = sys.modules.get("sklearn.exceptions")
    if sk is None:
        return NotFittedError(message)
    cls = _NOT_FITTED.get(sk.NotFittedError)
    if cls is None:
        cls = _NOT_FITTED[sk.NotFittedError] = type("NotFittedError", (NotFittedError, sk.NotFittedError), {})
    return cls(message)


_NOT_FITTED: dict = {}


class ArrayData(Dataset):
    """Stands for the arrays given to an estimator's ``fit`` (plasticity_kit.estimators); not loadable."""

    name = ARRAYS

    def load(self, rng):
        raise DataError("data set 'arrays' stands for the arrays given to an estimator's fit(); to run this "
                        "spec from the command line, name a data set in its data section "
                        "(plasticity-kit plugins --kind datasets)")


_REGISTRIES: dict = {}


def _registry() -> Registry:
    """The process registry plus the ``arrays`` placeholder data set."""
    base = registry()
    reg = _REGISTRIES.get(id(base))
    if reg is None:
        datasets = Kind("datasets", dict(base.datasets.classes), dict(base.datasets.owners))
        datasets.add(ArrayData, __name__)
        reg = Registry(base.manager, {**base.kinds, "datasets": datasets})
        _REGISTRIES.clear()
        _REGISTRIES[id(base)] = reg
    return reg


def _plain(value):
    """numpy scalars and arrays → Python numbers and lists (what the spec validator and YAML take)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _component(value):
    """``Adam(lr=1e-3)`` / ``Adam`` / ``"adam"`` / ``{name, params}`` → the spec's form."""
    if isinstance(value, Component):
        return _plain(value.to_config())
    if isinstance(value, type) and issubclass(value, Component):
        return value.name
    return _plain(value)


def _optimizer(value):
    """An estimator's optimizer in the spec's form, with ``lr`` = :data:`REFERENCE_LR` when the
    optimizer has an ``lr`` option that was not given (object, class, name or ``{name, params}``)."""
    if isinstance(value, Component):
        config = _plain(value.to_config())
        if "lr" in config["params"] and "lr" not in getattr(value, "given", ("lr",)):
            config["params"]["lr"] = REFERENCE_LR
        return config
    config = _component(value)
    if isinstance(config, str):
        config = {"name": config}
    if not (isinstance(config, dict) and isinstance(config.get("name"), str)
            and isinstance(config.get("params") or {}, dict)):
        return config  # the spec validator names what is wrong
    cls = _registry().optimizers.classes.get(config["name"])
    params = dict(config.get("params") or {})
    if cls is None or "lr" in params or "lr" not in cls.options.names():
        return config
    return {**config, "params": {**params, "lr": REFERENCE_LR}}


def _compact(config: dict):
    """A resolved ``{name, params}`` without params → just the name."""
    return config["name"] if not config.get("params") else config


def _draw_seed(random_state) -> int | Any:
    """An integer seed for ``schedule.seed`` from scikit-learn's ``random_state`` conventions."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    return _plain(random_state)  # validated as schedule.seed


def _run_location(record_to) -> tuple[str, str]:
    """``record_to`` → (name, output dir) of the CLI run writing it: ``<dir>/<name>/run.h5``."""
    path = Path(record_to)
    if path.name == "run.h5" and path.parent.name:
        return path.parent.name, str(path.parent.parent)
    return path.stem, str(path.parent)


def _quiet(*args, **kwargs) -> None:
    pass


def _same(a, b) -> bool:
    try:
        return a is b or (type(a) is type(b) and bool(a == b))
    except Exception:
        return False


class PlasticityEstimator:
    """Base of the estimators: scikit-learn conventions over one rule of plasticity-kit.

    Methods: ``fit(X, y=None)``, ``partial_fit(X, y=None, classes=None)`` (one epoch over X,
    continuing the current state), ``transform`` (the neurons' responses), ``fit_transform``,
    ``predict`` and ``inpaint`` (after a supervised fit), ``to_spec`` / ``from_spec``.
    Fitted attributes: ``weights_`` (n_neurons × ``n_features_in_``), one ``<field>_`` per recordable
    state field of the rule (``theta_`` for BCM), ``state_`` (every state array, optimizer moments
    included), ``n_iter_`` (epochs trained), ``n_features_in_``, ``seed_`` and, after a supervised
    fit, ``classes_`` and ``label_weights_``; ``weights`` is ``weights_`` under the reference
    library's name.
    """

    _rule: ClassVar[str | None] = None  # the rule wrapped; None: the ``rule`` parameter

    # ------------------------------------------------------------------ parameters

    def _param_names(self) -> list[str]:
        sig = inspect.signature(type(self).__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]

    def get_params(self, deep: bool = True) -> dict:
        """The constructor parameters and their current values."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> "PlasticityEstimator":
        """Set parameters; they take effect at the next ``fit`` (nothing is validated here)."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"Invalid parameter {key!r} for estimator {type(self).__name__}"
                                 f"{did_you_mean(key, valid)}. Valid parameters are: {sorted(valid)!r}.")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        defaults = {p.name: p.default for p in sig.parameters.values()}
        shown = [f"{k}={v!r}" for k, v in self.get_params(deep=False).items()
                 if k not in defaults or not _same(v, defaults[k])]
        return f"{type(self).__name__}({', '.join(shown)})"

    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=[str(self.dtype)]),
                    input_tags=InputTags(allow_nan=False, sparse=False))

    def _rule_name(self) -> str:
        return self._rule or self.rule

    def _rule_params(self) -> list[str]:
        return [n for n in self._param_names() if n not in PARAM_KEYS and n not in NOT_IN_SPEC]

    # ------------------------------------------------------------------ spec

    def _raw_spec(self, seed, data=None, name: str | None = None, epochs: int | None = None) -> dict:
        given = self.get_params(deep=False)
        p = {k: _plain(v) for k, v in given.items()}
        model = {"rule": {"name": self._rule_name(), "params": {k: p[k] for k in self._rule_params()}},
                 "n_neurons": p["outputs"], "dtype": p["dtype"]}
        for param, comp in COMPONENT_PARAMS.items():
            if given.get(param) is not None:
                model[comp] = (_optimizer if param == "optimizer" else _component)(given[param])
        rule_cls = _registry().rules.classes.get(self._rule_name())
        if "optimizer" not in model and "optimizer" in getattr(rule_cls, "uses", ()):
            model["optimizer"] = _optimizer(rule_cls.defaults["optimizer"])  # the rule's, at lr 2e-2
        if "interaction_strength" in p:
            strength = STRENGTH.coerce(p["interaction_strength"], "interaction_strength")
            if strength != 0.0:
                if model.get("interaction") not in (None, "none", {"name": "none", "params": {}}):
                    raise SpecError("interaction_strength", "give either interaction or a non-zero "
                                                            "interaction_strength (the uniform interaction), not both")
                model["interaction"] = {"name": "uniform", "params": {"strength": strength}}
        raw = {"name": name or self._rule_name(), "data": data if data is not None else {"name": ARRAYS},
               "model": model,
               "schedule": {"epochs": p["num_epochs"] if epochs is None else epochs, "batch_size": p["batch_size"],
                            "shuffle": p["shuffle"]},
               "exporters": []}
        if seed is not None:
            raw["schedule"]["seed"] = seed
        if p["record_every"] is not None:
            raw["record"] = {"every": p["record_every"]}
        if p["record_to"] is not None:
            run_name, out_dir = _run_location(p["record_to"])
            raw["name"] = name or run_name
            raw["output"] = {"dir": out_dir}
        return raw

    def _translate(self, exc: SpecError) -> SpecError:
        """A spec error re-keyed by estimator parameter (``model.n_neurons`` → ``outputs``)."""
        key = exc.key or ""
        params = self._param_names()
        if key.startswith("model.rule.params."):
            return SpecError(key[len("model.rule.params."):], exc.message, type(self).__name__)
        # model.interaction comes from interaction_strength when that is non-zero, else from interaction
        from_strength = "interaction_strength" in params and _plain(self.interaction_strength) not in (0, 0.0)
        skip = "interaction" if from_strength else "interaction_strength"
        for param, spec_key in sorted(PARAM_KEYS.items(), key=lambda kv: -len(kv[1])):
            if param not in params or param == skip:
                continue
            if key == spec_key or key.startswith(spec_key + "."):
                rest = key[len(spec_key) + 1:]
                rest = rest[len("params."):] if rest.startswith("params.") else rest
                return SpecError(f"{param}.{rest}" if rest and rest != "name" else param, exc.message,
                                 type(self).__name__)
        return SpecError(key, exc.message, type(self).__name__)

    def _spec(self, seed, **kwargs):
        """The resolved spec of these parameters (SpecErrors keyed by estimator parameter)."""
        try:
            return resolve(self._raw_spec(seed, **kwargs), source=f"<{type(self).__name__}>", reg=_registry())
        except SpecError as exc:
            raise self._translate(exc) from None

    def _spec_seed(self):
        if hasattr(self, "seed_"):
            return self.seed_
        if self.random_state is None or isinstance(self.random_state, (np.random.RandomState, np.random.Generator)):
            return None
        return _plain(self.random_state)

    def to_spec(self, data=None, name: str | None = None) -> str:
        """The YAML spec of the run ``fit`` makes, every default filled in (``plasticity-kit run`` on
        it trains the same network from the same seed).

        ``data``: the spec's data section (a data-set name or ``{name, params}``); the default,
        ``{name: arrays}``, stands for the arrays given to ``fit`` and must be replaced for a CLI
        run.  The seed is ``seed_`` once fitted, else ``random_state`` (the spec default 0 when that
        is None or a generator).  ``verbose`` is not part of a spec.
        """
        return self._spec(self._spec_seed(), data=data, name=name).to_yaml()

    @classmethod
    def from_spec(cls, path, **overrides) -> "PlasticityEstimator":
        """The estimator of the spec at ``path`` (see :func:`from_spec`); on a subclass the spec's
        rule must be that subclass's."""
        est = from_spec(path, **overrides)
        if cls._rule is not None and not isinstance(est, cls):
            raise SpecError("model.rule", f"{cls.__name__}.from_spec needs a '{cls._rule}' spec, got "
                                          f"rule '{est._rule_name()}'", str(path))
        return est

    # ------------------------------------------------------------------ input checks

    def _validate(self, X, *, reset: bool) -> np.ndarray:
        """X as a finite 2-D float array (float32 kept, anything else float64); n_features_in_ set or checked."""
        if hasattr(X, "toarray") or hasattr(X, "tocsr"):
            raise TypeError(f"{type(self).__name__}: sparse input is not supported; pass a dense array (X.toarray())")
        X = np.asarray(X)
        if np.iscomplexobj(X):
            raise ValueError("Complex data not supported")
        if X.dtype.kind not in "fiub":
            X = X.astype(np.float64)  # TypeError for entries that are not numbers
        if X.ndim != 2:
            raise ValueError(f"Expected a 2-D array (n_samples, n_features), got shape {X.shape}. Reshape your data "
                             "with X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single sample")
        if X.shape[0] == 0:
            raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
        if X.shape[1] == 0:
            raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
        if X.dtype != np.float32:
            X = X.astype(np.float64, copy=False)
        if not np.isfinite(X).all():
            raise ValueError("Input X contains NaN or infinity")
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input")
        return X

    def _join_labels(self, X: np.ndarray, y, *, reset: bool, classes=None):
        """[X, onehot(y)] and the labels; X and None without labels."""
        if y is None:
            if not reset and hasattr(self, "classes_"):
                raise ValueError(f"{type(self).__name__} was fitted with labels: partial_fit needs y too")
            return X, None
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"y should be a 1d array of class labels, got shape {y.shape}")
        if len(y) != len(X):
            raise ValueError(f"X and y have inconsistent numbers of samples: {len(X)} and {len(y)}")
        if reset:
            self.classes_ = np.unique(y if classes is None else np.asarray(classes))
        elif not hasattr(self, "classes_"):
            raise ValueError(f"{type(self).__name__} was fitted without labels: partial_fit cannot add them")
        idx = np.searchsorted(self.classes_, y)
        known = idx < len(self.classes_)
        known[known] = self.classes_[idx[known]] == y[known]
        if not known.all():
            raise ValueError(f"y has labels {np.unique(y[~known])[:5].tolist()} not among classes_ "
                             f"{self.classes_.tolist()[:10]} (give every class in the first partial_fit: classes=...)")
        onehot = np.zeros((len(X), len(self.classes_)), dtype=X.dtype)
        onehot[np.arange(len(X)), idx] = 1
        return np.hstack([X, onehot]), y

    def _check_fitted(self) -> None:
        if not hasattr(self, "state_"):
            raise _not_fitted(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                                 "appropriate arguments before using this estimator.")

    # ------------------------------------------------------------------ training

    def _train(self, spec, X: np.ndarray, labels, streams, state, path) -> None:
        n_features = self.n_features_in_
        side = math.isqrt(n_features)
        data = Data(X=X, name=ARRAYS, indices=np.arange(len(X)), labels=labels, source="memory",
                    image_shape=(side, side) if side * side == n_features and labels is None else None,
                    checksum=hashlib.sha256(np.ascontiguousarray(X).tobytes()).hexdigest() if path else "")
        try:
            result = execute_data(spec, data, path=None if path is None else Path(path), state=state,
                                  streams=streams, progress=bool(self.verbose), log=print if self.verbose else _quiet)
        except SpecError as exc:
            raise self._translate(exc) from None
        outcome = result.outcome
        if outcome.status == "diverged":
            raise DivergedError(f"{type(self).__name__}: {outcome.message}")
        if outcome.status == "interrupted":
            warnings.warn(f"{type(self).__name__}: {outcome.message}; keeping the weights reached so far",
                          RuntimeWarning, stacklevel=3)
        self._fitted_rule = result.rule
        self.state_ = result.state
        weights = result.state["weights"]
        self.weights_ = weights[:, :n_features]
        if labels is not None:
            self.label_weights_ = weights[:, n_features:]
        for field in type(result.rule).fields:
            attr = f"{field}_"
            if field != "weights" and attr.isidentifier() and attr not in ("classes_", "state_", "seed_"):
                setattr(self, attr, result.state[field])
        self.n_iter_ = getattr(self, "n_iter_", 0) + outcome.epochs_completed

    def fit(self, X, y=None) -> "PlasticityEstimator":
        """Train a fresh network on X (n_samples × n_features) for ``num_epochs`` epochs.

        With labels ``y`` the one-hot labels are appended to the inputs (the supervised variant,
        enabling ``predict`` and ``inpaint``).  ``record_to`` writes the run's HDF5 trajectory.
        """
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("__")]:
            delattr(self, attr)
        X = self._validate(X, reset=True)
        X, labels = self._join_labels(X, y, reset=True)
        seed = _draw_seed(self.random_state)
        spec = self._spec(seed)
        self.seed_ = spec.schedule["seed"]
        self._streams = seed_streams(self.seed_)
        self._train(spec, X, labels, self._streams, None, self.record_to)
        return self

    def partial_fit(self, X, y=None, classes=None) -> "PlasticityEstimator":
        """One epoch over X, continuing from the current state (a fresh one on the first call).

        Supervised: pass ``y`` on every call and ``classes`` (every label) on the first.  Nothing is
        recorded.  With the Krotov–Hopfield linear schedule each call uses the initial learning rate.
        """
        first = not hasattr(self, "state_")
        X = self._validate(X, reset=first)
        X, labels = self._join_labels(X, y, reset=first, classes=classes)
        seed = _draw_seed(self.random_state) if first else self.seed_
        spec = self._spec(seed, epochs=1)
        if first:
            self.seed_ = seed
            self._streams = seed_streams(seed)
        state = None if first else self.state_
        if state is not None and state["weights"].shape != (spec.model.n_neurons, X.shape[1]):
            raise ValueError(f"{type(self).__name__}: outputs changed from {state['weights'].shape[0]} to "
                             f"{spec.model.n_neurons} since the network was built; call fit to start over")
        if state is not None and state["weights"].dtype != spec.model.dtype:
            raise ValueError(f"{type(self).__name__}: dtype changed since the network was built; call fit to start over")
        self._train(spec, X, labels, self._streams, state, None)
        return self

    # ------------------------------------------------------------------ using the network

    def _inputs(self, X) -> np.ndarray:
        """Validated X, padded with zeros for the label columns after a supervised fit."""
        self._check_fitted()
        X = self._validate(X, reset=False)
        if hasattr(self, "classes_"):
            X = np.hstack([X, np.zeros((len(X), len(self.classes_)), dtype=X.dtype)])
        return X

    def transform(self, X) -> np.ndarray:
        """The neurons' responses to X, (n_samples × outputs), as the rule defines them
        (BCM: σ((I−L)⁻¹Wx)); label inputs are zero after a supervised fit."""
        X = self._inputs(X)
        return self._fitted_rule.transform(self.state_, X)

    def fit_transform(self, X, y=None) -> np.ndarray:
        """``fit(X, y).transform(X)``."""
        return self.fit(X, y).transform(X)

    def _reconstruct(self, X) -> np.ndarray:
        """r = Σ_i a_i W_i, a_i = (h_i⁺ / max_j h_j⁺)^n (n = readout_power), for every row of the
        (already padded) inputs, float64."""
        power = Option("readout_power", "number", low=0, low_open=True).coerce(_plain(self.readout_power),
                                                                               "readout_power")
        h = np.maximum(np.asarray(self._fitted_rule.transform(self.state_, X), dtype=np.float64), 0.0)
        top = h.max(axis=1, keepdims=True)
        a = np.divide(h, top, out=np.zeros_like(h), where=top > 0) ** power
        return a @ self.state_["weights"].astype(np.float64)

    def predict(self, X) -> np.ndarray:
        """The class of each row of X after a supervised fit: argmax of the label part of the
        reconstruction r = Σ_i (h_i⁺/max h⁺)^n W_i of the input [x, 0] (n = readout_power)."""
        X = self._inputs(X)
        if not hasattr(self, "classes_"):
            raise ValueError(f"{type(self).__name__} was fitted without labels: predict needs fit(X, y)")
        r = self._reconstruct(X)[:, self.n_features_in_:]
        return self.classes_[np.argmax(r, axis=1)]

    def inpaint(self, X, mask=None) -> np.ndarray:
        """X with its missing entries (``mask`` True, or NaN where no mask is given) replaced by the
        network's reconstruction r = Σ_i (h_i⁺/max h⁺)^n W_i of the input with those entries at zero,
        scaled per row by the least-squares factor s = ⟨x, r⟩/⟨r, r⟩ over the observed entries."""
        self._check_fitted()
        X = np.array(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"Expected a 2-D array (n_samples, n_features), got shape {X.shape}")
        mask = np.isnan(X) if mask is None else np.asarray(mask, dtype=bool)
        if mask.shape != X.shape:
            raise ValueError(f"mask has shape {mask.shape}, X has shape {X.shape}")
        observed = np.where(mask, 0.0, X)
        r = self._reconstruct(self._inputs(observed))[:, :X.shape[1]]
        r_obs = np.where(mask, 0.0, r)
        denom = (r_obs * r_obs).sum(axis=1)
        scale = np.divide((observed * r_obs).sum(axis=1), denom, out=np.zeros_like(denom), where=denom > 0)
        return np.where(mask, scale[:, None] * r, X)

    @property
    def weights(self) -> np.ndarray:
        """``weights_`` under the name of the Nico-Curti/plasticity library."""
        self._check_fitted()
        return self.weights_


def _set_params(est, values: dict) -> None:
    for key, value in values.items():
        if key not in ("self", "__class__", "params"):
            setattr(est, key, value)


class Plasticity(PlasticityEstimator):
    """Any registered rule, third-party plugins included: ``Plasticity(rule="oja", outputs=8, lr=0.05)``.

    Keyword arguments other than the named ones are the rule's own options (``model.rule.params``),
    parameters like the named ones (``get_params``, ``set_params``, ``est.lr``); components the rule
    does not use (activation, interaction, optimizer, weights_init) stay None, and None means the
    rule's default.
    """

    def __init__(self, rule="bcm", outputs=100, num_epochs=100, batch_size=100, activation=None, optimizer=None,
                 weights_init=None, interaction=None, dtype="float32", shuffle=True, random_state=None,
                 record_to=None, record_every=None, readout_power=3.0, verbose=False, **params):
        _set_params(self, {k: v for k, v in locals().items() if k != "params"})
        for key in params:
            if hasattr(type(self), key):
                raise TypeError(f"Plasticity: rule option {key!r} collides with an estimator attribute")
        self._options = dict(params)  # read through __getattr__, so that only named parameters are attributes

    def __getattr__(self, name):
        options = self.__dict__.get("_options")
        if options is not None and name in options:
            return options[name]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def _param_names(self) -> list[str]:
        names = super()._param_names()
        return names + [k for k in self.__dict__.get("_options", ()) if k not in names]

    def set_params(self, **params) -> "Plasticity":
        """As scikit-learn's; also accepts any option of the rule (the new one when ``rule`` changes)."""
        if "rule" in params:
            self.rule = params.pop("rule")
        rules = _registry().rules.classes
        options = rules[self.rule].options.names() if isinstance(self.rule, str) and self.rule in rules else []
        named = super()._param_names()
        for key, value in params.items():
            if key in self._options or (key in options and key not in named):
                self._options[key] = value
        return super().set_params(**{k: v for k, v in params.items() if k not in self._options})


class BCM(PlasticityEstimator):
    """BCM neurons with lateral interactions (rule ``bcm``): y = σ((I−L)⁻¹Wx),
    θ ← γθ + (1−γ)⟨y²⟩, ΔW = ⟨y(y−θ)x⟩/θ (Law & Cooper 1994; Castellani et al. 1999; Curti et al. 2023).

    Defaults are the Nico-Curti/plasticity library's BCM: logistic activation, ``SGD(lr=2e-2)``
    (any optimizer given without ``lr`` gets 2e-2, :data:`REFERENCE_LR`), N(0, 1) initial
    weights, batch 100, 100 epochs.  ``interaction_strength`` = s ≠ 0 is that library's
    parameter: every off-diagonal L_ij = s (s < 0 is lateral inhibition).  ``orthogonalize=True`` starts from
    orthonormal weights and re-orthogonalises them, W ← (WWᵀ)^(-1/2)W, after every epoch.
    Fitted: ``weights_``, ``theta_`` and the attributes of :class:`PlasticityEstimator`.
    """

    _rule = "bcm"

    def __init__(self, outputs=100, num_epochs=100, batch_size=100, activation="logistic", optimizer="sgd",
                 weights_init="normal", interaction="none", interaction_strength=0.0, memory_factor=0.5,
                 threshold="moving_average", theta_init=0.0, epsilon=1e-8, orthogonalize=False, dtype="float32",
                 shuffle=True, random_state=None, record_to=None, record_every=None, readout_power=3.0,
                 verbose=False):
        _set_params(self, locals())


class KrotovHopfield(PlasticityEstimator):
    """Krotov–Hopfield competing hidden units (rule ``krotov_hopfield``): per sample the strongest
    unit learns x (g = 1), the k-th strongest unlearns it (g = −Δ); ds = g·xᵀ − (Σ g⊙I)W,
    W += eps·ds/max|ds|, currents I = sign(W)|W|^(p−1)·x (Krotov & Hopfield 2019).

    The learning rate is the rule's ``learning_rate`` (eps0, decaying linearly over the epochs
    with ``schedule="linear"``); the rule uses no optimizer.  ``orthogonalize=True`` starts from
    orthonormal weights and re-orthogonalises them, W ← (WWᵀ)^(-1/2)W, after every epoch.
    ``readout_power`` defaults higher than for BCM: the ranking rule makes prototypes, best read by
    the few most active units.  Alias: ``Hopfield``.
    """

    _rule = "krotov_hopfield"

    def __init__(self, outputs=100, num_epochs=100, batch_size=100, weights_init="normal", learning_rate=0.02,
                 schedule="linear", p=2.0, k=2, delta=0.4, precision=1e-30, orthogonalize=False, dtype="float32",
                 shuffle=True, random_state=None, record_to=None, record_every=None, readout_power=10.0,
                 verbose=False):
        _set_params(self, locals())


Hopfield = KrotovHopfield

ESTIMATORS = {"bcm": BCM, "krotov_hopfield": KrotovHopfield}


def from_spec(path, **overrides) -> PlasticityEstimator:
    """The estimator of the run the spec at ``path`` describes (BCM, KrotovHopfield, else
    ``Plasticity(rule=...)``), every parameter taken from the resolved spec; ``overrides`` are then
    set (``from_spec(p, record_to="run.h5")``).  The data section, metrics, exporters and the
    record keys other than ``every`` have no estimator parameter: ``fit`` trains on the arrays it is
    given and records the rule's default fields; ``output`` is not taken either (nothing is written
    unless ``record_to`` is given).
    """
    spec = resolve(read_yaml(path), str(path), reg=_registry())
    model, schedule = spec.resolved["model"], spec.resolved["schedule"]
    rule = model["rule"]["name"]
    params = {"outputs": model["n_neurons"], "dtype": model["dtype"], "num_epochs": schedule["epochs"],
              "batch_size": schedule["batch_size"], "shuffle": schedule["shuffle"], "random_state": schedule["seed"],
              "record_every": spec.resolved["record"]["every"]}
    for param, comp in COMPONENT_PARAMS.items():
        if comp in model:
            params[param] = _compact(model[comp])
    params.update(model["rule"]["params"])
    cls = ESTIMATORS.get(rule)
    est = cls(**params) if cls is not None else Plasticity(rule=rule, **params)
    return est.set_params(**overrides)
