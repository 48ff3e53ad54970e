"""The BCM rule: Cython kernel against the numpy reference, and BCM's closed-form fixed point."""
import itertools

import numpy as np
import pytest

from plasticity_kit import activations, initializers, interactions, optimizers
from plasticity_kit.kernels.bcm import bcm_step
from plasticity_kit.rules.base import Model
from plasticity_kit.rules.bcm import BCM, reference_step

# float32: both sides run the same operations but through two BLAS builds (numpy's and scipy's),
# whose summation orders differ; over 6 steps the relative difference stays below 1e-4.
TOLERANCE = {np.float32: dict(rtol=1e-4, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-13)}


def make_rule(dtype, activation, optimizer, interaction, threshold, n=5, d=40):
    model = Model(n_inputs=d, n_neurons=n, dtype=np.dtype(dtype),
                  params=dict(memory_factor=0.7, threshold=threshold, theta_init=0.05, epsilon=1e-8),
                  activation=activation, optimizer=optimizer, interaction=interaction,
                  initializer=initializers.Normal(std=0.2))
    return BCM(model)


def opt_state(state):
    return {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith("optimizer/")}


CASES = list(itertools.product(
    [np.float32, np.float64],
    [activations.Linear(), activations.Relu(), activations.Logistic(), activations.Tanh()],
    [optimizers.SGD(lr=0.05), optimizers.Momentum(lr=0.02, momentum=0.8), optimizers.Adam(lr=0.01)],
    [interactions.NoInteraction(), interactions.Binocular()],
    ["moving_average", "batch"],
))


@pytest.mark.parametrize("dtype, act, opt, inter, threshold", CASES,
                         ids=[f"{d.__name__}-{a.name}-{o.name}-{i.name}-{t}" for d, a, o, i, t in CASES])
def test_kernel_matches_numpy_reference(dtype, act, opt, inter, threshold):
    rule = make_rule(dtype, act, opt, inter, threshold)
    assert rule.uses_kernel
    kernel_state = rule.init_state(np.random.default_rng(1))
    ref_state = {k: v.copy() for k, v in kernel_state.items()}
    X = np.random.default_rng(2).random((60, 40)).astype(dtype)
    for t in range(6):
        batch = X[t * 10:(t + 1) * 10] if t < 5 else X[50:57]  # a smaller last batch too
        rule.step(kernel_state, batch)
        reference_step(ref_state["weights"], ref_state["theta"], batch, rule.factor, act, opt,
                       opt_state(ref_state), 0.7, threshold, 1e-8)
    assert not np.array_equal(kernel_state["weights"], rule.init_state(np.random.default_rng(1))["weights"])
    for key in kernel_state:
        assert kernel_state[key].dtype == ref_state[key].dtype
        np.testing.assert_allclose(kernel_state[key], ref_state[key], **TOLERANCE[dtype], err_msg=key)


def test_rule_without_kernel_codes_runs_the_reference():
    class Softplus(activations.Activation):
        name = "softplus"

        def __call__(self, z):
            return np.log1p(np.exp(z))

    rule = make_rule(np.float64, Softplus(), optimizers.SGD(lr=0.01), interactions.NoInteraction(), "moving_average")
    assert not rule.uses_kernel
    state = rule.init_state(np.random.default_rng(0))
    before = state["weights"].copy()
    rule.step(state, np.random.default_rng(1).random((8, 40)))
    assert not np.array_equal(before, state["weights"])


def test_kernel_rejects_mismatched_shapes():
    W = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="shape mismatch"):
        bcm_step(W, np.zeros(3, np.float32), np.zeros((2, 5), np.float32), None, 0, 0.5, False, 1e-8,
                 0, 0.1, 0, 0, 0, None, None, np.zeros(1, np.int64))


def test_threshold_is_the_moving_average_of_y_squared():
    rule = make_rule(np.float64, activations.Linear(), optimizers.SGD(lr=1e-9), interactions.NoInteraction(),
                     "moving_average")
    state = rule.init_state(np.random.default_rng(0))
    X = np.random.default_rng(1).random((10, 40))
    y = X @ state["weights"].T
    expected = 0.7 * 0.05 + 0.3 * (y ** 2).mean(axis=0)
    rule.step(state, X)
    np.testing.assert_allclose(state["theta"], expected, rtol=1e-12)


@pytest.mark.parametrize("threshold", ["moving_average", "batch"])
def test_linear_neuron_becomes_selective_to_one_of_two_patterns(threshold):
    """BCM's classic fixed point: two orthonormal patterns shown with probability 1/2 each.
    Stable solutions satisfy y ∈ {0, θ} with θ = E[y²], so the selective neuron answers one
    pattern with y = 1/p = 2 and the other with 0 (Bienenstock, Cooper & Munro 1982)."""
    d = 8
    x1, x2 = np.eye(d)[0], np.eye(d)[1]
    X = np.stack([x1, x2])
    rule = make_rule(np.float64, activations.Linear(), optimizers.SGD(lr=0.05), interactions.NoInteraction(),
                     threshold, n=4, d=d)
    rule.params["memory_factor"] = 0.0 if threshold == "moving_average" else 0.5
    state = rule.init_state(np.random.default_rng(5))
    state["weights"] = np.abs(state["weights"]) + 0.1  # start with positive responses to both
    state["theta"][:] = 1.0
    for _ in range(4000):
        rule.step(state, X)
    responses = np.sort(state["weights"] @ X.T, axis=1)
    np.testing.assert_allclose(responses[:, 1], 2.0, atol=1e-3)
    np.testing.assert_allclose(responses[:, 0], 0.0, atol=1e-3)
    np.testing.assert_allclose(state["theta"], 2.0, atol=1e-2)


def test_lateral_interaction_enters_the_response():
    rule = make_rule(np.float64, activations.Linear(), optimizers.SGD(lr=0.01), interactions.Binocular(),
                     "moving_average")
    state = rule.init_state(np.random.default_rng(0))
    x = np.random.default_rng(1).random((3, 40))
    expected = (np.linalg.inv(np.eye(5) - interactions.Binocular().lateral(5)) @ state["weights"] @ x.T).T
    np.testing.assert_allclose(rule.transform(state, x), expected, rtol=1e-12)


def test_divergence_is_reported():
    rule = make_rule(np.float32, activations.Relu(), optimizers.SGD(lr=0.1), interactions.NoInteraction(),
                     "moving_average")
    state = rule.init_state(np.random.default_rng(0))
    assert rule.divergence(state) is None
    state["theta"][2] = np.nan
    assert "θ is no longer finite" in rule.divergence(state)
    state["theta"][2] = 1e31
    assert "exceeded" in rule.divergence(state)


def test_adam_first_step_is_lr_times_sign():
    """With m̂ = ΔW and v̂ = ΔW² after one step, Adam moves every weight by lr·ΔW/(|ΔW| + ε)."""
    opt = optimizers.Adam(lr=0.01, epsilon=1e-12)
    W = np.zeros((2, 3))
    delta = np.array([[1.0, -2.0, 0.5], [3.0, -0.1, 4.0]])
    opt.apply(W, delta, opt.init_state(W.shape, W.dtype))
    np.testing.assert_allclose(W, 0.01 * np.sign(delta), rtol=1e-9)


@pytest.mark.parametrize("dtype, opt", [(np.float64, optimizers.Adam(lr=0.01)), (np.float32, optimizers.SGD(lr=0.05)),
                                        (np.float32, optimizers.Momentum(lr=0.02))])
def test_replicas_in_one_call_equal_separate_networks(dtype, opt):
    """R networks stacked as R·n rows in one call give the R separate runs bit for bit."""
    R, n, d = 4, 5, 40
    rule = make_rule(dtype, activations.Relu(), opt, interactions.Binocular(), "moving_average", n=n, d=d)
    states = [rule.init_state(np.random.default_rng(seed)) for seed in range(R)]
    stacked = {k: np.concatenate([s[k] for s in states]) for k in states[0]}
    X = np.random.default_rng(9).random((50, d)).astype(dtype)
    factor = rule._factor_typed
    lr, a, b, eps = opt.kernel_args()
    names = opt.state_names
    for t in range(5):
        batch = X[t * 10:(t + 1) * 10]
        for s in states:
            rule.step(s, batch)
        bcm_step(stacked["weights"], stacked["theta"], batch, factor, activations.RELU, 0.7, False, 1e-8,
                 opt.kernel_code, lr, a, b, eps,
                 stacked[f"optimizer/{names[0]}"] if names else None,
                 stacked[f"optimizer/{names[1]}"] if len(names) > 1 else None, stacked["optimizer/t"],
                 replicas=R)
    for key in stacked:
        np.testing.assert_array_equal(stacked[key], np.concatenate([s[key] for s in states]), err_msg=key)


def test_replica_shapes_are_checked():
    W = np.zeros((6, 4), np.float32)
    args = (W, np.zeros(6, np.float32), np.zeros((2, 4), np.float32))
    rest = (0, 0.5, False, 1e-8, 0, 0.1, 0, 0, 0, None, None, np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="replicas must divide the 6 rows"):
        bcm_step(*args, None, *rest, replicas=4)
    with pytest.raises(ValueError, match=r"factor must be 3 x 3 \(neurons per replica\)"):
        bcm_step(*args, np.eye(6, dtype=np.float32), *rest, replicas=2)
    with pytest.raises(ValueError, match=r"one step counter per replica \(3\), got 2"):
        bcm_step(*args, None, *rest, replicas=3)
