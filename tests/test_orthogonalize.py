"""Symmetric orthogonalisation: the formula, the orthogonal initializer, the rule option and the
scheduler's epoch-end hook that applies it."""
import numpy as np
import pytest

from helpers import tiny_spec
from plasticity_kit.errors import SpecError
from plasticity_kit.initializers import Orthogonal, symmetric_orthogonalization
from plasticity_kit.plugins import registry
from plasticity_kit.rules.base import Rule
from plasticity_kit.scheduler import train
from plasticity_kit.spec import resolve
from plasticity_kit.testing import make_rule


def inverse_sqrt(S):
    """S^(-1/2) of a symmetric positive definite matrix, from its eigendecomposition."""
    values, vectors = np.linalg.eigh(S)
    return (vectors / np.sqrt(values)) @ vectors.T


def test_equals_the_closed_form_and_is_orthonormal():
    W = np.random.default_rng(0).normal(size=(5, 12))
    Q = symmetric_orthogonalization(W)
    np.testing.assert_allclose(Q, inverse_sqrt(W @ W.T) @ W, atol=1e-12)
    np.testing.assert_allclose(Q @ Q.T, np.eye(5), atol=1e-12)
    # the nearest orthonormal rows: no other orthonormal matrix (e.g. Gram–Schmidt's) is closer to W
    gram_schmidt = np.linalg.qr(W.T)[0].T * np.sign(np.diag(np.linalg.qr(W.T)[1]))[:, None]
    assert np.linalg.norm(W - Q) < np.linalg.norm(W - gram_schmidt)


def test_no_neuron_is_privileged():
    """Permuting the neurons permutes the result (Gram–Schmidt would keep the first row's direction)."""
    W = np.random.default_rng(1).normal(size=(4, 9))
    perm = np.array([2, 0, 3, 1])
    np.testing.assert_allclose(symmetric_orthogonalization(W[perm]), symmetric_orthogonalization(W)[perm], atol=1e-12)


def test_fixed_points_shapes_and_dtype():
    Q = np.linalg.qr(np.random.default_rng(2).normal(size=(10, 4)))[0].T  # orthonormal rows already
    np.testing.assert_allclose(symmetric_orthogonalization(Q), Q, atol=1e-12)
    tall = symmetric_orthogonalization(np.random.default_rng(3).normal(size=(8, 3)))
    np.testing.assert_allclose(tall.T @ tall, np.eye(3), atol=1e-12)  # N > D: orthonormal columns
    W32 = np.random.default_rng(4).normal(size=(3, 7)).astype(np.float32)
    out = symmetric_orthogonalization(W32)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out @ out.T, np.eye(3), atol=1e-6)


def test_orthogonal_initializer_is_registered_seeded_and_scaled():
    init = registry().initializers.classes["orthogonal"](gain=2.0)
    assert isinstance(init, Orthogonal)
    a = init(np.random.default_rng(5), (4, 10), np.float64)
    b = init(np.random.default_rng(5), (4, 10), np.float64)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a @ a.T, 4.0 * np.eye(4), atol=1e-12)
    assert not np.array_equal(a, init(np.random.default_rng(6), (4, 10), np.float64))
    with pytest.raises(SpecError, match="orthogonal.gain: expected a number > 0, got 0"):
        Orthogonal(gain=0)


def bcm(orthogonalize, **components):
    return make_rule("bcm", {"orthogonalize": orthogonalize},
                     {"activation": "relu", "optimizer": {"name": "adam", "params": {"lr": 0.01}}, **components},
                     n_inputs=16, n_neurons=4)


def test_rule_option_orthogonalises_initial_weights_and_every_epoch():
    X = np.random.default_rng(7).random((40, 16))
    rule = bcm(True)
    state = rule.init_state(np.random.default_rng(0))
    np.testing.assert_allclose(state["weights"] @ state["weights"].T, np.eye(4), atol=1e-12)
    frames = []
    outcome = train(rule, state, X, epochs=3, batch_size=8, shuffle=True, rng=np.random.default_rng(1),
                    record_every=5, on_record=lambda step, epoch, t, s: frames.append(s["weights"].copy()))
    assert outcome.status == "completed"
    # 5 steps per epoch: every record falls on an epoch's end, after the re-orthogonalisation
    assert len(frames) == 4
    for W in frames:
        np.testing.assert_allclose(W @ W.T, np.eye(4), atol=1e-10)
    plain = bcm(False)
    s2 = plain.init_state(np.random.default_rng(0))
    train(plain, s2, X, epochs=3, batch_size=8, shuffle=True, rng=np.random.default_rng(1))
    assert np.abs(s2["weights"] @ s2["weights"].T - np.eye(4)).max() > 0.1


def test_krotov_hopfield_offers_the_same_option():
    X = np.random.default_rng(8).random((30, 16))
    rule = make_rule("krotov_hopfield", {"orthogonalize": True}, n_inputs=16, n_neurons=4)
    state = rule.init_state(np.random.default_rng(0))
    train(rule, state, X, epochs=2, batch_size=10, shuffle=True, rng=np.random.default_rng(1))
    np.testing.assert_allclose(state["weights"] @ state["weights"].T, np.eye(4), atol=1e-10)


def test_end_epoch_runs_once_per_epoch_after_its_last_step():
    calls = []

    class Spy(Rule):
        name = "spy"

        def step(self, state, batch):
            calls.append(("step", len(batch)))

        def end_epoch(self, state, epoch):
            calls.append(("end", epoch))

    rule = Spy.__new__(Spy)
    outcome = train(rule, {"weights": np.zeros((1, 2))}, np.zeros((5, 2)), epochs=2, batch_size=2, shuffle=False,
                    rng=np.random.default_rng(0))
    assert outcome.status == "completed"
    epoch = [("step", 2), ("step", 2), ("step", 1)]
    assert calls == epoch + [("end", 1)] + epoch + [("end", 2)]


def test_orthogonalize_needs_no_more_neurons_than_inputs(tmp_path):
    spec = resolve(tiny_spec(tmp_path, **{"model.rule.params": {"orthogonalize": True}, "model.n_neurons": 5}))
    assert spec.resolved["model"]["rule"]["params"]["orthogonalize"] is True
    with pytest.raises(SpecError, match="model.rule.params.orthogonalize: needs at most as many neurons as inputs "
                                        r"\(model.n_neurons = 5, 4 inputs\)"):
        spec.build_rule(4)
    with pytest.raises(SpecError, match="model.rule.params.orthogonalize: expected true or false, got 'yes'"):
        resolve(tiny_spec(tmp_path, **{"model.rule.params": {"orthogonalize": "yes"}}))
