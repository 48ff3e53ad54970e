"""Supervised read-out of frozen features: how linearly useful are the learned hidden units?

Krotov & Hopfield 2019 (PNAS 116:7723) freeze the unsupervised weights W and train only a top
layer on labels.  Hidden features are f = relu(h)^n with h = ``rule.transform(state, x)``
(W·x for the Krotov–Hopfield rules).  Two read-outs (option ``readouts``), both fitted by L-BFGS
(deterministic) and each reported as ``<readout>_accuracy`` on the test data:

* ``softmax``: multinomial logistic regression on standardised features,
  p(y|f) = softmax(A f + b), loss = mean cross-entropy + (l2/2)‖A‖²;
* ``paper``: the paper's c = tanh(β S f), t = ±1 one-hot targets, loss = mean_b Σ_c |c − t|^m
  (n = 4.5, β = 0.01, m = 6 in the paper); f is divided by its largest training value (a scale
  S absorbs) so that one β works whatever the weights' norm.

The same read-out on the raw pixels (no relu^n) of the same split is reported as the baseline
``<readout>_pixel_accuracy``.  ``train`` and ``test`` name data sets like the spec's ``data`` section;
``train`` defaults to the run's training data.  A nested data set of the run's own kind that
gives no ``path`` uses the run's (so one ``--set data.params.path=...`` points all of them).
"""
from __future__ import annotations

import time

import numpy as np
from scipy.optimize import minimize

from ..errors import DataError, SpecError
from ..options import Option, Schema, describe
from .base import Metric, MetricContext

READOUTS = ("softmax", "paper")


def softmax_loss(theta, Z, T, l2):
    """Mean cross-entropy of softmax(A z + b) against one-hot ``T`` plus (l2/2)‖A‖², and its
    gradient; ``theta`` = [A.ravel(), b]."""
    k, d = T.shape[1], Z.shape[1]
    A, b = theta[:k * d].reshape(k, d), theta[k * d:]
    logits = (Z @ A.T.astype(Z.dtype)).astype(np.float64) + b  # the products in Z's dtype: no copy of Z
    logits -= logits.max(axis=1, keepdims=True)
    P = np.exp(logits)
    P /= P.sum(axis=1, keepdims=True)
    value = -np.log(np.maximum((P * T).sum(axis=1), 1e-300)).mean() + 0.5 * l2 * (A * A).sum()
    G = (P - T) / len(Z)
    return value, np.concatenate([((G.T.astype(Z.dtype) @ Z) + l2 * A).ravel(), G.sum(axis=0)])


def tanh_loss(theta, F, T, beta, m):
    """The paper's loss mean_b Σ_c |tanh(β S f_b)_c − t_bc|^m and its gradient; ``theta`` = S.ravel()."""
    S = theta.reshape(T.shape[1], F.shape[1])
    C = np.tanh(beta * (F @ S.T))
    E = C - T
    aE = np.abs(E)
    dC = m * aE ** (m - 1) * np.sign(E) * (1.0 - C * C) / len(F)
    return (aE ** m).sum() / len(F), (beta * (dC.T @ F)).ravel()


def _lbfgs(loss, x0, args, max_iter):
    return minimize(loss, x0, args=args, jac=True, method="L-BFGS-B", options={"maxiter": max_iter}).x


def softmax_readout(F_train, y_train, n_classes, l2=1e-4, max_iter=200):
    """Fit p(y|f) = softmax(A f + b) on standardised features by L-BFGS; returns ``predict(F) -> labels``."""
    mu, sd = F_train.mean(axis=0), F_train.std(axis=0)
    sd = np.where(sd > 1e-12 * max(float(sd.max()), 1e-300), sd, 1.0)
    Z = F_train - mu
    Z /= sd  # in place: the features of 60,000 images take gigabytes
    d = Z.shape[1]
    theta = _lbfgs(softmax_loss, np.zeros(n_classes * (d + 1)), (Z, np.eye(n_classes)[y_train], l2), max_iter)
    A, b = theta[:n_classes * d].reshape(n_classes, d), theta[n_classes * d:]
    return lambda F: np.argmax(((F - mu) / sd) @ A.T + b, axis=1)


def tanh_readout(F_train, y_train, n_classes, beta=0.01, m=6.0, max_iter=200):
    """Fit the paper's c = tanh(β S f) with loss mean_b Σ_c |c − t|^m by L-BFGS; returns ``predict``."""
    scale = float(np.abs(F_train).max()) or 1.0
    Fs = F_train / scale
    T = 2.0 * np.eye(n_classes)[y_train] - 1.0
    S = _lbfgs(tanh_loss, np.zeros(n_classes * Fs.shape[1]), (Fs, T, beta, m), max_iter)
    S = S.reshape(n_classes, Fs.shape[1])
    return lambda F: np.argmax((F / scale) @ S.T, axis=1)


def _dataset_ref(value, key: str):
    if value is None:
        return None
    if isinstance(value, str):
        return value, {}
    if isinstance(value, dict) and set(value) <= {"name", "params"} and isinstance(value.get("name"), str):
        params = value.get("params") or {}
        if not isinstance(params, dict):
            raise SpecError(f"{key}.params", f"expected a mapping of parameters, got {describe(params)}")
        return value["name"], params
    raise SpecError(key, f"expected a data set name or {{name: ..., params: {{...}}}}, got {describe(value)}")


class LinearProbe(Metric):
    """Test accuracy of a supervised read-out (softmax or the paper's tanh(βS·relu(h)^n)) trained on
    frozen hidden features, with the raw-pixel read-out as baseline (Krotov & Hopfield 2019)."""

    name = "linear_probe"
    options = Schema(
        Option("readouts", "any", ["softmax", "paper"],
               "read-outs fitted, each reported as <readout>_accuracy: softmax regression and/or the paper's "
               "c = tanh(β S relu(h)^n) with loss Σ|c − t|^m"),
        Option("train", "any", None, "labelled data the read-out is trained on ({name, params} as in data:); "
               "default: the run's training data", nullable=True),
        Option("test", "any", None, "labelled data the accuracy is measured on ({name, params} as in data:)", nullable=True),
        Option("n", "number", 4.5, "power n of the hidden activation f = relu(h)^n", low=0, low_open=True),
        Option("beta", "number", 0.01, "β of the paper's read-out c = tanh(β S f)", low=0, low_open=True),
        Option("m", "number", 6.0, "exponent m of the paper's loss Σ|c − t|^m", low=1, low_open=True),
        Option("l2", "number", 1e-4, "L2 penalty of the softmax read-out", low=0),
        Option("max_iter", "integer", 200, "L-BFGS iterations of each read-out fit", low=1),
        Option("untrained", "bool", False, "also read out the same rule at its initial state (random weights drawn "
               "with the run's seed; a stack's normalisation statistics fitted to the training data), reported as "
               "<readout>_untrained_accuracy"),
        checks=(
            lambda p: ("test", "missing; expected the labelled data set to test on, e.g. "
                               "{name: mnist, params: {split: test}}") if p["test"] is None else None,
            lambda p: None if (isinstance(p["readouts"], list) and p["readouts"]
                               and all(r in READOUTS for r in p["readouts"])
                               and len(set(p["readouts"])) == len(p["readouts"]))
            else ("readouts", f"expected a list of distinct read-outs among {', '.join(READOUTS)}, "
                              f"got {describe(p['readouts'])}"),
        ),
    )

    def __init__(self, _key=None, **params):
        super().__init__(_key, **params)
        key = _key if _key is not None else self.name
        from ..plugins import registry

        self._datasets = {}
        for part in ("train", "test"):
            ref = _dataset_ref(self.params[part], f"{key}.{part}")
            if ref is not None:
                name, sub = ref
                cls = registry().datasets.get(name, f"{key}.{part}.name")
                self._datasets[part] = cls.from_config(sub, f"{key}.{part}.params")
        self._loaded = {}

    def _load(self, part: str, ctx: MetricContext):
        if part in self._loaded:
            return self._loaded[part]
        dataset = self._datasets.get(part)
        if dataset is None:
            data = ctx.data
        else:
            own = getattr(ctx.spec, "dataset", None)
            if (type(dataset) is type(own) and "path" in dataset.params and dataset.params["path"] is None
                    and own.params.get("path")):
                dataset = type(dataset)(**{**dataset.params, "path": own.params["path"]})
            seed = ctx.spec.schedule["seed"] if getattr(ctx.spec, "schedule", None) else 0
            data = dataset.load(np.random.default_rng(seed))
        if data.labels is None:
            raise DataError(f"linear_probe: the {part} data ('{data.name}') has no labels")
        self._loaded[part] = (np.asarray(data.X), np.asarray(data.labels).astype(np.int64))
        return self._loaded[part]

    def fit_predict(self, readout, F_train, y_train, F_test, n_classes):
        """Train ``readout`` on (F_train, y_train); predicted labels of F_test and F_train."""
        if readout == "softmax":
            predict = softmax_readout(F_train, y_train, n_classes, self.l2, self.max_iter)
        else:
            predict = tanh_readout(F_train, y_train, n_classes, self.beta, self.m, self.max_iter)
        return predict(F_test), predict(F_train)

    def read_outs(self, ctx, X_train, y_train, X_test, n_classes, state=None) -> dict:
        """{readout: (test labels, train labels)} of one network (``state``, default the run's);
        its features are freed on return, so that two networks' are never held at once (those of
        60,000 images through a deep stack take gigabytes)."""
        F_train, F_test = self.features(ctx, X_train, state), self.features(ctx, X_test, state)
        return {readout: self.fit_predict(readout, F_train, y_train, F_test, n_classes)
                for readout in self.readouts}

    def features(self, ctx: MetricContext, X: np.ndarray, state: dict | None = None) -> np.ndarray:
        """f = relu(h)^n, h = rule.transform(state, x) (default: the run's state), in float64."""
        h = np.array(ctx.rule.transform(ctx.state if state is None else state, X), dtype=np.float64)
        np.maximum(h, 0.0, out=h)
        return h if self.n == 1 else np.power(h, self.n, out=h)

    def untrained_state(self, ctx: MetricContext, X_train: np.ndarray) -> dict:
        """The rule's initial state as the run drew it (its seed's ``init`` stream); a rule with
        statistics to fit (``calibrate``, e.g. a stack's batch normalisation) fits them to ``X_train``."""
        from ..runner import seed_streams

        seed = ctx.spec.schedule["seed"] if getattr(ctx.spec, "schedule", None) else 0
        state = ctx.rule.init_state(seed_streams(seed)["init"])
        if hasattr(ctx.rule, "calibrate"):
            ctx.rule.calibrate(state, X_train)
        return state

    def compute(self, ctx: MetricContext):
        start = time.perf_counter()
        X_train, y_train = self._load("train", ctx)
        X_test, y_test = self._load("test", ctx)
        classes = np.unique(np.concatenate([y_train, y_test]))
        lookup = {c: i for i, c in enumerate(classes)}
        y_tr = np.array([lookup[c] for c in y_train])
        y_te = np.array([lookup[c] for c in y_test])
        k = len(classes)

        for readout in self.readouts:  # the raw pixels do not change during a run: read out once
            baseline = f"{readout}_pixel_accuracy"
            if baseline not in self._loaded:
                pixels, _ = self.fit_predict(readout, np.asarray(X_train, np.float64), y_tr,
                                             np.asarray(X_test, np.float64), k)
                self._loaded[baseline] = float((pixels == y_te).mean())
        trained = self.read_outs(ctx, X_train, y_tr, X_test, k)
        twins = {readout: f"{readout}_untrained_accuracy" for readout in self.readouts} if self.untrained else {}
        if any(twin not in self._loaded for twin in twins.values()):  # the untrained twin does not change
            predicted = self.read_outs(ctx, X_train, y_tr, X_test, k, self.untrained_state(ctx, X_train))
            for readout, twin in twins.items():
                self._loaded[twin] = float((predicted[readout][0] == y_te).mean())
        out = {}
        for readout, (test_pred, train_pred) in trained.items():
            out[f"{readout}_accuracy"] = float((test_pred == y_te).mean())
            out[f"{readout}_train_accuracy"] = float((train_pred == y_tr).mean())
            out[f"{readout}_pixel_accuracy"] = self._loaded[f"{readout}_pixel_accuracy"]
            if readout in twins:
                out[twins[readout]] = self._loaded[twins[readout]]
        out.update({"chance": 1.0 / k, "n_train": len(y_tr), "n_test": len(y_te),
                    "seconds": time.perf_counter() - start})
        return out
