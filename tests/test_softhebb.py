"""SoftHebb (Journé et al. 2023): the rule's kernel path against the numpy reference, the
competition kernel against its reference, the fixed point on the unit sphere, and the rule
conformance suite."""
import numpy as np
import pytest

from plasticity_kit.kernels.conv import soft_wta
from plasticity_kit.rules.softhebb import reference_step, soft_wta_reference
from plasticity_kit.testing import RuleTestSuite, make_rule


class TestSoftHebb(RuleTestSuite):
    rule = "softhebb"
    plugin_name = "plasticity_kit.default_plugins"


class TestSoftHebbPlain(RuleTestSuite):
    """The paper's equation without anti-Hebbian non-winners, a constant rate and a harder WTA."""

    rule = "softhebb"
    params = {"anti_hebbian": False, "lr_power": 0.0, "inverse_temperature": 5.0}


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-6), (np.float64, 1e-13)])
def test_soft_wta_kernel_matches_reference(dtype, rtol):
    U = np.random.default_rng(0).normal(scale=3, size=(300, 17)).astype(dtype)
    U[5, 3] = U[5, 9] = U[5].max() + 1  # a tie: the lower channel wins
    Y, a = np.empty_like(U), np.zeros(17)
    soft_wta(U, 0.7, Y, a)
    ref = soft_wta_reference(U.astype(np.float64), 0.7)
    np.testing.assert_allclose(Y, ref, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(a, (ref * U).sum(axis=0), rtol=rtol * 10)
    assert Y[5, 3] > 0 and Y[5, 9] < 0
    assert np.allclose(np.abs(Y).sum(axis=1), 1, rtol=1e-5) and ((Y > 0).sum(axis=1) == 1).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("F", [12, 16, 96, 101])
def test_soft_wta_winner_is_the_first_channel_holding_the_maximum(dtype, F):
    """The kernel keeps eight running maxima (one per lane) and joins them: the winner must still
    be the lowest channel holding the row's maximum — tied within a lane (c and c + 8), across
    lanes, in the last F mod 8 channels only, or in every channel."""
    rng = np.random.default_rng(F)
    U = rng.normal(size=(6, F)).astype(dtype)
    top = U.max() + 1
    U[0, [3, 11]] = top                   # one lane
    U[1, [F - 1, 5, 2]] = top             # three lanes
    U[2, F - 1] = top                     # the last channel only (the tail when F mod 8 != 0)
    U[3, :] = top                         # every channel
    U[4, [F // 2, F - 3]] = top
    Y, a = np.empty_like(U), np.zeros(F)
    soft_wta(U, 0.7, Y, a)
    np.testing.assert_array_equal(np.argmax(Y > 0, axis=1), np.argmax(U, axis=1))
    assert ((Y > 0).sum(axis=1) == 1).all()
    np.testing.assert_allclose(Y, soft_wta_reference(U.astype(np.float64), 0.7), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_soft_wta_flushes_far_losers_to_zero_not_denormals(dtype):
    """exp(τ⁻¹(u − max u)) below exp(−80) is exactly 0 (a denormal would slow every product after
    it); just above it, the value agrees with exp."""
    U = np.array([[0.0, -79.0, -81.0, -500.0, -1e30, -79.9, -0.5, -3.0, -40.0]], dtype)
    Y, a = np.empty_like(U), np.zeros(U.shape[1])
    soft_wta(U, 1.0, Y, a, False)
    assert (Y[0, [2, 3, 4]] == 0).all()
    expected = np.exp(U[0].astype(np.float64)) / np.exp(U[0].astype(np.float64)).sum()
    np.testing.assert_allclose(Y[0, [0, 1, 5, 6, 7, 8]], expected[[0, 1, 5, 6, 7, 8]], rtol=1e-5)


@pytest.mark.parametrize("anti", [True, False])
@pytest.mark.parametrize("dtype,rtol", [("float32", 1e-4), ("float64", 1e-11)])
def test_rule_matches_reference(anti, dtype, rtol):
    params = {"anti_hebbian": anti, "learning_rate": 0.05, "inverse_temperature": 2.0, "lr_power": 0.5}
    rule = make_rule("softhebb", params, n_inputs=12, n_neurons=6, dtype=dtype)
    state = rule.init_state(np.random.default_rng(3))
    W = state["weights"].astype(np.float64)
    rng = np.random.default_rng(4)
    for _ in range(10):
        X = rng.random((9, 12))
        rule.step(state, X.astype(dtype))
        reference_step(W, X, 0.05, 2.0, 0.5, anti)
    np.testing.assert_allclose(state["weights"], W, rtol=rtol, atol=rtol)


def test_single_neuron_converges_to_unit_norm_along_the_input():
    """One neuron always wins (y = 1): Δw = x − (w·x) w has the fixed point w = x/‖x‖."""
    x = np.array([[3.0, 4.0, 0.0]])
    rule = make_rule("softhebb", {"learning_rate": 0.002, "lr_power": 0.0}, n_inputs=3, n_neurons=1)
    state = {"weights": np.array([[0.2, -0.1, 0.5]])}
    for _ in range(3000):  # steps of at most 0.002 per weight (the update is scaled by max|ΔW|)
        rule.step(state, x)
    np.testing.assert_allclose(state["weights"][0], [0.6, 0.8, 0.0], atol=4e-3)
