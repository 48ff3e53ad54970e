"""A pipeline-like scikit-learn estimator over a stack of locally trained layers.

    from plasticity_kit.model.estimator import Layered
    est = Layered(layers=[
        {"stage": "batch_norm"},
        {"rule": "softhebb", "n_neurons": 96, "conv": {"kernel": 5, "padding": 2}},
        {"stage": "activation", "params": {"function": "triangle", "power": 0.7}},
        {"stage": "max_pool", "params": {"size": 4, "stride": 2, "padding": 1}},
    ], epochs=1, batch_size=10)
    features = est.fit(X).transform(X)          # X: (n, H·W·C) rows of images in [0, 1]
    est[1].rule, est.layer_state(1)["weights"]  # a layer, and its fitted arrays

``layers`` are ``model.layers`` entries exactly as in a spec (each a learned layer — a registered
rule, dense or convolutional — or a stage); the other parameters map to ``model.training``,
``model.input_shape``, ``model.dtype`` and the ``schedule``.  ``fit`` runs the same scheduler,
kernels and seeds as ``plasticity-kit run``: ``to_spec()`` writes the spec that reproduces it.
"""
from __future__ import annotations

import copy
import inspect

import numpy as np

from ..spec import dump_yaml


class Layered:
    """Stack of layers trained by local rules (greedy or simultaneous), scikit-learn style:
    ``fit(X)``, ``transform(X)`` (the top layer's flattened maps), ``fit_transform``, indexing
    ``est[i]`` (layer i) and ``layer_state(i)``; fitted ``state_``, ``n_features_in_``, ``n_iter_``."""

    def __init__(self, layers, epochs=1, batch_size=10, training="greedy", input_shape=None, dtype="float32",
                 shuffle=True, random_state=0):
        self.layers = layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.training = training
        self.input_shape = input_shape
        self.dtype = dtype
        self.shuffle = shuffle
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict:
        """The constructor parameters and their current values."""
        return {name: getattr(self, name) for name in inspect.signature(type(self).__init__).parameters
                if name != "self"}

    def set_params(self, **params) -> "Layered":
        """Set parameters; they take effect at the next ``fit``."""
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"Invalid parameter {key!r} for estimator Layered; valid: {sorted(valid)}")
            setattr(self, key, value)
        return self

    def _raw_spec(self, data) -> dict:
        model = {"layers": copy.deepcopy(list(self.layers)), "training": self.training, "dtype": self.dtype}
        if self.input_shape is not None:
            model["input_shape"] = list(self.input_shape)
        return {"name": "layered", "data": data, "model": model, "exporters": [],
                "schedule": {"epochs": self.epochs, "batch_size": self.batch_size, "shuffle": self.shuffle,
                             "seed": self.random_state}}

    def to_spec(self, data=None) -> str:
        """The YAML spec of this estimator (``data``: the spec's data section, default a placeholder)."""
        return dump_yaml(self._raw_spec(data or {"name": "images", "params": {"path": "X.npy"}}))

    def fit(self, X, y=None) -> "Layered":
        """Train the stack on the rows of ``X`` (``y`` is ignored: the rules are unsupervised)."""
        from ..plugins import build_registry
        from ..runner import execute_data
        from ..spec import resolve
        from ..testing import array_dataset

        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or not len(X):
            raise ValueError(f"Layered.fit expects a non-empty 2-D array (n_samples, n_inputs), got shape {X.shape}")
        plugin = array_dataset(X, name="estimator_data")
        spec = resolve(self._raw_spec({"name": "estimator_data"}), source="<Layered>",
                       reg=build_registry(extra_plugins=[plugin]))
        data = plugin.dataset().load(np.random.default_rng(0))
        result = execute_data(spec, data, progress=False, log=lambda *a, **k: None)
        self.rule_, self.state_ = result.rule, result.state
        self.n_features_in_, self.n_iter_ = X.shape[1], self.epochs
        return self

    def _check_fitted(self):
        if not hasattr(self, "state_"):
            raise ValueError("This Layered instance is not fitted yet; call fit(X) first")

    def transform(self, X) -> np.ndarray:
        """The top layer's maps for every row of ``X``, flattened (n × H'·W'·C')."""
        self._check_fitted()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected rows of {self.n_features_in_} values (as in fit), got shape {X.shape}")
        return self.rule_.transform(self.state_, X)

    def fit_transform(self, X, y=None) -> np.ndarray:
        return self.fit(X).transform(X)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int):
        """Layer ``i`` of the fitted stack (a learned layer with ``.rule``, or a stage)."""
        self._check_fitted()
        return self.rule_.blocks[i]

    def layer_state(self, i: int) -> dict:
        """Layer ``i``'s fitted arrays under their own names (``weights``, ``mean``, …)."""
        self._check_fitted()
        return self.rule_.layer_state(self.state_, i)
