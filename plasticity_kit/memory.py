"""How much memory a run needs, and how much the machine has — checked before anything is allocated.

:func:`estimate` adds up the arrays a run holds at once, from the spec and the data's size alone:

* data: the loaded samples X (n × D float64) and their copy in the state's dtype;
* state: the weights (n_neurons × n_inputs, or positions × n_neurons × k²C for weight sharing),
  the optimizer's moments (one array of the weights' shape each: momentum 1, Adam 2), per-neuron
  vectors, times ``model.replicas``;
* the interaction factor (I−L)⁻¹ with L and I−L (3 × N² float64) when the rule has an interaction;
* BCM's sample-space form (SGD, n ≤ min(D, 2048)): the Gram matrix X·Xᵀ (n² float64) and the
  coefficients C (R × N × n float64) beside W0;
* weight sharing: the SNR record of a sleep phase and its random inputs (sleep_steps ×
  sleep_batch × k²C float64);
* recording: one frame of the recorded fields in flight, and the synthetic images at the end
  (one float64 copy of the weights).

:func:`check` compares what is still to be allocated when the rule is built — everything but the
data, which is loaded by then (in ``run`` and ``validate`` alike) — with the available memory.
:func:`available` reads ``MemAvailable`` from ``/proc/meminfo`` and the cgroup limit (v2
``memory.max`` − ``memory.current``, v1 ``memory.limit_in_bytes`` − ``memory.usage_in_bytes``), the
smaller of the two; ``None`` where neither can be read (then nothing is refused).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from .errors import SpecError

LOADED = ("data", "data copy")  # in memory before the rule is built, in run and in validate alike
GRAM_MAX = 2048  # the BCM rule's sample-space form applies up to this many samples (rules/bcm.py)
MEMINFO = "/proc/meminfo"
CGROUP_V2 = "/sys/fs/cgroup"
CGROUP_V1 = "/sys/fs/cgroup/memory"


def human(n: float) -> str:
    """``1536`` → ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (no limit) → None


def _meminfo_available(path: str = MEMINFO) -> int | None:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def available(meminfo: str = MEMINFO, cgroup_v2: str = CGROUP_V2, cgroup_v1: str = CGROUP_V1) -> int | None:
    """Bytes this process can still allocate: min(MemAvailable, cgroup limit − cgroup usage), or None."""
    candidates = [_meminfo_available(meminfo)]
    for limit_file, usage_file in ((os.path.join(cgroup_v2, "memory.max"), os.path.join(cgroup_v2, "memory.current")),
                                   (os.path.join(cgroup_v1, "memory.limit_in_bytes"),
                                    os.path.join(cgroup_v1, "memory.usage_in_bytes"))):
        limit = _read_int(limit_file)
        if limit is not None and limit < 1 << 60:  # v1 reports "no limit" as a huge number
            candidates.append(max(0, limit - (_read_int(usage_file) or 0)))
    known = [c for c in candidates if c is not None]
    return min(known) if known else None


@dataclass
class Estimate:
    """The memory a run needs: ``items`` of (what, bytes, spec key that sets its size)."""

    items: list = field(default_factory=list)

    def add(self, what: str, nbytes: int, key: str) -> None:
        if nbytes:
            self.items.append((what, int(nbytes), key))

    @property
    def total(self) -> int:
        return sum(n for _, n, _ in self.items)

    @property
    def pending(self) -> list:
        """The items not yet allocated when the rule is built (the data is loaded by then)."""
        return [item for item in self.items if item[0] not in LOADED]

    def largest(self) -> tuple:
        return max(self.pending or self.items, key=lambda item: item[1])

    def describe(self) -> str:
        """``about 12.3 MiB (state 1.2 MiB, data 11.1 MiB)``: the total and its largest parts."""
        parts = sorted(self.items, key=lambda item: -item[1])[:4]
        return f"about {human(self.total)} (" + ", ".join(f"{what} {human(n)}" for what, n, _ in parts) + ")"


def _state_shape(spec, n_inputs: int) -> tuple[int, ...]:
    """Shape of one network's weights (the state's largest array)."""
    params = spec.model.params
    n = spec.model.n_neurons
    if "kernel_size" in params and "input_shape" in params:  # weight sharing: positions × channels × k²C
        shape = list(params["input_shape"]) + [1] * (3 - len(params["input_shape"]))
        h, w, c = shape[:3]
        k, s, p = params["kernel_size"], params.get("stride", 1), params.get("padding", 0)
        out_h, out_w = max(0, (h + 2 * p - k) // s + 1), max(0, (w + 2 * p - k) // s + 1)
        return (out_h * out_w, n, k * k * c)
    return (n, n_inputs)


def estimate(spec, n_samples: int, n_inputs: int) -> Estimate:
    """The run's memory (see the module docstring); ``n_samples`` may be 0 when unknown."""
    itemsize = np.dtype(spec.model.dtype).itemsize
    replicas = spec.replicas
    est = Estimate()
    est.add("data", n_samples * n_inputs * 8, "data")
    if itemsize != 8:
        est.add("data copy", n_samples * n_inputs * itemsize, "data")

    weights = math.prod(_state_shape(spec, n_inputs))
    moments = len(getattr(spec.model.optimizer, "state_names", ())) if spec.model.optimizer is not None else 0
    neuron_key = "model.replicas" if replicas > 1 else "model.n_neurons"
    est.add("state", replicas * weights * itemsize * (1 + moments), neuron_key)
    params = spec.model.params
    sleep_steps = params.get("sleep_steps")
    if isinstance(sleep_steps, int):
        est.add("sleep record", replicas * (sleep_steps + 1) * itemsize, "model.rule.params.sleep_steps")
        sleep_batch = params.get("sleep_batch")
        if isinstance(sleep_batch, int) and params.get("sleep", "none") != "none":
            filter_size = _state_shape(spec, n_inputs)[-1]  # one phase's random tiles, float64
            key = "model.rule.params." + ("sleep_steps" if sleep_steps >= sleep_batch else "sleep_batch")
            est.add("sleep inputs", sleep_steps * sleep_batch * filter_size * 8, key)
    n = spec.model.n_neurons
    if spec.model.interaction is not None:
        est.add("interaction", 3 * n * n * 8, "model.n_neurons")
    optimizer = spec.model.optimizer
    if optimizer is not None and getattr(optimizer, "name", "") == "sgd" and 0 < n_samples <= min(n_inputs, GRAM_MAX):
        est.add("Gram matrix", n_samples * n_samples * 8 + replicas * n * n_samples * 8 + replicas * weights * 8,
                "data")
    est.add("record frame", replicas * weights * itemsize, neuron_key)
    est.add("synthetic images", replicas * weights * 8, neuron_key)
    return est


def check(spec, n_samples: int, n_inputs: int, free: int | None = None) -> Estimate:
    """The estimate, or SpecError naming the key that sets its largest part when what is still to
    be allocated (all but the loaded data, which ``available`` already leaves out) exceeds the
    available memory (``free``, default :func:`available`)."""
    est = estimate(spec, n_samples, n_inputs)
    free = available() if free is None else free
    if free is not None and sum(n for _, n, _ in est.pending) > free:
        _, _, key = est.largest()
        raise SpecError(key, f"expected a run that fits in the {human(free)} of memory available, got one that "
                        f"needs {est.describe()}; reduce {key}")
    return est
