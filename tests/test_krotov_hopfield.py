"""Krotov–Hopfield rules: kernels against the numpy references, hand-computed cases, the steady
state of the lateral-inhibition dynamics, the learning-rate schedule, convergence of the weights
to the unit p-sphere on real MNIST digits, and both shipped specs."""
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from plasticity_kit.errors import SpecError
from plasticity_kit.kernels.krotov import dynamics_step, ranking_step, relax
from plasticity_kit.metrics.convergence import pnorms
from plasticity_kit.runner import execute
from plasticity_kit.rules import krotov_hopfield as ranking
from plasticity_kit.rules import krotov_hopfield_dynamics as dynamics
from plasticity_kit.spec import load_spec, resolve
from plasticity_kit.testing import RuleTestSuite, make_rule

REPO = Path(__file__).resolve().parents[1]

# Both sides compute the currents with one BLAS product and the same element-wise operations; the
# products may come from two BLAS builds (numpy's, scipy's) and sums run in different orders
# (numpy's pairwise sums, the kernel's sequential ones), so the weights agree to a few ulps of
# their largest entry after several steps.  The ranking (winners) must agree exactly.
TOLERANCE = {np.float32: 2e-6, np.float64: 1e-13}


def digits(n=200, seed=0):
    """Stand-in for image data: sparse non-negative rows in [0, 1]."""
    rng = np.random.default_rng(seed)
    return rng.random((n, 64)) * (rng.random((n, 64)) < 0.3)


def assert_close(kernel, reference, dtype):
    scale = float(np.abs(reference).max())
    np.testing.assert_allclose(kernel, reference, rtol=0, atol=TOLERANCE[dtype] * scale)


# ---------------------------------------------------------------------------------- ranking rule

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p, k", [(2.0, 2), (3.0, 7), (2.5, 3), (4.0, 2)])
def test_ranking_kernel_matches_reference(dtype, p, k):
    X = digits().astype(dtype)
    W0 = np.random.default_rng(1).normal(size=(30, 64)).astype(dtype)
    Wk, Wr = W0.copy(), W0.copy()
    winners = np.zeros((20, 2), np.int32)
    for t in range(10):
        batch = np.ascontiguousarray(X[t * 20:(t + 1) * 20] if t < 9 else X[180:193])  # a smaller last batch
        win = winners[:len(batch)]
        before = Wk.copy()
        nc = ranking_step(Wk, batch, 0.05, p, k, 0.4, 1e-30, win)
        top, kth = ranking.reference_step(Wr, batch, 0.05, p, k, 0.4, 1e-30)
        np.testing.assert_array_equal(win[:, 0], top)
        np.testing.assert_array_equal(win[:, 1], kth)
        assert nc > 0
        # sparse accumulation: only the rows of the units that won or ranked k-th change
        changed = np.flatnonzero((Wk != before).any(axis=1))
        assert set(changed) <= set(top) | set(kth)
        assert_close(Wk, Wr, dtype)
    assert not np.array_equal(Wk, W0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [3.0, 4.5])
def test_kept_powered_weights_give_the_fresh_ones_bit_for_bit(dtype, p):
    """The rule keeps sign(W)|W|^(p−1) between steps and the kernel refreshes only the rows it
    changes: weights and powered weights equal a fresh computation every step, bit for bit, also
    after end_epoch re-orthogonalises the weights (the kept copy is dropped)."""
    from plasticity_kit.kernels.krotov import powered_weights

    rule = make_rule("krotov_hopfield", {"p": p, "k": 3, "orthogonalize": True}, n_inputs=64, n_neurons=12,
                     dtype=np.dtype(dtype).name)
    state = rule.init_state(np.random.default_rng(2))
    fresh = state["weights"].copy()
    X = np.ascontiguousarray(digits(60).astype(dtype))
    for epoch in range(2):
        for t in range(3):
            batch = np.ascontiguousarray(X[t * 20:(t + 1) * 20])
            rule.step(state, batch)
            ranking_step(fresh, batch, rule._learning_rate(state), p, 3, 0.4, 1e-30)
            np.testing.assert_array_equal(state["weights"], fresh)
            expected = np.empty_like(fresh)
            powered_weights(fresh, p, expected)
            np.testing.assert_array_equal(rule._powered[1], expected)
        rule.end_epoch(state, epoch + 1)
        assert rule._powered is None
        fresh = state["weights"].copy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ranking_step_by_hand(dtype):
    """I = W·x = (1, 0, 0.5): unit 0 wins (g = 1), unit 2 ranks 2nd (g = −Δ).
    ds_0 = x − 1·W_0 = 0;  ds_2 = −0.4 (x − 0.5 W_2) = (−0.3, 0.1);  max|ds| = 0.3;
    W_2 += 0.1·ds_2/0.3 = (0.5 − 0.1, 0.5 + 0.1/3)."""
    W = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=dtype)
    x = np.array([[1.0, 0.0]], dtype=dtype)
    expected = W.copy()
    expected[2] = [0.4, 0.5 + 0.1 / 3]
    for step in (ranking_step, ranking.reference_step):
        Wc = W.copy()
        step(Wc, x, 0.1, 2.0, 2, 0.4, 1e-30)
        np.testing.assert_allclose(Wc, expected, rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_ranking_ties_go_to_the_lower_index():
    W = np.array([[0.1, 0.0], [1.0, 1.0], [0.2, 0.2], [1.0, 1.0], [0.5, 0.5]])
    x = np.array([[0.3, 0.7]])
    win = np.zeros((1, 2), np.int32)
    ranking_step(W.copy(), x, 0.1, 2.0, 2, 0.4, 1e-30, win)
    top, kth = ranking.reference_step(W.copy(), x, 0.1, 2.0, 2, 0.4, 1e-30)
    assert win.tolist() == [[1, 3]] and (top[0], kth[0]) == (1, 3)


def test_ranking_kernel_rejects_bad_input():
    W = np.zeros((3, 4))
    with pytest.raises(ValueError, match="shape mismatch"):
        ranking_step(W, np.zeros((2, 5)), 0.1, 2.0, 2, 0.4, 1e-30)
    with pytest.raises(ValueError, match="k must be in \\[2, 3\\]"):
        ranking_step(W, np.zeros((2, 4)), 0.1, 2.0, 4, 0.4, 1e-30)


@pytest.mark.parametrize("params, key, message", [
    ({"k": 9}, "model.rule.params.k", "expected an integer in [2, 8] (at most model.n_neurons), got 9"),
    ({"k": 1}, "model.rule.params.k", "expected an integer >= 2, got 1"),
    ({"p": 1}, "model.rule.params.p", "expected a number > 1, got 1"),
    ({"delta": -0.1}, "model.rule.params.delta", "expected a number >= 0, got -0.1"),
    ({"schedule": "cosine"}, "model.rule.params.schedule", "expected one of 'linear', 'constant'"),
])
def test_ranking_params_are_validated(params, key, message):
    with pytest.raises(SpecError) as info:
        make_rule("krotov_hopfield", params, n_inputs=16, n_neurons=8)
    assert info.value.key == key and message in info.value.message


def test_learning_rate_schedule():
    rule = make_rule("krotov_hopfield", {"learning_rate": 0.04}, n_inputs=64, n_neurons=8)
    assert rule.epochs == 1  # make_rule's schedule: the run's epochs reach the rule
    rule.epochs = 4
    assert [rule.learning_rate(e) for e in range(4)] == pytest.approx([0.04, 0.03, 0.02, 0.01])
    state = rule.init_state(np.random.default_rng(0))
    rule.end_epoch(state, 1)
    rule.end_epoch(state, 2)
    assert state["epoch"][0] == 2
    # the step in epoch 2 uses eps0·(1 − 2/4)
    batch = np.ascontiguousarray(digits(10).astype(np.float32))
    expected = state["weights"].copy()
    ranking.reference_step(expected, batch, 0.02, 2.0, 2, 0.4, 1e-30)
    rule.step(state, batch)
    assert_close(state["weights"], expected, np.float32)
    constant = make_rule("krotov_hopfield", {"learning_rate": 0.04, "schedule": "constant"}, n_inputs=64, n_neurons=8)
    constant.epochs = 4
    assert constant.learning_rate(3) == 0.04


# ------------------------------------------------------------------------------ full dynamics

def steady_state(I, w):
    """The fixed point of dh/dt = I − w Σ_{ν≠μ} r(h_ν) − h, solved exactly: the active units are
    the m strongest, h = (I − wR)/(1 − w) on them and I − wR elsewhere, R = Σ_top-m I/(1 − w + m w)."""
    s = np.sort(I)[::-1]
    R = 0.0
    for m in range(1, len(I) + 1):
        Rm = s[:m].sum() / (1 - w + m * w)
        if s[m - 1] > w * Rm and (m == len(I) or s[m] <= w * Rm):
            R = Rm
            break
    return np.where(I > w * R, (I - w * R) / (1 - w), I - w * R)


def residual(I, h, w):
    r = np.maximum(h, 0)
    return np.abs(I - w * (r.sum(axis=1, keepdims=True) - r) - h).max(axis=1)


def test_steady_state_by_hand():
    """I = (3, 2, −1), w = 0.8: only unit 0 is active, R = 3, h = (3, 2 − 2.4, −1 − 2.4);
    I = (3, 2.8, 0): units 0 and 1, R = 5.8/1.8, h_0 = (3 − 0.8R)/0.2, h_1 = (2.8 − 0.8R)/0.2."""
    I = np.array([[3.0, 2.0, -1.0], [3.0, 2.8, 0.0]])
    R = 5.8 / 1.8
    expected = np.array([[3.0, -0.4, -3.4], [(3 - 0.8 * R) / 0.2, (2.8 - 0.8 * R) / 0.2, -0.8 * R]])
    h = np.empty_like(I)
    assert relax(I, 0.8, 1.0, 1000, 1e-12, h) == 0
    np.testing.assert_allclose(h, expected, atol=1e-10)
    np.testing.assert_allclose([steady_state(row, 0.8) for row in I], expected, atol=1e-12)


@pytest.mark.parametrize("dt", [0.1, 1.0, 20.0])
def test_relaxation_reaches_the_fixed_point_on_mnist(mnist_dir, dt):
    from plasticity_kit.datasets.mnist import MNIST

    X = MNIST(path=str(mnist_dir), split="test", range=[0, 40]).load(np.random.default_rng(0)).X
    W = np.random.default_rng(3).normal(size=(100, 784))
    for weights in (W, W / np.linalg.norm(W, axis=1, keepdims=True)):  # far from and on the unit sphere
        I = np.ascontiguousarray(X @ weights.T)
        h = np.empty_like(I)
        steps = np.empty(len(I), np.int32)
        assert relax(I, 0.8, dt, 5000, 1e-9, h, steps) == 0
        assert (steps > 0).all()
        assert residual(I, h, 0.8).max() <= 1e-9  # τ dh/dt = 0 holds
        np.testing.assert_allclose(h, [steady_state(row, 0.8) for row in I], atol=1e-7)
        assert ((h > 0).sum(axis=1) >= 1).all()  # some unit always wins the competition
        href, sref = dynamics.relax_reference(I, 0.8, dt, 5000, 1e-9)
        np.testing.assert_allclose(h, href, atol=1e-12)
        np.testing.assert_array_equal(steps, sref)


def test_relaxation_reports_unconverged_samples():
    I = np.random.default_rng(0).normal(size=(5, 50)) * 10
    h = np.empty_like(I)
    steps = np.empty(5, np.int32)
    assert relax(I, 0.8, 0.01, 3, 1e-9, h, steps) == 5
    assert (steps == -1).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [2.0, 3.0])
def test_dynamics_kernel_matches_reference(dtype, p):
    X = digits(seed=5).astype(dtype)
    W0 = np.random.default_rng(2).normal(size=(40, 64)).astype(dtype)
    Wk, Wr = W0.copy(), W0.copy()
    h = np.empty((25, 40))
    for t in range(8):
        batch = np.ascontiguousarray(X[t * 25:(t + 1) * 25])
        before = Wk.copy()
        _, failed = dynamics_step(Wk, batch, 0.05, p, 0.4, 0.5, 0.8, 1.0, 1000, 1e-7, 1e-30, h)
        href, failed_ref = dynamics.reference_step(Wr, batch, 0.05, p, 0.4, 0.5, 0.8, 1.0, 1000, 1e-7, 1e-30)
        assert failed == failed_ref == 0
        np.testing.assert_allclose(h, href, rtol=0, atol=1e-9 * np.abs(href).max())
        changed = np.flatnonzero((Wk != before).any(axis=1))
        assert set(changed) <= set(np.flatnonzero((href >= 0).any(axis=0)))  # only units with g ≠ 0
        assert_close(Wk, Wr, dtype)
    assert not np.array_equal(Wk, W0)


def test_dynamics_learning_activation():
    h = np.array([-1.0, 0.0, 0.3, 0.5, 2.0])
    np.testing.assert_array_equal(dynamics.learning_activation(h, 0.5, 0.4, np.float64), [0, -0.4, -0.4, 1, 1])


def test_dynamics_params_are_validated():
    with pytest.raises(SpecError) as info:
        make_rule("krotov_hopfield_dynamics", {"w_inh": 1.0}, n_inputs=16, n_neurons=8)
    assert info.value.key == "model.rule.params.w_inh" and "expected a number in [0, 1), got 1.0" in info.value.message
    with pytest.raises(SpecError, match="model.rule.params.k: unknown key 'k'"):
        make_rule("krotov_hopfield_dynamics", {"k": 2}, n_inputs=16, n_neurons=8)


# -------------------------------------------------------------------- conformance and real runs

class TestRankingConformance(RuleTestSuite):
    rule = "krotov_hopfield"
    plugin_name = "plasticity_kit.default_plugins"
    params = {"k": 3, "p": 3.0}


class TestDynamicsConformance(RuleTestSuite):
    rule = "krotov_hopfield_dynamics"
    plugin_name = "plasticity_kit.default_plugins"
    params = {"h_star": 0.5}


def mnist_spec(tmp_path, mnist_dir, rule, params, **extra):
    spec = {
        "name": f"tiny-{rule}",
        "data": {"name": "mnist", "params": {"path": str(mnist_dir), "split": "test", "range": [0, 1000]}},
        "model": {"rule": {"name": rule, "params": params}, "n_neurons": 16,
                  "initializer": {"name": "normal", "params": {"std": 1.0}}},
        "schedule": {"epochs": 20, "batch_size": 100, "seed": 0},
        "record": {"every": 50},
        "output": {"dir": str(tmp_path / "runs")},
        "metrics": [{"name": "weight_norm", "every": 10}],
        "exporters": ["image_grid"],
    }
    spec.update(extra)
    return resolve(spec)


def test_weights_converge_to_the_unit_p_sphere_on_mnist(tmp_path, mnist_dir):
    """Krotov & Hopfield: every unit that learns ends with ‖W_μ‖_3 = 1.  16 units, 1,000 digits,
    20 epochs from N(0, 1) weights (‖W_μ‖_3 ≈ 10); the norms are recorded in the run file."""
    spec = mnist_spec(tmp_path, mnist_dir, "krotov_hopfield", {"p": 3.0, "k": 2, "learning_rate": 0.1})
    result = execute(spec, progress=False, log=lambda *a: None)
    assert result.status == "completed" and result.state["epoch"][0] == 20
    with h5py.File(result.path) as f:
        norms = f["metrics/weight_norm/norms"][()]
        steps = f["metrics/weight_norm/step"][()]
        median = f["metrics/weight_norm/median_deviation"][()]
        np.testing.assert_array_equal(f["final/weights"][()], result.state["weights"])
        replayed = result.rule.transform({"weights": f["trajectory/weights"][-1]}, result.data.X[:5])
    assert norms.shape == (len(steps), 16) and steps[-1] == 200
    np.testing.assert_allclose(norms[-1], pnorms(result.state["weights"], 3.0))
    assert np.median(pnorms(result.rule.init_state(np.random.default_rng(0))["weights"], 3.0)) > 5
    assert median[0] > 4 and median[-1] < 0.005
    assert np.sum(np.abs(norms[-1] - 1) < 0.02) >= 12 and norms[-1].max() < 2  # rare winners lag behind
    np.testing.assert_allclose(replayed, result.rule.transform(result.state, result.data.X[:5]))
    assert (tmp_path / "runs" / spec.name / "synthetic.png").is_file()


def test_dynamics_rule_trains_from_a_spec(tmp_path, mnist_dir):
    spec = mnist_spec(tmp_path, mnist_dir, "krotov_hopfield_dynamics",
                      {"learning_rate": 0.1, "h_star": 0.5}, schedule={"epochs": 10, "batch_size": 100, "seed": 0})
    result = execute(spec, progress=False, log=lambda *a: None)
    assert result.status == "completed" and result.state["unrelaxed"][0] == 0
    first, last = result.metrics["weight_norm"]["norms"], pnorms(result.state["weights"], 2.0)
    np.testing.assert_allclose(first, last)
    with h5py.File(result.path) as f:
        recorded = f["metrics/weight_norm/median_deviation"][()]
    assert recorded[-1] < recorded[0] / 2  # heading for the unit sphere


@pytest.mark.parametrize("name", ["mnist-krotov.yaml", "mnist-krotov-dynamics.yaml"])
def test_shipped_specs_run_on_the_mnist_test_set(tmp_path, mnist_dir, name):
    """Each shipped spec validates, and a shortened copy (fewer units, epochs and images) runs on the
    genuine test set through the environment variable and reports the read-out with its baseline."""
    raw = yaml.safe_load((REPO / "specs" / name).read_text())
    spec = load_spec(REPO / "specs" / name)
    assert spec.dataset.name == "mnist" and any(m.name == "linear_probe" for m, _ in spec.metrics)
    raw["model"]["n_neurons"] = 20
    raw["schedule"]["epochs"] = 2
    raw["record"] = {"every": 5}
    raw["output"] = {"dir": str(tmp_path / "runs")}
    for metric in raw["metrics"]:
        if metric["name"] == "linear_probe":
            metric["params"].update(train={"name": "mnist", "params": {"split": "test", "range": [0, 300]}},
                                    test={"name": "mnist", "params": {"split": "test", "range": [9700, 10000]}},
                                    max_iter=30)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PLASTICITY_KIT_MNIST", str(mnist_dir))
        result = execute(resolve(raw, source=str(REPO / "specs" / name)), progress=False, log=lambda *a: None)
    assert result.status == "completed"
    probe = result.metrics["linear_probe"]
    for readout in ("softmax", "paper"):
        assert probe[f"{readout}_accuracy"] > 0.15 and probe[f"{readout}_pixel_accuracy"] > 0.5  # chance: 0.1
    assert (probe["n_train"], probe["n_test"]) == (300, 300)


def test_pnorms_closed_form():
    W = np.array([[3.0, -4.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1e200, -1e200, 0.0]])
    np.testing.assert_allclose(pnorms(W, 2.0), [5.0, np.sqrt(3.0), 0.0, np.sqrt(2.0) * 1e200])
    np.testing.assert_allclose(pnorms(W, 3.0), [(27 + 64) ** (1 / 3), 3 ** (1 / 3), 0.0, 2 ** (1 / 3) * 1e200])


def test_weight_norm_metric_uses_the_rules_p():
    from plasticity_kit.metrics.base import MetricContext
    from plasticity_kit.metrics.convergence import WeightNorm

    rule = make_rule("krotov_hopfield", {"p": 3.0}, n_inputs=3, n_neurons=2)
    state = {"weights": np.array([[1.0, 1.0, 1.0], [0.5, 0.0, 0.0]], np.float32)}
    ctx = MetricContext(rule=rule, state=state, data=None, spec=None, step=0, epoch=0)
    out = WeightNorm().compute(ctx)
    assert out["p"] == 3.0
    np.testing.assert_allclose(out["norms"], [3 ** (1 / 3), 0.5])
    assert out["max_deviation"] == pytest.approx(0.5)
    assert WeightNorm(p=2).compute(ctx)["norms"][0] == pytest.approx(np.sqrt(3))


# ----------------------------------------------------------------------- ranking rule, replicas

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p, k", [(3.0, 3), (2.0, 2)])
def test_ranking_replicas_in_one_call_equal_separate_networks(dtype, p, k):
    """R networks stacked as R·n rows in one call give the R separate calls bit for bit: weights,
    normalisers and winners (unit indices local to each network)."""
    R, n, D, B = 5, 7, 30, 12
    rng = np.random.default_rng(11)
    W0 = rng.normal(size=(R * n, D)).astype(dtype)
    X = (rng.random((6 * B, D)) * (rng.random((6 * B, D)) < 0.4)).astype(dtype)
    stacked = W0.copy()
    separate = [W0[r * n:(r + 1) * n].copy() for r in range(R)]
    win_stacked = np.full((R * B, 2), -1, np.int32)
    win_separate = np.full((B, 2), -1, np.int32)
    for t in range(6):
        batch = np.ascontiguousarray(X[t * B:(t + 1) * B])
        norms = ranking_step(stacked, batch, 0.05, p, k, 0.4, 1e-30, win_stacked, replicas=R)
        assert isinstance(norms, np.ndarray) and norms.dtype == np.float64 and norms.shape == (R,)
        for r, W in enumerate(separate):
            nc = ranking_step(W, batch, 0.05, p, k, 0.4, 1e-30, win_separate)
            assert isinstance(nc, float)
            assert norms[r] == nc, (t, r)
            np.testing.assert_array_equal(win_stacked[r * B:(r + 1) * B], win_separate, err_msg=f"step {t}, replica {r}")
        np.testing.assert_array_equal(stacked, np.concatenate(separate), err_msg=f"step {t}")
    assert win_stacked.min() >= 0 and win_stacked.max() < n
    assert not np.array_equal(stacked, W0)
    # replicas=1 is the plain call, and a stacked call without winners steps the same
    again = W0.copy()
    for t in range(6):
        ranking_step(again, np.ascontiguousarray(X[t * B:(t + 1) * B]), 0.05, p, k, 0.4, 1e-30, replicas=R)
    np.testing.assert_array_equal(again, stacked)
    one = W0[:n].copy()
    assert isinstance(ranking_step(one, X[:B], 0.05, p, k, 0.4, 1e-30, replicas=1), float)


def test_ranking_replicas_on_an_empty_batch():
    W = np.ones((6, 4))
    norms = ranking_step(W, np.zeros((0, 4)), 0.1, 2.0, 2, 0.4, 1e-30, replicas=3)
    np.testing.assert_array_equal(norms, np.zeros(3))
    assert np.array_equal(W, np.ones((6, 4)))


def test_ranking_replica_shapes_are_checked():
    W = np.zeros((6, 4))
    x = np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"k must be in \[2, 3\] \(n = 3, the units per replica"):
        ranking_step(W, x, 0.1, 2.0, 4, 0.4, 1e-30, replicas=2)
    with pytest.raises(ValueError, match="replicas must divide the 6 rows of W, got 4"):
        ranking_step(W, x, 0.1, 2.0, 2, 0.4, 1e-30, replicas=4)
    with pytest.raises(ValueError, match="replicas must be at least 1, got 0"):
        ranking_step(W, x, 0.1, 2.0, 2, 0.4, 1e-30, replicas=0)
    with pytest.raises(ValueError, match=r"winners must be \(R\*B\) x 2 = 4 x 2"):
        ranking_step(W, x, 0.1, 2.0, 2, 0.4, 1e-30, np.zeros((2, 2), np.int32), replicas=2)
