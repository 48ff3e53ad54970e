"""Optimizers that apply a rule's weight change ΔW to the weights.

Local rules give an ascent direction ΔW (not a loss gradient); an optimizer turns it into the
actual step, as in the Nico-Curti/plasticity library (Curti et al. 2023: "move from classical
SGD to modern ones, e.g. Adam").  The numpy ``apply`` is the reference; built-ins carry a
``kernel_code`` and ``kernel_args()`` that the Cython kernels fuse into the weight update.

The optimizer's state (moments, step counter ``t``) lives in the rule state under
``optimizer/<name>`` so it is recorded with the run.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from .component import Component
from .options import Option, Schema

SGD_CODE, MOMENTUM_CODE, ADAM_CODE = 0, 1, 2


def flush_subnormals(a: np.ndarray) -> None:
    """Set subnormal entries to 0 in place.  Moments of a silent neuron decay into subnormals
    that never reach zero and slow every later step ~100×; the kernels flush the same way."""
    a[np.abs(a) < np.finfo(a.dtype).tiny] = 0


class Optimizer(Component):
    """Base class.  ``apply(param, delta, state)`` does ``param += step(delta)`` in place."""

    kernel_code: ClassVar[int | None] = None
    state_names: ClassVar[tuple[str, ...]] = ()

    def init_state(self, shape: tuple, dtype) -> dict[str, np.ndarray]:
        """Fresh state arrays, keyed by name (the step counter ``t`` is always there)."""
        state = {name: np.zeros(shape, dtype=dtype) for name in self.state_names}
        state["t"] = np.zeros(1, dtype=np.int64)
        return state

    def apply(self, param: np.ndarray, delta: np.ndarray, state: dict) -> None:
        raise NotImplementedError

    def kernel_args(self) -> tuple[float, float, float, float]:
        """(lr, a, b, eps) as the kernels read them."""
        raise NotImplementedError


class SGD(Optimizer):
    """Plain step, W ← W + lr·ΔW."""

    name = "sgd"
    kernel_code = SGD_CODE
    options = Schema(Option("lr", "number", 0.01, "learning rate", low=0, low_open=True))

    def apply(self, param, delta, state):
        state["t"][0] += 1
        param += param.dtype.type(self.lr) * delta

    def kernel_args(self):
        return (self.lr, 0.0, 0.0, 0.0)


class Momentum(Optimizer):
    """Heavy-ball momentum, v ← μ·v + ΔW, W ← W + lr·v."""

    name = "momentum"
    kernel_code = MOMENTUM_CODE
    state_names = ("velocity",)
    options = Schema(
        Option("lr", "number", 0.01, "learning rate", low=0, low_open=True),
        Option("momentum", "number", 0.9, "momentum μ", low=0, high=1, high_open=True),
    )

    def apply(self, param, delta, state):
        state["t"][0] += 1
        v = state["velocity"]
        v *= v.dtype.type(self.momentum)
        v += delta
        flush_subnormals(v)
        param += param.dtype.type(self.lr) * v

    def kernel_args(self):
        return (self.lr, self.momentum, 0.0, 0.0)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) on the ascent direction ΔW:
    m ← β1·m + (1−β1)·ΔW, v ← β2·v + (1−β2)·ΔW², W ← W + lr·m̂/(√v̂ + ε),
    m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ)."""

    name = "adam"
    kernel_code = ADAM_CODE
    state_names = ("m", "v")
    options = Schema(
        Option("lr", "number", 0.001, "learning rate", low=0, low_open=True),
        Option("beta1", "number", 0.9, "first-moment decay β1", low=0, high=1, high_open=True),
        Option("beta2", "number", 0.999, "second-moment decay β2", low=0, high=1, high_open=True),
        Option("epsilon", "number", 1e-8, "ε in the denominator", low=0, low_open=True),
    )

    def apply(self, param, delta, state):
        state["t"][0] += 1
        t = int(state["t"][0])
        m, v = state["m"], state["v"]
        b1, b2 = self.beta1, self.beta2
        m *= m.dtype.type(b1)
        m += m.dtype.type(1 - b1) * delta
        v *= v.dtype.type(b2)
        v += v.dtype.type(1 - b2) * delta * delta
        flush_subnormals(m)
        flush_subnormals(v)
        # same operation order as the kernel: lr·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ε)
        c1 = 1.0 / (1.0 - b1**t)
        c2 = 1.0 / (1.0 - b2**t)
        mhat = m.astype(np.float64) * c1
        vhat = v.astype(np.float64) * c2
        param += (self.lr * mhat / (np.sqrt(vhat) + self.epsilon)).astype(param.dtype)

    def kernel_args(self):
        return (self.lr, self.beta1, self.beta2, self.epsilon)


BUILTINS = (SGD, Momentum, Adam)
