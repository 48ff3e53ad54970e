"""Hebbian dynamic weight sharing in a locally connected layer (Pogodin et al. 2021).

Kernels are checked against the numpy references (float64 to 1e-10 relative, float32 to 2e-5),
the references against hand computations and closed forms: the one-sample
Hebbian step, Oja/Sanger converging to principal components, the instant variant, the sleep's
fixed point w* = (C + γI)⁻¹(C w̄ + γ w), the inhibitory circuit's exact solution against an ODE
solver, and the toy of the paper's Fig. 4 run from its spec.
"""
from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from plasticity_kit.errors import SpecError
from plasticity_kit.exporters.snr_plot import SNRPlot, metric_series
from plasticity_kit.kernels import locally_connected as lc
from plasticity_kit.metrics.base import MetricContext
from plasticity_kit.metrics.weight_sharing_snr import WeightSharingSNR, neg_log, weight_sharing_snr
from plasticity_kit.model.conv import Geometry
from plasticity_kit.rules.weight_sharing import (
    WAKE_CODES, circuit_coefficients, instant_sharing, kernel_args, reference_forward, reference_sleep_phase,
    reference_wake_step, sharing_groups, sleep_fixed_point,
)
from plasticity_kit.runner import execute
from plasticity_kit.spec import load_spec
from plasticity_kit.testing import RuleTestSuite, make_rule

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "specs" / "weight-sharing-toy.yaml"
# (H, W, C, k, stride, padding, F): odd sizes, padding, stride, several channels
GEOMETRIES = [(8, 9, 3, 3, 1, 1, 4), (10, 10, 1, 3, 2, 0, 2), (7, 7, 2, 4, 3, 2, 3)]
TOL = {np.float64: 1e-10, np.float32: 2e-5}


def rel(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(np.asarray(b, np.float64)).max(), 1e-300))


def layer(dtype="float64", n_neurons=1, **params):
    base = {"input_shape": [8, 8], "kernel_size": 3}
    return make_rule("hebbian_weight_sharing", {**base, **params}, n_neurons=n_neurons, dtype=dtype,
                     n_inputs=int(np.prod(params.get("input_shape", base["input_shape"]))))


# ------------------------------------------------------------------------------------- geometry

def test_grid_groups_are_positions_k_apart():
    g = Geometry(12, 12, 1, kernel=3, stride=1)
    groups = sharing_groups(g, "grid")
    assert len(groups.offsets) == 9
    label = np.empty(g.positions, dtype=int)
    for gi, idx in groups.members():
        label[idx] = gi
    grid = label.reshape(g.out_height, g.out_width)
    assert (grid[:, :-3] == grid[:, 3:]).all() and (grid[:-3] == grid[3:]).all()
    assert (grid[:, :-1] != grid[:, 1:]).all() and (grid[:-1] != grid[1:]).all()
    assert len(sharing_groups(Geometry(12, 12, 1, kernel=3, stride=3), "grid").offsets) == 1  # stride = k: one group
    assert len(sharing_groups(g, "all").offsets) == 1


# ------------------------------------------------------------------------------ kernel = numpy

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("geom", GEOMETRIES)
def test_forward_and_wake_kernels_match_reference(geom, dtype):
    *shape, F = geom
    g = Geometry(*shape)
    rng = np.random.default_rng(1)
    W = (0.1 * rng.normal(size=(g.positions, F, g.patch_size))).astype(dtype)
    X = rng.random((6, g.n_inputs)).astype(dtype)
    out = np.empty((6, g.positions, F), dtype)
    lc.lc_forward(W, X, *kernel_args(g), out)
    assert rel(out, reference_forward(W, X, g)) < TOL[dtype]
    for rule in ("hebbian", "oja", "sanger"):
        a, b = W.copy(), W.copy()
        reference_wake_step(a, X, g, rule, 0.05, 0.1)
        lc.lc_wake_step(b, X, *kernel_args(g), WAKE_CODES[rule], 0.05, 0.1)
        assert rel(b, a) < TOL[dtype], rule
        assert not np.allclose(a, W)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("geom", GEOMETRIES[:2])
def test_sleep_kernel_matches_reference(geom, dtype):
    *shape, F = geom
    g = Geometry(*shape)
    rng = np.random.default_rng(2)
    W = rng.normal(size=(g.positions, F, g.patch_size)).astype(dtype)
    tiles = rng.normal(size=(6, 5, g.kernel, g.kernel, g.channels)).astype(dtype)
    for sharing in ("all", "grid"):
        groups = sharing_groups(g, sharing)
        for coefficients in ((1.0, 0.0), circuit_coefficients(10.0, 10.0, 150.0)):
            a, b = W.copy(), W.copy()
            snr_a = reference_sleep_phase(a, tiles, groups, 0.05, 0.01, coefficients)
            snr_b = np.empty(7)
            lc.lc_sleep_phase(b, tiles, groups.order, groups.ptr, groups.offsets, 0.05, 0.01, *coefficients, snr_b)
            assert rel(b, a) < TOL[dtype], (sharing, coefficients)
            assert rel(snr_b, snr_a) < TOL[dtype]
            assert snr_a[-1] > snr_a[0]
    assert lc.weight_sharing_snr(W) == pytest.approx(weight_sharing_snr(W), rel=1e-12)


def test_rule_backends_agree_over_wake_and_sleep_steps():
    params = dict(input_shape=[9, 9, 2], kernel_size=3, padding=1, wake_rule="sanger", wake_lr=0.01,
                  sleep_every=2, sleep_steps=5, sleep_batch=4, sharing="grid", gamma=0.01)
    batches = np.random.default_rng(3).random((5, 4, 162))
    states = []
    for backend in ("kernel", "numpy"):
        rule = layer(n_neurons=3, **params)
        rule.backend = backend
        state = rule.init_state(np.random.default_rng(4))
        for batch in batches:
            rule.step(state, batch)
        states.append(state)
        assert state["wake_steps"][0] == 5
    for key in states[0]:
        assert rel(states[0][key], states[1][key]) < 1e-10, key
    x = batches[0]
    rule.backend = "kernel"
    kernel_out = rule.transform(states[0], x)
    rule.backend = "numpy"
    assert rel(kernel_out, rule.transform(states[0], x)) < 1e-12 and kernel_out.shape == (4, 81 * 3)


# ------------------------------------------------------------------------------- wake rules

def test_hebbian_step_by_hand():
    """One sample, one position covering the image: W ← (1 − ηλ)W + η z x."""
    g = Geometry(2, 2, 1, kernel=2)
    W = np.array([[[0.5, -1.0, 0.25, 2.0]]])
    x = np.array([[1.0, 2.0, 3.0, 4.0]])
    z = 0.5 - 2.0 + 0.75 + 8.0
    reference_wake_step(W, x, g, "hebbian", lr=0.1, decay=0.5)
    np.testing.assert_allclose(W[0, 0], 0.95 * np.array([0.5, -1.0, 0.25, 2.0]) + 0.1 * z * x[0], rtol=1e-15)


@pytest.mark.parametrize("rule, F", [("oja", 1), ("sanger", 3)])
def test_oja_and_sanger_find_principal_components(rule, F):
    """One position seeing the whole 3×3 image: Oja → ±first eigenvector, Sanger → the first F."""
    rng = np.random.default_rng(5)
    eigvals = np.array([4.0, 2.0, 1.0, 0.3, 0.2, 0.1, 0.05, 0.05, 0.05])
    Q = np.linalg.qr(rng.normal(size=(9, 9)))[0]
    X = (rng.normal(size=(4000, 9)) * np.sqrt(eigvals)) @ Q.T
    g = Geometry(3, 3, 1, kernel=3)
    W = np.ascontiguousarray(0.1 * rng.normal(size=(1, F, 9)))
    for epoch in range(10):
        for batch in X.reshape(-1, 50, 9):
            lc.lc_wake_step(W, np.ascontiguousarray(batch), *kernel_args(g), WAKE_CODES[rule], 0.05 / (1 + epoch), 0.0)
    overlap = np.abs(W[0] @ Q[:, :F])
    np.testing.assert_allclose(np.diag(overlap), 1.0, atol=0.02)
    np.testing.assert_allclose(np.linalg.norm(W[0], axis=1), 1.0, atol=0.02)


# ------------------------------------------------------------------------------- sleep phase

def test_instant_sharing_makes_every_filter_identical():
    rule = layer(n_neurons=2, input_shape=[10, 10, 3], kernel_size=3, wake_rule="oja", sleep="instant",
                 sleep_every=1)
    state = rule.init_state(np.random.default_rng(6))
    W0 = state["weights"].copy()
    rule.step(state, np.random.default_rng(7).random((4, 300)))
    W = state["weights"]
    assert (W == W[0]).all() and not (W0 == W0[0]).all()
    assert weight_sharing_snr(W) == math.inf and state["sleep_snr"][-1] == np.inf
    assert np.isfinite(state["sleep_snr"][0])  # before the phase


def test_instant_grid_sharing_ties_positions_k_apart_only():
    g = Geometry(9, 9, 1, kernel=3, stride=1)
    W = np.random.default_rng(8).normal(size=(g.positions, 1, 9))
    instant_sharing(W, sharing_groups(g, "grid"))
    filters = W[:, 0].reshape(g.out_height, g.out_width, 9)
    assert (filters[:, :-3] == filters[:, 3:]).all() and (filters[:-3] == filters[3:]).all()
    assert not np.allclose(filters[:, :-1], filters[:, 1:])


def test_sleep_with_fixed_inputs_converges_to_closed_form_and_snr_rises_monotonically():
    """The same M inputs every iteration: gradient descent on a fixed quadratic, so the filters reach
    w* = (C + γI)⁻¹(C w̄ + γ w) with C = XᵀX/M (1e-8) and SNR_w rises at every iteration."""
    rng = np.random.default_rng(9)
    g = Geometry(30, 30, 1, kernel=3, stride=3)          # 100 positions, 9 inputs each
    groups = sharing_groups(g, "all")
    W = rng.normal(size=(100, 1, 9))
    W0 = W.copy()
    batch = rng.normal(size=(1, 32, 3, 3, 1))
    tiles = np.ascontiguousarray(np.repeat(batch, 1500, axis=0))
    for gamma in (0.1, 0.001):
        W = W0.copy()
        snr = np.empty(1501)
        lc.lc_sleep_phase(W, tiles, groups.order, groups.ptr, groups.offsets, 0.1, gamma, 1.0, 0.0, snr)
        X = batch[0].reshape(32, 9)
        target = sleep_fixed_point(W0, X.T @ X / 32, gamma, groups)
        assert rel(W, target) < 1e-8
        rise = np.diff(snr)
        assert (rise[:300] > 0).all() and (rise > -1e-12 * snr[-1]).all()
        assert snr[-1] == pytest.approx(weight_sharing_snr(target), rel=1e-8)


def test_toy_spec_sleep_reaches_theoretical_minimum(tmp_path):
    """Fig. 4 setting from the spec (fresh N(0, I) inputs, k = 3, γ = 1e-3): −log SNR_w falls at every
    iteration until it is within 0.5 of the closed-form minimum, ends within 0.1 of it, and the filters
    end within 3 × the SGD noise sqrt(ηK/2B) of w*, relative to w*'s spread."""
    spec = load_spec(TOY, [f"output.dir={tmp_path}", "model.rule.params.sleep_steps=800"])
    result = execute(spec, progress=False, log=lambda *a: None)
    assert result.status == "completed"
    curve = neg_log(result.state["sleep_snr"])
    limit = neg_log(result.state["sleep_snr_limit"][0])
    assert curve[0] > 3.5 and limit < -9
    approach = np.flatnonzero(curve > limit + 0.5)
    assert len(approach) > 100 and (np.diff(curve[:approach[-1] + 2]) < 0).all()
    assert abs(curve[-1] - limit) < 0.1
    with h5py.File(result.path) as f:
        W0 = f["trajectory/weights"][0]
        assert f["trajectory/sleep_snr"].shape == (2, 801)
        assert f["metrics/weight_sharing_snr/neg_log_snr"][-1] == pytest.approx(curve[-1])
    target = sleep_fixed_point(W0, np.eye(9), 1e-3, result.rule.groups)
    noise = math.sqrt(0.02 * 9 / (2 * 64))
    spread = np.linalg.norm(result.state["weights"] - target) / np.linalg.norm(target - target.mean(axis=0))
    assert spread < 3 * noise
    assert (tmp_path / "weight-sharing-toy" / "snr.png").stat().st_size > 10_000


def test_sleep_inputs_are_reproducible_per_phase():
    rule = layer(sleep_every=1, sleep_steps=3, sleep_batch=2, wake_rule="none")
    state = rule.init_state(np.random.default_rng(10))
    a, b = rule.sleep_tiles(state, 1), rule.sleep_tiles(state, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, rule.sleep_tiles(state, 2))
    other = rule.init_state(np.random.default_rng(11))
    assert not np.array_equal(a, rule.sleep_tiles(other, 1))
    s1, s2 = rule.init_state(np.random.default_rng(10)), rule.init_state(np.random.default_rng(10))
    for _ in range(3):
        rule.step(s1, np.zeros((1, 64)))
        rule.step(s2, np.zeros((1, 64)))
    assert all(np.array_equal(s1[k], s2[k]) for k in s1)


# ------------------------------------------------------------------------- inhibitory circuit

def test_circuit_coefficients_solve_the_rate_equations():
    from scipy.integrate import solve_ivp

    rng = np.random.default_rng(12)
    z = rng.normal(size=7)
    for alpha, tau, T, b in ((10.0, 10.0, 25.0, 0.7), (3.0, 5.0, 150.0, -0.2), (0.0, 10.0, 8.0, 1.0)):
        def rates(t, y):
            r, inh = y[:-1], y[-1]
            return np.append(-r + z - alpha * inh + b, -inh + r.mean() + b) / tau

        rest = b * (1 - alpha) / (1 + alpha)
        y0 = np.append(np.full(7, rest), 2 * b / (1 + alpha))
        final = solve_ivp(rates, (0, T), y0, rtol=1e-11, atol=1e-12).y[:-1, -1]
        c_diff, c_mean = circuit_coefficients(alpha, tau, T)
        np.testing.assert_allclose(final - rest, c_diff * (z - z.mean()) + c_mean * z.mean(), atol=1e-8)
    c_diff, c_mean = circuit_coefficients(1e6, 10.0, 1e3)
    assert c_diff == pytest.approx(1.0) and abs(c_mean) < 1e-5  # α, T → ∞: the exact Hebbian sleep


def test_circuit_sleep_shares_but_less_than_the_exact_rule():
    results = {}
    for sleep in ("hebbian", "circuit"):
        rule = layer(input_shape=[30, 30], kernel_size=3, stride=3, wake_rule="none", sleep=sleep,
                     sleep_every=1, sleep_steps=300, sleep_lr=0.02, gamma=1e-3, circuit_alpha=10.0)
        state = rule.init_state(np.random.default_rng(13))
        rule.step(state, np.zeros((1, 900)))
        results[sleep] = neg_log(state["sleep_snr"])
    assert results["circuit"][-1] < results["circuit"][0] - 8
    assert results["circuit"][-1] > results["hebbian"][-1] + 0.5


# ---------------------------------------------------------------------------------- SNR metric

def test_snr_by_hand():
    w = np.array([[1.0, 0.0, 2.0], [3.0, 0.0, 2.0]])   # column 0: mean 2, var 1; column 1: all zero; column 2: ∞
    assert weight_sharing_snr(w[:, :2]) == pytest.approx((4.0 + 0.0) / 2)
    assert weight_sharing_snr(w) == math.inf and neg_log(math.inf) == -math.inf
    rng = np.random.default_rng(14)
    assert weight_sharing_snr(rng.normal(size=(10_000, 50))) == pytest.approx(1e-4, rel=0.5)
    metric = WeightSharingSNR(negative_log=True)
    ctx = MetricContext(rule=None, state={"weights": w[:, :2]}, data=None, spec=None, step=0, epoch=0)
    assert metric.compute(ctx) == {"neg_log_snr": pytest.approx(-math.log(2.0))}
    with pytest.raises(SpecError, match="no array 'filters'"):
        WeightSharingSNR(field="filters").compute(ctx)


# ----------------------------------------------------------------------------- spec and errors

def test_bad_geometry_gets_a_spec_error_naming_the_key():
    with pytest.raises(SpecError, match=r"model\.rule\.params\.input_shape: 8x8 = 64 inputs.*has 65"):
        make_rule("hebbian_weight_sharing", {"input_shape": [8, 8], "kernel_size": 3}, n_neurons=1, n_inputs=65)
    with pytest.raises(SpecError, match=r"model\.rule\.params\.kernel_size: expected at most 10"):
        make_rule("hebbian_weight_sharing", {"input_shape": [8, 9], "kernel_size": 11, "padding": 1},
                  n_neurons=1, n_inputs=72)
    with pytest.raises(SpecError, match=r"model\.rule\.params\.input_shape: expected \[H, W\] or \[H, W, C\]"):
        make_rule("hebbian_weight_sharing", {"input_shape": [8], "kernel_size": 3}, n_neurons=1, n_inputs=8)
    with pytest.raises(SpecError, match=r"model\.rule\.params\.padding: expected less than kernel_size"):
        make_rule("hebbian_weight_sharing", {"input_shape": [8, 8], "kernel_size": 3, "padding": 3},
                  n_neurons=1, n_inputs=64)
    with pytest.raises(SpecError, match=r"model\.rule\.params\.sleep: expected one of"):
        make_rule("hebbian_weight_sharing", {"input_shape": [8, 8], "kernel_size": 3, "sleep": "nap"},
                  n_neurons=1, n_inputs=64)


def test_divergence_is_reported():
    rule = layer(wake_rule="hebbian", wake_lr=5.0, sleep="none")
    state = rule.init_state(np.random.default_rng(15))
    batch = np.ones((2, 64))
    for _ in range(200):
        rule.step(state, batch)
        if rule.divergence(state):
            break
    assert "no longer finite" in rule.divergence(state)


def test_snr_plot_exporter_draws_training_curve(tmp_path):
    spec = load_spec(TOY, [f"output.dir={tmp_path}", "model.rule.params.sleep_steps=50",
                           "model.rule.params.sleep_every=2", "schedule.epochs=6",
                           "metrics=[{name: weight_sharing_snr, every: 1}]"])
    result = execute(spec, progress=False, log=lambda *a: None)
    steps, values = metric_series(result.path)
    assert list(steps) == [1, 2, 3, 4, 5, 6]
    assert values[1] < values[0] - 1 and values[2] == values[1]   # sleeps after steps 2, 4, 6 only
    paths = SNRPlot().export(result, tmp_path)
    assert paths and paths[0].stat().st_size > 10_000


# ------------------------------------------------------------------- the rule conformance suite

class TestWeightSharingConformance(RuleTestSuite):
    """The suite, with this layer's shapes: weights (positions, channels, k·k), responses
    (n, positions·channels) — the suite's own checks assume a dense (n_neurons, n_inputs) layer."""

    rule = "hebbian_weight_sharing"
    params = {"input_shape": [4, 4], "kernel_size": 2, "wake_lr": 0.05, "sleep_every": 2, "sleep_steps": 3,
              "sleep_batch": 4, "sharing": "grid"}
    n_neurons = 2
    positions = 9

    def check_state(self, rule, state, dtype, where):
        W, expected = state["weights"], (self.positions, self.n_neurons, 4)
        assert W.shape == expected, f"{where}: weights {W.shape}, expected {expected}"
        assert W.flags.c_contiguous and W.dtype == dtype and np.isfinite(W).all(), where
        # the rest of the suite's checks, on every other array
        super().check_state(rule, {**state, "weights": np.zeros((self.n_neurons, self.n_inputs), dtype)}, dtype, where)

    @pytest.mark.parametrize("dtype", ["float32", "float64"])
    def test_transform(self, dtype):
        rule = self.make_rule(dtype)
        state = self.trained_state(rule, dtype)
        out = rule.transform(state, self.inputs().astype(dtype))
        assert out.shape == (self.n_samples, self.positions * self.n_neurons) and np.isfinite(out).all()
