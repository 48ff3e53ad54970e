"""R independent networks of one rule trained side by side on the same batches (``model.replicas``).

The reference study (Rondini 2023) trains, for every configuration, 64 networks that differ only
in their initial weights; one image per network is then scored.  ``Replicas(rule, R)`` is that
ensemble as a rule of its own: every state array gains a leading replica axis (weights
R × n_neurons × n_inputs, θ R × n_neurons, …), so the recorder, replay and resume treat it like
any state, and the run file holds the replicas along the first axis of each field.

Initial states: replica r is the r-th draw of ``rule.init_state`` from the run's initial-state
generator, so replica 0 starts exactly as the run with ``replicas: 1`` and the same seed.

Training: a rule whose kernel takes stacked states (``Rule.steps_replicas``: BCM, the
Krotov–Hopfield ranking rule) steps all replicas in one call, each block exactly as it would
alone; any other rule is stepped replica by replica on views of the stacked arrays, so every
rule supports replicas.  Either way replica r's trajectory is the one it would have as a run of
its own from its initial state (tested).
"""
from __future__ import annotations

import numpy as np

from .base import Rule


class Replicas:
    """R copies of ``rule``'s network, stacked along a leading axis of every state array."""

    def __init__(self, rule, count: int):
        if count < 1:
            raise ValueError(f"replicas must be >= 1, got {count}")
        self.rule = rule
        self.count = count

    def __getattr__(self, name):  # name, params, model, dtype, fields, … are the rule's
        if name.startswith("__") or name == "rule":  # copy/pickle probe before __init__ ran
            raise AttributeError(name)
        return getattr(self.rule, name)

    @property
    def chunk_steps(self) -> int:
        return self.rule.chunk_steps if self.rule.steps_replicas else 1

    @property
    def snapshot_fields(self) -> tuple[str, ...]:
        return self.rule.snapshot_fields if self.rule.steps_replicas else ()

    def replica(self, state: dict, r: int) -> dict:
        """Views of replica ``r``'s arrays (writing to them writes to ``state``)."""
        return {key: value[r] for key, value in state.items()}

    def init_state(self, rng: np.random.Generator) -> dict:
        states = [self.rule.init_state(rng) for _ in range(self.count)]
        return {key: np.stack([s[key] for s in states]) for key in states[0]}

    def step(self, state, batch):
        if self.rule.steps_replicas:
            self.rule.step(state, batch)
        else:
            for r in range(self.count):
                self.rule.step(self.replica(state, r), batch)

    def run_steps(self, state, X, batches, *marks):  # marks passed on only when given
        if self.rule.steps_replicas:
            return self.rule.run_steps(state, X, batches, *marks)
        for r in range(self.count):
            self.rule.run_steps(self.replica(state, r), X, batches)
        return []

    def end_epoch(self, state, epoch):
        if type(self.rule).end_epoch is Rule.end_epoch and not self.rule.params.get("orthogonalize"):
            return  # the base end_epoch does nothing then: skip building R views every epoch
        for r in range(self.count):
            self.rule.end_epoch(self.replica(state, r), epoch)

    def transform(self, state, x) -> np.ndarray:
        """Responses of every replica, (R, n_samples, n_neurons)."""
        return np.stack([self.rule.transform(self.replica(state, r), x) for r in range(self.count)])

    def synthesize(self, state) -> np.ndarray | None:
        """Every replica's images, replica after replica: (R·n_neurons, n_inputs), or None."""
        images = [self.rule.synthesize(self.replica(state, r)) for r in range(self.count)]
        if any(img is None for img in images):
            return None
        return np.concatenate(images)

    def divergence(self, state) -> str | None:
        for r in range(self.count):
            problem = self.rule.divergence(self.replica(state, r))
            if problem:
                return f"replica {r}: {problem}"
        return None


def replica_count(rule) -> int:
    """R for a :class:`Replicas` ensemble, 1 for a plain rule."""
    return rule.count if isinstance(rule, Replicas) else 1
