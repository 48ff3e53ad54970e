"""Non-learned stages between the learned layers of a stack: pooling, activation, normalisation.

Every stage maps a batch of channel-last feature maps (n, H, W, C) to another (n, H', W', C'),
declares its options (a :class:`~plasticity_kit.options.Schema`, validated at ``model.layers[i].params``)
and the shape it outputs; a stage with statistics (batch normalisation) owns state arrays, updated
in training mode and frozen when the stack transforms.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import SpecError
from ..options import Option, Schema


class Stage:
    """Base class: ``forward(state, x, training)`` on (n, H, W, C) arrays; ``out_shape(shape)``."""

    name: ClassVar[str] = ""
    options: ClassVar[Schema] = Schema()
    fields: ClassVar[dict[str, str]] = {}

    def __init__(self, params: dict, in_shape: tuple[int, int, int], key: str):
        self.params = params
        self.in_shape = tuple(in_shape)
        self.key = key

    def out_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        return tuple(shape)

    def init_state(self, dtype) -> dict[str, np.ndarray]:
        return {}

    def forward(self, state: dict, x: np.ndarray, training: bool) -> np.ndarray:
        raise NotImplementedError


class _Pool(Stage):
    options = Schema(
        Option("size", "integer", 2, "window side k", low=1),
        Option("stride", "integer", None, "step between windows (default: the window side)", low=1, nullable=True),
        Option("padding", "integer", 0, "border added on every side (ignored by the max, not counted by the mean)",
               low=0),
    )

    def __init__(self, params, in_shape, key):
        super().__init__(params, in_shape, key)
        self.size, self.padding = params["size"], params["padding"]
        self.stride = params["stride"] or self.size
        if self.padding * 2 >= self.size + 1 and self.padding > 0:
            raise SpecError(f"{key}.params.padding", f"expected less than half the window ({self.size}), got {self.padding}")
        h, w, _ = self.out_shape(in_shape)
        if h < 1 or w < 1:
            raise SpecError(f"{key}.params.size", f"a {self.size}×{self.size} window does not fit the {in_shape[0]}×"
                            f"{in_shape[1]} maps it receives")

    def out_shape(self, shape):
        H, W, C = shape
        side = lambda n: (n + 2 * self.padding - self.size) // self.stride + 1  # noqa: E731
        return side(H), side(W), C

    def windows(self, x: np.ndarray, fill: float) -> np.ndarray:
        p = self.padding
        if p:
            x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=fill)
        v = sliding_window_view(x, (self.size, self.size), axis=(1, 2))[:, ::self.stride, ::self.stride]
        h, w, _ = self.out_shape(self.in_shape)
        return v[:, :h, :w]  # (n, h, w, C, k, k)


class MaxPool(_Pool):
    """Max pooling: y[i, j, c] = max of the k×k window at (i·s − p, j·s − p) (padding never wins)."""

    name = "max_pool"

    def forward(self, state, x, training):
        return self.windows(x, -np.inf).max(axis=(4, 5))


class AvgPool(_Pool):
    """Average pooling: y[i, j, c] = mean of the k×k window at (i·s − p, j·s − p) over the pixels
    inside the maps (padding not counted)."""

    name = "avg_pool"

    def forward(self, state, x, training):
        total = self.windows(x, 0.0).sum(axis=(4, 5))
        if not self.padding:
            return total / (self.size * self.size)
        ones = np.ones((1,) + x.shape[1:3] + (1,), dtype=x.dtype)
        return total / self.windows(ones, 0.0).sum(axis=(4, 5))


class Activation(Stage):
    """Pointwise non-linearity: relu max(u, 0); triangle max(u − mean_c u, 0) (Coates et al. 2011,
    SoftHebb's activation: u centred over the channels at each position); tanh; each raised to
    ``power`` (relu with power n is the RePU of Krotov & Hopfield)."""

    name = "activation"
    options = Schema(
        Option("function", "choice", "relu", "relu, triangle (u − mean over channels, then relu) or tanh",
               choices=("relu", "triangle", "tanh")),
        Option("power", "number", 1.0, "exponent applied to the result (sign kept for tanh)", low=0, low_open=True),
    )

    def forward(self, state, x, training):
        f, power = self.params["function"], self.params["power"]
        if f == "tanh":
            y = np.tanh(x)
            return y if power == 1 else np.sign(y) * np.abs(y) ** power
        if f == "triangle":
            x = x - x.mean(axis=3, keepdims=True)
        y = np.maximum(x, 0)
        return y if power == 1 else y ** x.dtype.type(power)


class BatchNorm(Stage):
    """Batch normalisation without learned scale (Ioffe & Szegedy 2015; SoftHebb normalises every
    layer's input this way): y = (x − μ_c)/√(σ²_c + ε) per channel.  In training the batch's own
    statistics are used and folded into running ones, μ ← (1 − m)μ + m·μ_batch (same for σ²);
    the stack's transform uses the running statistics."""

    name = "batch_norm"
    options = Schema(
        Option("momentum", "number", 0.1, "weight m of each batch in the running statistics", low=0, high=1,
               low_open=True),
        Option("eps", "number", 1e-5, "ε added to the variance", low=0, low_open=True),
    )
    fields = {"mean": "running mean per channel", "var": "running variance per channel",
              "count": "training batches seen"}

    def init_state(self, dtype):
        C = self.in_shape[2]
        return {"mean": np.zeros(C, dtype), "var": np.ones(C, dtype), "count": np.zeros(1, np.int64)}

    def forward(self, state, x, training):
        eps = self.params["eps"]
        if training:
            mean = x.mean(axis=(0, 1, 2), dtype=np.float64)
            var = x.var(axis=(0, 1, 2), dtype=np.float64)
            m = 1.0 if state["count"][0] == 0 else self.params["momentum"]
            state["mean"][...] = (1 - m) * state["mean"] + m * mean
            state["var"][...] = (1 - m) * state["var"] + m * var
            state["count"][0] += 1
        else:
            mean, var = state["mean"], state["var"]
        return ((x - mean.astype(x.dtype)) / np.sqrt(var + eps).astype(x.dtype)).astype(x.dtype, copy=False)


class LocalResponseNorm(Stage):
    """Local response normalisation across channels (Krizhevsky et al. 2012):
    y_c = x_c / (k + α/n · Σ_{c' within n/2 of c} x_c'²)^β."""

    name = "local_response_norm"
    options = Schema(
        Option("size", "integer", 5, "n: channels summed around each channel", low=1),
        Option("alpha", "number", 1e-4, "α", low=0),
        Option("beta", "number", 0.75, "β", low=0),
        Option("k", "number", 2.0, "k", low=0, low_open=True),
    )

    def forward(self, state, x, training):
        n, C = self.params["size"], x.shape[3]
        sq = np.concatenate([np.zeros(x.shape[:3] + (1,), x.dtype), np.cumsum(x * x, axis=3)], axis=3)
        lo = np.clip(np.arange(C) - n // 2, 0, C)
        hi = np.clip(np.arange(C) + (n - 1) // 2 + 1, 0, C)
        window = sq[..., hi] - sq[..., lo]
        p = self.params
        return x / (p["k"] + p["alpha"] / n * window) ** p["beta"]


STAGES = {cls.name: cls for cls in (MaxPool, AvgPool, Activation, BatchNorm, LocalResponseNorm)}
"""The stages a ``model.layers`` entry can name with ``stage:``."""
