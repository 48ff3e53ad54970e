"""The metric contract.

A metric is a class registered through the ``register_metrics`` hook, named in a spec's
``metrics:`` list as ``{name: ..., params: {...}, every: N}``.  It is computed at the end of a
run and, with ``every``, every N training steps; values are recorded under
``metrics/<name>/<key>`` in the run file with a ``metrics/<name>/step`` axis, and the final
values appear in the run summary.

``compute(ctx)`` returns a mapping of value name → number or array.  A metric that cannot run
in this installation (a missing optional extra) raises :class:`MetricUnavailable` with a
message saying how to enable it; the run goes on and says so once.

Replicas (``model.replicas`` R > 1): :func:`evaluate` computes a metric once per replica and
stacks each value along a leading replica axis, adding ``<value>_mean`` (the mean over the
replicas) for scalar values — unless the metric sets ``pools_replicas``: the image metrics score
the synthetic images of all replicas together, as the reference study scores one image from
each of its 64 initialisations.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
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

    pools_replicas = False
    """True: ``compute`` takes the whole ensemble of a replicated run at once (see :func:`evaluate`)."""

    def compute(self, ctx: MetricContext) -> dict[str, Any]:
        raise NotImplementedError


def evaluate(metric: Metric, ctx: MetricContext) -> dict[str, Any]:
    """``metric.compute(ctx)``; for a replicated run, once per replica (values stacked along a
    leading axis, scalars also averaged as ``<key>_mean``) unless the metric pools replicas."""
    from ..rules.replicas import Replicas

    rule = ctx.rule
    if not isinstance(rule, Replicas) or metric.pools_replicas:
        return metric.compute(ctx)
    per = [metric.compute(replace(ctx, rule=rule.rule, state=rule.replica(ctx.state, r))) for r in range(rule.count)]
    out: dict[str, Any] = {}
    for key in per[0]:
        values = [np.asarray(v.get(key, np.nan)) for v in per]
        if any(v.shape != values[0].shape for v in values):
            continue  # no common shape to stack (not among the built-in metrics)
        out[key] = np.stack(values)
        if values[0].ndim == 0 and values[0].dtype.kind in "biuf":
            out[f"{key}_mean"] = float(np.nanmean(out[key])) if np.isfinite(out[key]).any() else float("nan")
    return out
