"""The multi-step BCM kernel ``bcm_steps``: batches given as sample indices, replicas, and the
sample-space form (W = W₀ + C·X) for SGD, against the numpy reference ``reference_step``."""
import numpy as np
import pytest

from plasticity_kit import activations, initializers, interactions, optimizers
from plasticity_kit.kernels.bcm import bcm_step, bcm_steps
from plasticity_kit.rules.base import Model
from plasticity_kit.rules.bcm import BCM, reference_step

P, D, B, S = 12, 50, 4, 9


def make(dtype, optimizer, interaction=None, activation=None, n=5):
    model = Model(n_inputs=D, n_neurons=n, dtype=np.dtype(dtype),
                  params=dict(memory_factor=0.6, threshold="moving_average", theta_init=0.05, epsilon=1e-8),
                  activation=activation or activations.Relu(), optimizer=optimizer,
                  interaction=interaction or interactions.Binocular(), initializer=initializers.Normal(std=0.3))
    return BCM(model)


def data(dtype):
    rng = np.random.default_rng(3)
    X = rng.random((P, D)).astype(dtype)
    batches = np.stack([rng.permutation(P)[:B] for _ in range(S)]).astype(np.int32)
    return X, batches


def kernel_args(rule, state):
    opt = rule.model.optimizer
    moments = [state[f"optimizer/{k}"] for k in opt.state_names] + [None, None]
    lr, a, b, eps = opt.kernel_args()
    return (rule._factor_typed, rule.model.activation.kernel_code, 0.6, False, 1e-8, opt.kernel_code, lr, a, b, eps,
            moments[0], moments[1], state["optimizer/t"])


def opt_state(state):
    return {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith("optimizer/")}


@pytest.mark.parametrize("opt", [optimizers.SGD(lr=0.05), optimizers.Momentum(lr=0.02), optimizers.Adam(lr=0.01)],
                         ids=lambda o: o.name)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_indexed_batches_equal_one_call_per_batch(dtype, opt):
    """Without gram, S steps in one call = S calls of bcm_step on the gathered batches, bit for bit."""
    rule = make(dtype, opt)
    X, batches = data(dtype)
    one = rule.init_state(np.random.default_rng(1))
    many = {k: v.copy() for k, v in one.items()}
    bcm_steps(many["weights"], many["theta"], X, batches, *kernel_args(rule, many))
    for idx in batches:
        bcm_step(one["weights"], one["theta"], np.ascontiguousarray(X[idx]), *kernel_args(rule, one))
    for key in one:
        np.testing.assert_array_equal(many[key], one[key], err_msg=key)
    assert many["optimizer/t"][0] == S


# The sample-space form computes W·x as (W₀·Xᵀ)_q + C·G_q in the state's type: float64 agrees
# with the reference to rounding; float32 differs by float32 rounding in both (rtol 1e-4).
SAMPLE_SPACE_TOLERANCE = {np.float32: dict(rtol=1e-4, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


@pytest.mark.parametrize("interaction", [interactions.NoInteraction(), interactions.Binocular()], ids=lambda i: i.name)
@pytest.mark.parametrize("activation", [activations.Linear(), activations.Relu(), activations.Logistic()],
                         ids=lambda a: a.name)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sample_space_form_matches_numpy_reference(dtype, activation, interaction):
    rule = make(dtype, optimizers.SGD(lr=0.05), interaction, activation)
    X, batches = data(dtype)
    state = rule.init_state(np.random.default_rng(1))
    ref = {k: v.copy() for k, v in state.items()}
    G = rule._gram(X)
    assert G.dtype == dtype
    bcm_steps(state["weights"], state["theta"], X, batches, *kernel_args(rule, state), gram=G)
    for idx in batches:
        reference_step(ref["weights"], ref["theta"], X[idx], rule.factor, activation, rule.model.optimizer,
                       opt_state(ref), 0.6, "moving_average", 1e-8)
    assert not np.allclose(state["weights"], rule.init_state(np.random.default_rng(1))["weights"])
    np.testing.assert_allclose(state["weights"], ref["weights"], **SAMPLE_SPACE_TOLERANCE[dtype])
    np.testing.assert_allclose(state["theta"], ref["theta"], **SAMPLE_SPACE_TOLERANCE[dtype])
    assert state["optimizer/t"][0] == S


@pytest.mark.parametrize("use_gram", [False, True], ids=["weight-space", "sample-space"])
def test_replicas_over_many_steps_equal_separate_networks(use_gram):
    R, n = 6, 5
    rule = make(np.float32, optimizers.SGD(lr=0.05) if use_gram else optimizers.Adam(lr=0.01), n=n)
    X, batches = data(np.float32)
    G = rule._gram(X) if use_gram else None
    states = [rule.init_state(np.random.default_rng(seed)) for seed in range(R)]
    stacked = {k: np.concatenate([s[k] for s in states]) for k in states[0]}
    bcm_steps(stacked["weights"], stacked["theta"], X, batches, *kernel_args(rule, stacked), gram=G, replicas=R)
    for s in states:
        bcm_steps(s["weights"], s["theta"], X, batches, *kernel_args(rule, s), gram=G)
    for key in stacked:
        np.testing.assert_array_equal(stacked[key], np.concatenate([s[key] for s in states]), err_msg=key)


def test_bad_arguments_are_refused():
    rule = make(np.float32, optimizers.Adam(lr=0.01))
    X, batches = data(np.float32)
    state = rule.init_state(np.random.default_rng(1))
    G = (X @ X.T).astype(np.float32)
    with pytest.raises(ValueError, match="sample-space form .* needs the SGD optimizer"):
        bcm_steps(state["weights"], state["theta"], X, batches, *kernel_args(rule, state), gram=G)
    sgd = make(np.float32, optimizers.SGD(lr=0.01))
    state = sgd.init_state(np.random.default_rng(1))
    with pytest.raises(ValueError, match=r"gram must be X·Xᵀ, 12 x 12, got 3x3"):
        bcm_steps(state["weights"], state["theta"], X, batches, *kernel_args(sgd, state), gram=np.eye(3, dtype=np.float32))
    bad = batches.copy()
    bad[2, 1] = P
    with pytest.raises(ValueError, match=r"batches\[2, 1\] = 12 is not a row of X \(0..11\)"):
        bcm_steps(state["weights"], state["theta"], X, bad, *kernel_args(sgd, state))


def test_rule_runs_the_sample_space_form_only_where_it_pays():
    X = np.random.default_rng(0).random((20, D)).astype(np.float32)
    assert make(np.float32, optimizers.SGD(lr=0.01))._gram(X) is not None
    assert make(np.float32, optimizers.Adam(lr=0.01))._gram(X) is None
    wide = np.random.default_rng(0).random((D + 1, D)).astype(np.float32)  # more samples than inputs
    assert make(np.float32, optimizers.SGD(lr=0.01))._gram(wide) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("P_odd,n,B_odd", [(13, 7, 5), (403, 25, 10), (6, 1, 1), (21, 13, 3)])
def test_sample_space_tiles_at_every_edge_shape(P_odd, n, B_odd, dtype):
    """The sample-space products run in register tiles of 5 neurons × 2 samples over 8 (float)
    or 4 (double) lanes of samples, rows padded to cache lines (sample_space.h): shapes that leave
    every kind of edge (n mod 5, B mod 2, P mod 8 and mod 4, row padding) still agree with the
    reference (to rounding in the state's type), and replicas stacked 3 high equal their separate
    runs bit for bit."""
    rng = np.random.default_rng(P_odd + n)
    X = rng.random((P_odd, D)).astype(dtype)
    batches = np.stack([rng.permutation(P_odd)[:B_odd] for _ in range(6)]).astype(np.int32)
    rule = make(dtype, optimizers.SGD(lr=0.05), n=n)
    G = rule._gram(X) if P_odd <= D else (X.astype(np.float64) @ X.astype(np.float64).T).astype(dtype)
    state = rule.init_state(np.random.default_rng(1))
    ref = {k: v.copy() for k, v in state.items()}
    bcm_steps(state["weights"], state["theta"], X, batches, *kernel_args(rule, state), gram=G)
    for idx in batches:
        reference_step(ref["weights"], ref["theta"], X[idx], rule.factor, rule.model.activation,
                       rule.model.optimizer, opt_state(ref), 0.6, "moving_average", 1e-8)
    np.testing.assert_allclose(state["weights"], ref["weights"], **SAMPLE_SPACE_TOLERANCE[dtype])
    np.testing.assert_allclose(state["theta"], ref["theta"], **SAMPLE_SPACE_TOLERANCE[dtype])
    singles = [rule.init_state(np.random.default_rng(10 + r)) for r in range(3)]
    stacked = {k: np.ascontiguousarray(np.stack([s[k] for s in singles])) for k in singles[0]}
    bcm_steps(stacked["weights"].reshape(-1, D), stacked["theta"].reshape(-1), X, batches,
              *kernel_args(rule, {k: v.reshape(-1, *v.shape[2:]) for k, v in stacked.items()}), gram=G, replicas=3)
    for r, s in enumerate(singles):
        bcm_steps(s["weights"], s["theta"], X, batches, *kernel_args(rule, s), gram=G)
        np.testing.assert_array_equal(stacked["weights"][r], s["weights"])
        np.testing.assert_array_equal(stacked["theta"][r], s["theta"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_theta_after_marks_equals_a_call_of_that_many_steps(dtype):
    """``marks``: θ copied out after steps 2 and 7 of one sample-space call of 9 steps (3 replicas)
    equals θ after a call of the first 2 (7) batches, bit for bit; W is formed only at the end."""
    R, n = 3, 5
    rule = make(dtype, optimizers.SGD(lr=0.05), n=n)
    X, batches = data(dtype)
    G = rule._gram(X)
    start = {k: np.ascontiguousarray(np.concatenate([rule.init_state(np.random.default_rng(s))[k] for s in range(R)]))
             for k in rule.init_state(np.random.default_rng(0))}
    state = {k: v.copy() for k, v in start.items()}
    snapshots = np.empty((2, R * n), dtype=dtype)
    bcm_steps(state["weights"], state["theta"], X, batches, *kernel_args(rule, state), gram=G, replicas=R,
              marks=np.array([2, 7], dtype=np.int32), snapshots=snapshots)
    for row, m in enumerate((2, 7)):
        part = {k: v.copy() for k, v in start.items()}
        bcm_steps(part["weights"], part["theta"], X, np.ascontiguousarray(batches[:m]), *kernel_args(rule, part),
                  gram=G, replicas=R)
        np.testing.assert_array_equal(snapshots[row], part["theta"])
    assert not np.array_equal(snapshots[0], snapshots[1])


def test_bad_marks_are_refused():
    rule = make(np.float32, optimizers.SGD(lr=0.05))
    X, batches = data(np.float32)
    state = rule.init_state(np.random.default_rng(1))
    args = (state["weights"], state["theta"], X, batches, *kernel_args(rule, state))
    out = np.empty((2, 5), dtype=np.float32)
    with pytest.raises(ValueError, match=r"marks must increase within 1..8, got \[3, 3\]"):
        bcm_steps(*args, gram=rule._gram(X), marks=np.array([3, 3], dtype=np.int32), snapshots=out)
    with pytest.raises(ValueError, match=r"marks must increase within 1..8, got \[2, 9\]"):
        bcm_steps(*args, gram=rule._gram(X), marks=np.array([2, 9], dtype=np.int32), snapshots=out)
    with pytest.raises(ValueError, match=r"snapshots must be 2 x 5"):
        bcm_steps(*args, gram=rule._gram(X), marks=np.array([2, 4], dtype=np.int32), snapshots=out[:1])
    with pytest.raises(ValueError, match=r"marks need the sample-space form"):
        bcm_steps(*args, marks=np.array([2, 4], dtype=np.int32), snapshots=out)
