"""The metric contract.

A metric is a class registered through the ``register_metrics`` hook, named in a spec's
``metrics:`` list as ``{name: ..., params: {...}, every: N}``.  It is computed at the end of a
run and, with ``every``, every N training steps; values are recorded under
``metrics/<name>/<key>`` in the run file with a ``metrics/<name>/step`` axis, and the final
values appear in the run summary.

``compute(ctx)`` returns a mapping of value name → number or array.  A metric that cannot run
in this installation (a missing optional extra) raises :class:`MetricUnavailable` with a
message saying how to enable it; the run goes on and says so once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..component import Component
from ..errors import PlasticityKitError


class MetricUnavailable(PlasticityKitError):
    """This metric cannot be computed here (e.g. an optional extra is not installed)."""


@dataclass
class MetricContext:
    """What a metric sees: the rule, its current state, the training data and where in training."""

    rule: Any
    state: dict
    data: Any
    spec: Any
    step: int
    epoch: int

    @property
    def X(self) -> np.ndarray:
        return self.data.X


class Metric(Component):
    """Base class: ``compute(ctx) -> {value_name: float | ndarray}``."""

    def compute(self, ctx: MetricContext) -> dict[str, Any]:
        raise NotImplementedError
