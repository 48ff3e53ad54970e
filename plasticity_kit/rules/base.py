"""The contract every learning rule implements (built-in or third-party).

A rule is a class registered through the ``register_rules`` hook.  It declares:

* ``name``: the word used in specs (``model.rule.name``);
* ``options``: a :class:`~plasticity_kit.options.Schema` of its parameters (``model.rule.params``);
* ``uses``: which model components it takes (``activation``, ``interaction``, ``optimizer``,
  ``initializer``), with ``defaults`` naming the built-in used when the spec omits one;
* ``fields``: the recordable state arrays, name → description; ``default_record`` those
  recorded when the spec does not say.

and implements ``init_state(rng)``, ``step(state, batch)``, ``transform(state, x)`` and, where
weights are images, ``synthesize(state)``; ``end_epoch(state, epoch)`` runs after every epoch.
A rule with a multi-step kernel sets ``chunk_steps`` and overrides ``run_steps(state, X, batches)``.
The state is a plain ``dict`` of numpy arrays (nested
names such as ``optimizer/m`` allowed) so that the recorder, replay and resume treat every rule
alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import SpecError
from ..initializers import symmetric_orthogonalization
from ..options import Option, Schema

COMPONENTS = ("activation", "interaction", "optimizer", "initializer")


@dataclass
class Model:
    """What a rule is built from: sizes, dtype, its validated params and component objects."""

    n_inputs: int
    n_neurons: int
    dtype: np.dtype = np.dtype(np.float32)
    params: dict = field(default_factory=dict)
    activation: Any = None
    interaction: Any = None
    optimizer: Any = None
    initializer: Any = None
    epochs: int | None = None  # the run's schedule.epochs (set by RunSpec.build_rule), for learning-rate schedules


ORTHOGONALIZE = Option(
    "orthogonalize", "bool", False,
    "symmetric orthogonalisation W ← (WWᵀ)^(-1/2)W of the initial weights and after every epoch "
    "(neurons are pushed to select different patterns; needs n_neurons ≤ n_inputs)")
"""The option a rule adds to its schema to offer orthogonalisation (handled by :class:`Rule`)."""


class Rule:
    """Base class of learning rules.  Subclasses set the class attributes and the four methods."""

    name: ClassVar[str] = ""
    """The word used in specs (``model.rule.name``); unique among the installed rules."""
    options: ClassVar[Schema] = Schema()
    """The rule's parameters (``model.rule.params``): a :class:`~plasticity_kit.options.Schema`
    of typed, bounded :class:`~plasticity_kit.options.Option` s; validated values arrive in
    ``self.params``."""
    uses: ClassVar[tuple[str, ...]] = ("initializer",)
    """The model components the rule takes, among ``activation``, ``interaction``, ``optimizer``,
    ``initializer``; built from the spec's ``model.<component>`` keys into ``self.model``.  A spec
    naming a component the rule does not use is an error."""
    defaults: ClassVar[dict] = {"initializer": "normal"}
    """Component → what to use when the spec omits it: a name (``"normal"``) or a mapping
    ``{"name": "normal", "params": {"std": 0.01}}``."""
    fields: ClassVar[dict[str, str]] = {"weights": "synaptic weights W, shape (n_neurons, n_inputs)"}
    """The state arrays that can be recorded over time (``record.fields``), name → description.
    Must include ``weights``."""
    default_record: ClassVar[tuple[str, ...]] = ("weights",)
    """The fields recorded when the spec's ``record.fields`` is omitted."""
    chunk_steps: ClassVar[int] = 1
    """The most steps the scheduler hands to :meth:`run_steps` at once.  Above 1 only for rules
    whose ``end_epoch`` does nothing (a chunk may span epochs) and whose kernel gains from
    seeing many steps (BCM: one network's state stays in cache, the sample-space form)."""
    snapshot_fields: ClassVar[tuple[str, ...]] = ()
    """State arrays that :meth:`run_steps` can copy out after given steps inside one call
    (``marks``).  When every recorded field is one of them, the scheduler takes the frames inside
    the call instead of ending it at each (BCM's θ: its sample-space kernel forms W once per call,
    a product as large as ~800 steps at batch 10 on the Olivetti faces)."""
    steps_replicas: ClassVar[bool] = False
    """True when ``step``/``run_steps`` accept states with a leading replica axis (R networks
    stepped on the same batches in one kernel call; see :mod:`plasticity_kit.rules.replicas`)."""

    def __init__(self, model: Model):
        self.model = model
        self.params = model.params
        self.dtype = np.dtype(model.dtype)
        if self.params.get("orthogonalize") and model.n_neurons > model.n_inputs:
            raise SpecError("model.rule.params.orthogonalize",
                            f"needs at most as many neurons as inputs (model.n_neurons = {model.n_neurons}, "
                            f"{model.n_inputs} inputs): more rows than columns cannot be orthonormal")

    def init_state(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Fresh state: at least ``weights`` (n_neurons × n_inputs) drawn by the initializer
        (then orthogonalised when the rule's ``orthogonalize`` option is on).

        Override it to add state arrays (a threshold, a running mean): call
        ``super().init_state(rng)`` and add C-contiguous arrays in ``self.dtype``.  Draw anything
        random from ``rng`` only (the run's seeded initial-state stream), so that the same spec and
        seed give the same run and replica r of a replicated run starts from the r-th draw."""
        m = self.model
        weights = m.initializer(rng, (m.n_neurons, m.n_inputs), self.dtype)
        if self.params.get("orthogonalize"):
            weights = symmetric_orthogonalization(weights)
        return {"weights": np.ascontiguousarray(weights, dtype=self.dtype)}

    def step(self, state: dict[str, np.ndarray], batch: np.ndarray) -> None:
        """Apply the rule to one mini-batch, updating ``state`` in place (the only method without a
        default).

        ``batch``: C-contiguous (B × n_inputs) in the model dtype, values in [0, 1] for every
        built-in data set; the last batch of an epoch may be smaller.  It may be a buffer the
        scheduler reuses: never modify it or keep a reference to it."""
        raise NotImplementedError

    def run_steps(self, state: dict[str, np.ndarray], X: np.ndarray, batches: np.ndarray,
                  marks=()) -> list[dict[str, np.ndarray]]:
        """Steps on the batches ``X[batches[0]]``, ``X[batches[1]]``, … in turn (``batches``: S × B
        sample indices).  Rules with ``chunk_steps`` > 1 override it with one kernel call.

        ``marks``: increasing step counts 1 ≤ m < S (given only to rules with
        ``snapshot_fields``); returns, for each, copies of the ``snapshot_fields`` as they were
        after the first m steps."""
        snapshots, marks = [], list(marks)
        for done, idx in enumerate(batches, 1):
            self.step(state, X[idx])
            if marks and marks[0] == done:
                snapshots.append({key: state[key].copy() for key in self.snapshot_fields})
                marks.pop(0)
        return snapshots

    def end_epoch(self, state: dict[str, np.ndarray], epoch: int) -> None:
        """Called by the scheduler after the last step of every epoch (``epoch`` = epochs completed).

        Default: nothing, unless the rule's ``orthogonalize`` option (:data:`ORTHOGONALIZE`) is on:
        then W ← (WWᵀ)^(-1/2)W in place (the re-orthogonalisation of the Nico-Curti/plasticity
        library, so that no neuron is privileged).
        """
        if self.params.get("orthogonalize"):
            state["weights"][...] = symmetric_orthogonalization(state["weights"])

    def transform(self, state: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        """Responses of the neurons to inputs ``x`` (n × n_inputs) → (n × n_neurons)."""
        return np.asarray(x, dtype=self.dtype) @ state["weights"].T

    def synthesize(self, state: dict[str, np.ndarray]) -> np.ndarray | None:
        """Each neuron's weights mapped to grey levels in [0, 1] (min–max per neuron), or None."""
        return minmax_rows(state["weights"])

    def divergence(self, state: dict[str, np.ndarray]) -> str | None:
        """A message if the state is no longer finite, else None (checked after every step)."""
        for key, value in state.items():
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                return f"'{key}' is no longer finite (NaN or inf)"
        return None


def minmax_rows(weights: np.ndarray) -> np.ndarray:
    """Rescale every row to [0, 1]: (w − min w) / (max w − min w); a constant row maps to 0.5."""
    w = np.asarray(weights, dtype=np.float64)
    lo = w.min(axis=1, keepdims=True)
    span = w.max(axis=1, keepdims=True) - lo
    out = np.full_like(w, 0.5)
    np.divide(w - lo, span, out=out, where=span > 0)
    return out
