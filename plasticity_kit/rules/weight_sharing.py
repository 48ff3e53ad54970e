"""Hebbian dynamic weight sharing in a locally connected layer (Pogodin, Mehta, Lillicrap & Latham,
"Towards biologically plausible convolutional networks", NeurIPS 2021).

The layer has one filter per output position and channel, no weight tying: position p sees the
k×k×C patch x_p of the zero-padded image at (py·stride − padding, px·stride − padding), flattened
in (ky, kx, c) order, and responds z_pf = w_pfᵀ x_p.  Filters are ``weights[p, f]``, shape
(positions, channels, k·k·C); ``model.n_neurons`` is the number of channels F per position.

Wake (every step, one mini-batch of images):

    ΔW_p = η [ ⟨z_p x_pᵀ⟩ − mask(⟨z_p z_pᵀ⟩) W_p − λ W_p ]
    hebbian: mask = 0 (plain Hebb with decay λ) · oja: mask = diag (Oja 1982, each channel on its
    own: all converge to the first principal component of the position's patches)
    sanger: mask = lower triangle with the diagonal (Sanger 1989, the channels learn distinct filters)

Sleep (after every ``sleep_every``-th step), ``sleep_steps`` iterations on random inputs that
every position of a sharing group sees identically (Pogodin et al., Sec. 4, Eq. 4):

    z_i = w_iᵀ x,   Δw_i = −η_s [ x (z_i − mean_j z_j) + γ (w_i − w_i^start) ]

— gradient descent on Σ_i (z_i − z̄)² / 2 + γ/2 Σ_i ‖w_i − w_i^start‖²; the slides' "Δw ∝ x(z_i −
z̄) − γ(…)" leaves out that the constant of proportionality is negative, the only sign whose fixed
point is the one they give.  For inputs with covariance C and a fixed anchor the filters converge
to w_i* = (C + γI)⁻¹ (C mean_j w_j^start + γ w_i^start) (:func:`sleep_fixed_point`).  Each
iteration draws ``sleep_batch`` i.i.d. N(0, σ²) tiles of k×k×C; the update averages over them.

``sharing`` says which positions see the same input: ``all`` — every position gets the same patch
(the paper's theory and its Fig. 4: one group); ``grid`` — the tile is repeated over the padded
image (period k, as ``torch.kron`` in Pogodin et al.'s code), so positions whose receptive fields
start k pixels apart see the same patch and form one group (a cyclic shift of the tile each).
With stride a multiple of k, ``grid`` is one group too.

``sleep: circuit`` replaces the exact centring by the slides' inhibitory circuit: each sleep
input is presented for ``circuit_duration`` ms to rate neurons that start at rest,

    τ ṙ_i = −r_i + w_iᵀx − α r_inh + b,   τ ṙ_inh = −r_inh + mean_i r_i + b,

and the Hebbian term uses r_i − r_rest, r_rest = b(1−α)/(1+α) the rate at zero input (the slides
do not give the circuit's plasticity rule; this is our reading).  The system is linear, so it is
integrated exactly (:func:`circuit_coefficients`): differences from the mean relax with τ, the
mean (and r_inh) as a damped oscillator of frequency √α/τ, and

    r_i(T) − r_rest = (1 − e^{−s}) (z_i − z̄) + [1 − e^{−s}(cos ωs − ω sin ωs)] / (1 + α) · z̄,
    s = T/τ, ω = √α;

b only shifts the resting rates and cancels.  As T → ∞ this is z_i − α/(1+α) z̄, which tends to
z_i − z̄ as α → ∞.  With finite α the leftover z̄/(1+α) also shrinks the filters' mean (at rate
η_s σ² c_mean per iteration, down to γ/(σ² c_mean + γ) of its start), so SNR_w peaks and then
falls back over a long phase (``benchmarks/weight_sharing_fig4.py``, panel B; the slides'
figure is missing, so this could not be compared with the paper's Fig. 4B).
``sleep: instant`` sets every filter to its group mean (the exact limit, as Pogodin et al.'s
``--instant-weight-sharing``).

The sleep inputs of phase n come from ``numpy.random.default_rng([sleep_seed, n])``, ``sleep_seed``
being drawn from the initial-state stream and kept in the state: runs are reproducible and the
inputs of any phase can be regenerated.  The state also keeps SNR_w (Eq. 6,
:mod:`plasticity_kit.metrics.weight_sharing_snr`) after every iteration of the latest phase and
the SNR_w of that phase's closed-form end point (the paper's "theoretical minimum" of −log SNR).

``reference_forward``, ``reference_wake_step``, ``reference_sleep_phase`` and ``instant_sharing``
are the plain-numpy equations; the rule runs the Cython kernels of
``plasticity_kit.kernels.locally_connected`` (instant sharing is one numpy mean).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SpecError
from ..metrics.weight_sharing_snr import weight_sharing_snr
from ..model.conv import Geometry, im2col_reference
from ..options import Option, Schema
from .base import Model, Rule

KEY = "model.rule.params"
WAKE_RULES = ("hebbian", "oja", "sanger", "none")
WAKE_CODES = {"hebbian": 0, "oja": 1, "sanger": 2}
SLEEP_MODES = ("hebbian", "circuit", "instant", "none")
TRANSFORM_CHUNK = 1024


def sharing_groups(g: Geometry, sharing: str) -> "Groups":
    """Positions of layer ``g`` that see the same sleep input, and the tile shift each group sees.

    ``all``: one group, no shift.  ``grid``: the k×k tile repeats over the padded image from its
    corner, so the receptive field starting at padded pixel (py·s, px·s) sees the tile shifted by
    (py·s mod k, px·s mod k); sleep inputs continue over the border (no zero padding), so border
    positions share like the others.
    """
    P, k = g.positions, g.kernel
    if sharing == "all":
        return Groups(np.arange(P, dtype=np.int64), np.array([0, P], dtype=np.int64),
                      np.zeros((1, 2), dtype=np.int64))
    py, px = np.divmod(np.arange(P), g.out_width)
    oy, ox = (py * g.stride) % k, (px * g.stride) % k
    key = oy * k + ox
    order = np.argsort(key, kind="stable").astype(np.int64)
    keys, starts = np.unique(key[order], return_index=True)
    ptr = np.append(starts, P).astype(np.int64)
    return Groups(order, ptr, np.stack(np.divmod(keys, k), axis=1).astype(np.int64))


def kernel_args(g: Geometry) -> tuple[int, ...]:
    """(H, W, C, k, stride, padding, out_width), the locally connected kernels' geometry arguments."""
    return (*g.args, g.out_width)


@dataclass(frozen=True)
class Groups:
    """``order[ptr[g]:ptr[g+1]]`` are the positions of group g; ``offsets[g]`` = (oy, ox) the cyclic
    shift of the sleep tile they all see."""

    order: np.ndarray
    ptr: np.ndarray
    offsets: np.ndarray

    def members(self):
        for g in range(len(self.offsets)):
            yield g, self.order[self.ptr[g]:self.ptr[g + 1]]


# ---------------------------------------------------------------------------------- references

def extract_patches(X: np.ndarray, geom: Geometry) -> np.ndarray:
    """Every position's patch: (n, P, K) from images X (n, H·W·C) flattened in (y, x, c) order."""
    return im2col_reference(X, geom).reshape(len(X), geom.positions, geom.patch_size)


def reference_forward(W: np.ndarray, X: np.ndarray, geom: Geometry) -> np.ndarray:
    """Responses z[b, p, f] = W[p, f] · x_p(X[b]), shape (n, P, F)."""
    patches = extract_patches(np.asarray(X, dtype=W.dtype), geom)
    return np.matmul(patches.transpose(1, 0, 2), W.transpose(0, 2, 1)).transpose(1, 0, 2)


def reference_wake_step(W: np.ndarray, X: np.ndarray, geom: Geometry, rule: str, lr: float, decay: float) -> None:
    """ΔW_p = lr [ (Z_pᵀX_p − mask(Z_pᵀZ_p) W_p) / B − λ W_p ], in place (see the module docstring)."""
    patches = extract_patches(np.asarray(X, dtype=W.dtype), geom).transpose(1, 0, 2)  # P, B, K
    B = patches.shape[1]
    Z = patches @ W.transpose(0, 2, 1)                     # P, B, F
    dW = Z.transpose(0, 2, 1) @ patches                    # P, F, K
    if rule != "hebbian":
        G = Z.transpose(0, 2, 1) @ Z                       # P, F, F
        F = W.shape[1]
        mask = np.eye(F, dtype=bool) if rule == "oja" else np.tril(np.ones((F, F), dtype=bool))
        dW -= np.where(mask, G, 0) @ W
    W *= W.dtype.type(1.0 - lr * decay)
    W += W.dtype.type(lr / B) * dW


def sleep_inputs(tiles: np.ndarray, offset) -> np.ndarray:
    """The patches (B, K) a group with tile shift (oy, ox) sees: x[ky, kx] = tile[(oy+ky) % k, (ox+kx) % k]."""
    oy, ox = int(offset[0]), int(offset[1])
    return np.roll(tiles, (-oy, -ox), axis=(1, 2)).reshape(tiles.shape[0], -1)


def circuit_coefficients(alpha: float, tau: float, duration: float) -> tuple[float, float]:
    """(c_diff, c_mean) with r_i(T) − r_rest = c_diff (z_i − z̄) + c_mean z̄ for the inhibitory
    circuit started at rest and driven for T = ``duration`` (same unit as ``tau``):
    c_diff = 1 − e^{−s}, c_mean = [1 − e^{−s}(cos ωs − ω sin ωs)] / (1 + α), s = T/τ, ω = √α.
    The exact Hebbian sleep is (1, 0)."""
    s, w = duration / tau, np.sqrt(alpha)
    decay = np.exp(-s)
    return float(1.0 - decay), float((1.0 - decay * (np.cos(w * s) - w * np.sin(w * s))) / (1.0 + alpha))


def reference_sleep_phase(W: np.ndarray, tiles: np.ndarray, groups: Groups, lr: float, gamma: float,
                          coefficients: tuple[float, float] = (1.0, 0.0)) -> np.ndarray:
    """One sleep phase in place on W (P, F, K); returns SNR_w before and after each iteration (T + 1).

    ``tiles`` (T, B, k, k, C); ``coefficients`` = (c_diff, c_mean) of r_i = c_diff (z_i − z̄) + c_mean z̄:
    (1, 0) is the exact Hebbian sleep, :func:`circuit_coefficients` the inhibitory circuit.
    """
    c_diff, c_mean = coefficients
    dt = W.dtype.type
    start = W.copy()
    T, B = tiles.shape[:2]
    snr = np.empty(T + 1)
    snr[0] = weight_sharing_snr(W)
    for t in range(T):
        for g, idx in groups.members():
            X = sleep_inputs(tiles[t], groups.offsets[g]).astype(W.dtype)
            Wg = W[idx]
            Z = np.einsum("bk,pfk->bpf", X, Wg)
            mean = Z.mean(axis=1, keepdims=True, dtype=np.float64)
            R = (c_diff * Z.astype(np.float64) + (c_mean - c_diff) * mean).astype(W.dtype)
            Wg = Wg - dt(lr * gamma) * (Wg - start[idx])
            Wg += dt(-lr / B) * np.einsum("bpf,bk->pfk", R, X)
            W[idx] = Wg
        snr[t + 1] = weight_sharing_snr(W)
    return snr


def instant_sharing(W: np.ndarray, groups: Groups) -> None:
    """Set every filter to the mean of its group's filters, in place (the exact limit of the sleep)."""
    for _, idx in groups.members():
        W[idx] = W[idx].mean(axis=0, dtype=np.float64).astype(W.dtype)


def sleep_fixed_point(W_start: np.ndarray, C: np.ndarray, gamma: float, groups: Groups) -> np.ndarray:
    """w_i* = (C + γI)⁻¹ (C mean_{j∈group} w_j^start + γ w_i^start) (Pogodin et al., Sec. 4), float64.

    The end point of the Hebbian sleep for inputs of second-moment matrix C (K × K) and a fixed anchor.
    """
    W0 = np.asarray(W_start, dtype=np.float64)
    K = W0.shape[-1]
    A = np.asarray(C, dtype=np.float64) + gamma * np.eye(K)
    out = np.empty_like(W0)
    for _, idx in groups.members():
        rhs = W0[idx].mean(axis=0) @ C.T + gamma * W0[idx]          # (n, F, K), rows (C w̄ + γ w_i)ᵀ
        out[idx] = np.linalg.solve(A, rhs.reshape(-1, K).T).T.reshape(rhs.shape)
    return out


# ---------------------------------------------------------------------------------- the rule

def _check_geometry(p: dict):
    shape = p["input_shape"]
    if len(shape) not in (2, 3):
        return "input_shape", f"expected [H, W] or [H, W, C], got {shape}"
    if min(shape) < 1:
        return "input_shape", f"expected positive sizes, got {shape}"
    k, pad = p["kernel_size"], p["padding"]
    if k > min(shape[0], shape[1]) + 2 * pad:
        return "kernel_size", (f"expected at most {min(shape[0], shape[1]) + 2 * pad} (the padded image is "
                               f"{shape[0] + 2 * pad}x{shape[1] + 2 * pad}), got {k}")
    if pad >= k:
        return "padding", f"expected less than kernel_size ({k}), got {pad}"
    return None


class HebbianWeightSharing(Rule):
    """Locally connected layer with Hebbian wake learning and sleep phases of dynamic weight sharing
    (Pogodin et al. 2021): Δw_i = −η[x(z_i − mean_j z_j) + γ(w_i − w_i^start)] on shared random inputs."""

    name = "hebbian_weight_sharing"
    uses = ("initializer",)
    defaults = {"initializer": "normal"}
    options = Schema(
        Option("input_shape", "integers", doc="image shape [H, W] or [H, W, C]; H·W·C must equal the data's inputs",
               low=1),
        Option("kernel_size", "integer", doc="k: each position sees a k×k×C patch", low=1),
        Option("stride", "integer", 1, "step between neighbouring positions, in pixels", low=1),
        Option("padding", "integer", 0, "zero padding added on every side of the image", low=0),
        Option("wake_rule", "choice", "oja", "filter update of the wake phase (none: the layer only sleeps)",
               choices=WAKE_RULES),
        Option("wake_lr", "number", 1e-3, "learning rate η of the wake update", low=0, low_open=True),
        Option("decay", "number", 0.0, "λ of the −λW term of the wake update", low=0),
        Option("sleep", "choice", "hebbian",
               "sleep phase: hebbian (Eq. 4), circuit (inhibitory rate model), instant (mean), none",
               choices=SLEEP_MODES),
        Option("sharing", "choice", "all",
               "all: every position sees the same sleep input; grid: the tile repeats every k pixels",
               choices=("all", "grid")),
        Option("sleep_every", "integer", 1000, "run a sleep phase after every N-th wake step", low=1),
        Option("sleep_steps", "integer", 100, "Hebbian iterations per sleep phase", low=1),
        Option("sleep_lr", "number", 0.1, "learning rate η_s of the sleep update", low=0, low_open=True),
        Option("gamma", "number", 1e-5, "γ pulling each filter back to its value at the start of the phase", low=0),
        Option("sleep_batch", "integer", 64, "random inputs per sleep iteration (the update averages them)", low=1),
        Option("sleep_input_std", "number", 1.0, "σ of the N(0, σ²) sleep inputs (C = σ²I)", low=0, low_open=True),
        Option("circuit_alpha", "number", 10.0, "α, strength of the inhibitory feedback (sleep: circuit)", low=0),
        Option("circuit_tau", "number", 10.0, "τ of the rate dynamics in ms (sleep: circuit)", low=0, low_open=True),
        Option("circuit_duration", "number", 150.0, "presentation time of each sleep input in ms (sleep: circuit)",
               low=0, low_open=True),
        checks=(_check_geometry,),
    )
    fields = {
        "weights": "filters of every position and channel, shape (positions, channels, k·k·C), patch order (ky, kx, c)",
        "wake_steps": "wake steps done; a sleep phase follows every sleep_every-th, shape (1,)",
        "sleep_seed": "phase n draws its inputs from numpy.random.default_rng([sleep_seed, n]), shape (1,)",
        "sleep_snr": "SNR_w at the start and after each iteration of the latest sleep phase, shape (sleep_steps + 1,)",
        "sleep_snr_limit": "SNR_w of the latest phase's closed-form end point w* (Hebbian sleep), shape (1,)",
    }
    default_record = ("weights", "sleep_snr")

    def __init__(self, model: Model):
        super().__init__(model)
        p = self.params
        shape = list(p["input_shape"]) + [1] * (3 - len(p["input_shape"]))
        self.geometry = Geometry(*shape, kernel=p["kernel_size"], stride=p["stride"], padding=p["padding"])
        if self.geometry.n_inputs != model.n_inputs:
            raise SpecError(f"{KEY}.input_shape",
                            f"{'x'.join(map(str, p['input_shape']))} = {self.geometry.n_inputs} inputs per image, "
                            f"but the data has {model.n_inputs} per sample")
        self.groups = sharing_groups(self.geometry, p["sharing"])
        self.backend = "kernel"  # "numpy" runs the reference equations (tests, benchmarks)

    # -- state

    def init_state(self, rng):
        g, m = self.geometry, self.model
        W = np.ascontiguousarray(m.initializer(rng, (g.positions, m.n_neurons, g.patch_size), self.dtype))
        snr = weight_sharing_snr(W)
        return {
            "weights": W,
            "wake_steps": np.zeros(1, dtype=np.int64),
            "sleep_seed": rng.integers(0, np.iinfo(np.int64).max, size=1, dtype=np.int64),
            "sleep_snr": np.full(self.params["sleep_steps"] + 1, snr, dtype=self.dtype),
            "sleep_snr_limit": np.full(1, snr, dtype=self.dtype),
        }

    # -- training

    def step(self, state, batch):
        p = self.params
        if p["wake_rule"] != "none":
            W = state["weights"]
            if self.backend == "numpy":
                reference_wake_step(W, batch, self.geometry, p["wake_rule"], p["wake_lr"], p["decay"])
            else:
                from ..kernels.locally_connected import lc_wake_step

                lc_wake_step(W, np.ascontiguousarray(batch, dtype=self.dtype), *kernel_args(self.geometry),
                             WAKE_CODES[p["wake_rule"]], p["wake_lr"], p["decay"])
        state["wake_steps"][0] += 1
        if p["sleep"] != "none" and state["wake_steps"][0] % p["sleep_every"] == 0:
            self.sleep(state)

    def sleep_tiles(self, state, phase: int) -> np.ndarray:
        """The random tiles (sleep_steps, sleep_batch, k, k, C) of sleep phase ``phase`` (1, 2, …)."""
        p, g = self.params, self.geometry
        rng = np.random.default_rng([int(state["sleep_seed"][0]), int(phase)])
        tiles = rng.standard_normal((p["sleep_steps"], p["sleep_batch"], g.kernel, g.kernel, g.channels))
        return np.ascontiguousarray(tiles * p["sleep_input_std"], dtype=self.dtype)

    def coefficients(self) -> tuple[float, float]:
        """(c_diff, c_mean) of the sleep's postsynaptic term: (1, 0) exact, else the circuit's."""
        p = self.params
        if p["sleep"] != "circuit":
            return (1.0, 0.0)
        return circuit_coefficients(p["circuit_alpha"], p["circuit_tau"], p["circuit_duration"])

    def sleep(self, state) -> None:
        """One sleep phase on ``state`` (the rule runs it after every ``sleep_every``-th step)."""
        p, W = self.params, state["weights"]
        K = self.geometry.patch_size
        snr = np.empty(p["sleep_steps"] + 1)
        if p["sleep"] == "instant":
            snr[0] = weight_sharing_snr(W)
            instant_sharing(W, self.groups)
            snr[1:] = weight_sharing_snr(W)
            limit = snr[-1]
        else:
            limit = weight_sharing_snr(sleep_fixed_point(W, p["sleep_input_std"] ** 2 * np.eye(K), p["gamma"],
                                                         self.groups))
            tiles = self.sleep_tiles(state, int(state["wake_steps"][0]) // p["sleep_every"])
            coefficients = self.coefficients()
            if self.backend == "numpy":
                snr[:] = reference_sleep_phase(W, tiles, self.groups, p["sleep_lr"], p["gamma"], coefficients)
            else:
                from ..kernels.locally_connected import lc_sleep_phase

                lc_sleep_phase(W, tiles, self.groups.order, self.groups.ptr, self.groups.offsets,
                               p["sleep_lr"], p["gamma"], *coefficients, snr)
        state["sleep_snr"][:] = snr
        state["sleep_snr_limit"][0] = limit

    # -- reading the layer

    def transform(self, state, x):
        """Responses of every position and channel, (n, positions·channels), position-major."""
        W = state["weights"]
        X = np.asarray(x, dtype=self.dtype)
        if self.backend == "numpy":
            return reference_forward(W, X, self.geometry).reshape(len(X), -1)
        from ..kernels.locally_connected import lc_forward

        out = np.empty((len(X), W.shape[0], W.shape[1]), dtype=self.dtype)
        for start in range(0, len(X), TRANSFORM_CHUNK):
            chunk = np.ascontiguousarray(X[start:start + TRANSFORM_CHUNK])
            lc_forward(W, chunk, *kernel_args(self.geometry), out[start:start + TRANSFORM_CHUNK])
        return out.reshape(len(X), -1)

    def synthesize(self, state):
        """None: filters are k×k patches, not images of the data's shape."""
        return None

    def divergence(self, state):
        if not np.isfinite(state["weights"]).all():
            return "the filters are no longer finite (NaN or inf): lower wake_lr or sleep_lr, or raise decay"
        for key in ("sleep_snr", "sleep_snr_limit"):
            if np.isnan(state[key]).any():
                return f"'{key}' is NaN"
        return None
