"""Why the binocular middle neuron of the Olivetti job died (issue 13), step by step with the numpy
reference BCM step on all 400 faces (docs/middle_neuron.rst has the controlled experiments).

The configuration of ``specs/olivetti.yaml`` when issue 13 was filed: 21 neurons, B matrix, ReLU,
Adam(1e-3), W₀ ~ N(0, 0.01²), θ a moving average (γ = 0.5), batch 100.  Adam's first step moves
every weight by exactly ±lr; faces are non-negative, so each face's drive moves by up to lr·Σx ≈ 2.1,
six times the initial spread of the drives (0.01·‖x‖ ≈ 0.35): the neuron answers every face, θ
overshoots, the next steps (again ≈ 2 each) push every drive below zero, and a ReLU neuron silent on
every face never gets a gradient again."""
import numpy as np
import pytest

from plasticity_kit.activations import Relu
from plasticity_kit.datasets.olivetti import Olivetti
from plasticity_kit.interactions import Binocular, interaction_factor
from plasticity_kit.optimizers import Adam
from plasticity_kit.rules.bcm import reference_step

N, MIDDLE, BATCH = 21, 10, 100


@pytest.fixture(scope="module")
def faces():
    return Olivetti(select="all").load(np.random.default_rng(0)).X.astype(np.float64)


def run(faces, lr, steps, std=0.01, factor="binocular", seed=42):
    """Responses of every neuron to all faces (steps+1 × N × 400), the weights before each step."""
    rng = np.random.default_rng(seed)
    F = interaction_factor(Binocular().lateral(N)) if factor == "binocular" else None
    W = rng.normal(0.0, std, (N, faces.shape[1]))
    theta = np.zeros(N)
    opt, state = Adam(lr=lr), {"m": np.zeros_like(W), "v": np.zeros_like(W), "t": np.zeros(1, np.int64)}
    responses, weights = [], []
    for step in range(steps + 1):
        Z = W @ faces.T
        responses.append(Relu()(Z if F is None else F @ Z))
        weights.append(W.copy())
        if step < steps:
            batch = faces[rng.choice(len(faces), BATCH, replace=False)]
            reference_step(W, theta, batch, F, Relu(), opt, state, memory_factor=0.5)
    return np.array(responses), np.array(weights)


def test_adams_first_step_moves_each_weight_by_lr_and_switches_the_middle_neuron_on(faces):
    Y, W = run(faces, lr=1e-3, steps=1)
    moved = np.abs(W[1] - W[0])
    for row in moved:  # |m̂/√v̂| = 1 at t = 1; a neuron silent on the whole batch has ΔW = 0
        assert np.allclose(row, 1e-3, rtol=1e-4) or not row.any()
    assert sum(row.any() for row in moved) >= N // 2
    answered = (Y[:, MIDDLE] > 0).mean(axis=1)
    assert answered[0] < 0.5 and answered[1] == 1.0  # the common shift switches it on for every face


def test_issue13_middle_neuron_falls_silent_on_every_face_for_good(faces):
    Y, W = run(faces, lr=1e-3, steps=40)
    answered = (Y[:, MIDDLE] > 0).mean(axis=1)
    silent_from = 1 + int(np.argmax(answered[1:] == 0))
    assert answered[1] == 1.0 and 1 < silent_from <= 8
    assert (answered[silent_from:] == 0).all()


def test_a_ten_times_smaller_step_does_not_overshoot(faces):
    """Adam(1e-4): each step moves the drives by ≈0.2, not 2.1, so θ keeps up: the middle neuron
    once on, answers faces at every one of the first 60 steps (it becomes selective later, docs/middle_neuron.rst)."""
    Y, _ = run(faces, lr=1e-4, steps=60)
    answered = (Y[:, MIDDLE] > 0).mean(axis=1)
    on_from = int(np.argmax(answered > 0))
    assert on_from <= 3 and (answered[on_from:] > 0).all()


def test_a_lone_neuron_dies_the_same_way(faces):
    """Without any interaction every neuron behaves as the middle one: the B matrix is not needed
    for the death, only Adam's normalised first step against N(0, 0.01²) weights."""
    Y, _ = run(faces, lr=1e-3, steps=40, factor=None)
    assert ((Y[-1] > 0).mean(axis=1) == 0).all()
