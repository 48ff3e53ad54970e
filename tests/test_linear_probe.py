"""The supervised read-out metric: exact gradients, separable cases, real MNIST features against
the raw-pixel baseline, and the errors a spec author gets."""
import numpy as np
import pytest
from scipy.optimize import approx_fprime

from plasticity_kit.datasets.base import Data
from plasticity_kit.datasets.mnist import MNIST
from plasticity_kit.errors import DataError, SpecError
from plasticity_kit.metrics.base import MetricContext
from plasticity_kit.metrics.linear_probe import (LinearProbe, softmax_loss, softmax_readout, tanh_loss,
                                                 tanh_readout)
from plasticity_kit.spec import resolve
from plasticity_kit.testing import make_rule


def test_softmax_loss_gradient():
    rng = np.random.default_rng(0)
    Z, T = rng.normal(size=(30, 6)), np.eye(4)[rng.integers(0, 4, 30)]
    theta = rng.normal(size=4 * 7) * 0.3
    value, grad = softmax_loss(theta, Z, T, 0.1)
    numeric = approx_fprime(theta, lambda t: softmax_loss(t, Z, T, 0.1)[0], 1e-7)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)
    # at theta = 0 every class has probability 1/4
    assert softmax_loss(np.zeros_like(theta), Z, T, 0.1)[0] == pytest.approx(np.log(4))


def test_tanh_loss_gradient():
    rng = np.random.default_rng(1)
    F, T = rng.random((25, 5)), 2 * np.eye(3)[rng.integers(0, 3, 25)] - 1
    theta = rng.normal(size=15) * 20
    value, grad = tanh_loss(theta, F, T, 0.05, 6.0)
    numeric = approx_fprime(theta, lambda t: tanh_loss(t, F, T, 0.05, 6.0)[0], 1e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-7)
    # S = 0: c = 0, every |c − t| = 1, so the loss is the number of classes
    assert tanh_loss(np.zeros(15), F, T, 0.05, 6.0)[0] == pytest.approx(3.0)


@pytest.mark.parametrize("fit", [softmax_readout, tanh_readout])
def test_readouts_separate_separable_classes(fit):
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(5, 20)) * 4
    y = rng.integers(0, 5, 400)
    F = np.abs(centres[y] + rng.normal(size=(400, 20)))  # non-negative, like relu features
    predict = fit(F[:300], y[:300], 5)
    assert (predict(F[300:]) == y[300:]).mean() > 0.95


@pytest.fixture(scope="module")
def mnist_small(mnist_dir):
    return MNIST(path=str(mnist_dir), split="test", range=[0, 1000]).load(np.random.default_rng(0))


def test_features_beat_chance_and_pixels_are_reported(mnist_small, mnist_dir):
    """A small Krotov–Hopfield network (40 units, 20 epochs on 600 digits); the read-outs, trained
    on those digits and tested on 400 others, are far above chance (0.1), and the raw-pixel
    baseline comes with them."""
    X = mnist_small.X.astype(np.float32)
    rule = make_rule("krotov_hopfield", {"p": 3.0, "k": 2, "learning_rate": 0.2}, n_inputs=784, n_neurons=40,
                     dtype="float32")
    rule.epochs = 20
    state = rule.init_state(np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for epoch in range(20):
        order = rng.permutation(600)
        for b in range(6):
            rule.step(state, np.ascontiguousarray(X[order[b * 100:(b + 1) * 100]]))
        rule.end_epoch(state, epoch + 1)
    probe = LinearProbe(test={"name": "mnist", "params": {"path": str(mnist_dir), "split": "test",
                                                           "range": [600, 1000]}}, max_iter=60)
    train = Data(X=mnist_small.X[:600], name="mnist", indices=np.arange(600), labels=mnist_small.labels[:600])
    before = {key: value.copy() for key, value in state.items()}
    ctx = MetricContext(rule=rule, state=state, data=train, spec=None, step=120, epoch=20)
    out = probe.compute(ctx)
    assert (out["n_train"], out["n_test"], out["chance"]) == (600, 400, 0.1)
    for readout in ("softmax", "paper"):
        assert out[f"{readout}_accuracy"] > 0.6, out
        assert 0.6 < out[f"{readout}_pixel_accuracy"] <= 1.0, out
    # frozen features: the state is untouched and a second evaluation gives the same numbers
    assert all(np.array_equal(state[key], before[key]) for key in state)
    assert probe.compute(ctx)["softmax_accuracy"] == out["softmax_accuracy"]


def test_random_features_do_worse_than_learned_ones(mnist_small):
    """The probe measures the features: a random projection of the same size scores lower."""
    rule = make_rule("krotov_hopfield", {}, n_inputs=784, n_neurons=20, dtype="float64")
    state = rule.init_state(np.random.default_rng(0))
    X, y = mnist_small.X, mnist_small.labels
    F_random = np.maximum(X @ state["weights"].T, 0) ** 4.5
    F_ideal = np.eye(10)[y] + 0.01
    acc = {}
    for name, F in (("random", F_random), ("ideal", F_ideal)):
        acc[name] = (softmax_readout(F[:600], y[:600], 10, max_iter=60)(F[600:]) == y[600:]).mean()
    assert acc["ideal"] == 1.0 and acc["random"] < 0.9


def test_nested_data_inherit_the_runs_path(mnist_dir, monkeypatch):
    monkeypatch.delenv("PLASTICITY_KIT_MNIST", raising=False)
    spec = resolve({
        "data": {"name": "mnist", "params": {"path": str(mnist_dir), "split": "test", "range": [0, 200]}},
        "model": {"rule": "krotov_hopfield", "n_neurons": 10},
        "schedule": {"epochs": 1, "batch_size": 50},
        "metrics": [{"name": "linear_probe",
                     "params": {"readouts": ["softmax"], "max_iter": 20,
                                "test": {"name": "mnist", "params": {"split": "test", "range": [9800, 10000]}}}}],
    })
    probe = spec.metrics[0][0]
    rule = spec.build_rule(784)
    data = spec.dataset.load(np.random.default_rng(0))
    out = probe.compute(MetricContext(rule=rule, state=rule.init_state(np.random.default_rng(0)), data=data,
                                      spec=spec, step=0, epoch=0))
    assert out["n_test"] == 200 and "paper_accuracy" not in out


def base_spec(**probe_params):
    return {
        "data": {"name": "olivetti"},
        "model": {"rule": "krotov_hopfield", "n_neurons": 4},
        "schedule": {"epochs": 1, "batch_size": 10},
        "metrics": [{"name": "linear_probe", "params": probe_params}],
    }


@pytest.mark.parametrize("params, key, message", [
    ({}, "metrics[0].params.test", "missing; expected the labelled data set to test on"),
    ({"test": "mnist", "readouts": ["svm"]}, "metrics[0].params.readouts",
     "expected a list of distinct read-outs among softmax, paper, got ['svm']"),
    ({"test": {"name": "mnsit"}}, "metrics[0].params.test.name", "unknown dataset 'mnsit' (did you mean 'mnist'?)"),
    ({"test": {"name": "mnist", "params": {"split": "validation"}}}, "metrics[0].params.test.params.split",
     "expected one of 'train', 'test', 'all'"),
    ({"test": 3}, "metrics[0].params.test", "expected a data set name or {name: ..., params: {...}}, got 3"),
    ({"test": "mnist", "n": 0}, "metrics[0].params.n", "expected a number > 0, got 0"),
])
def test_spec_errors(params, key, message):
    with pytest.raises(SpecError) as info:
        resolve(base_spec(**params))
    assert info.value.key == key and message in info.value.message


def test_unlabelled_training_data_is_an_error(mnist_dir):
    rule = make_rule("krotov_hopfield", {}, n_inputs=784, n_neurons=4)
    probe = LinearProbe(test={"name": "mnist", "params": {"path": str(mnist_dir), "split": "test", "range": [0, 20]}})
    unlabelled = Data(X=np.zeros((5, 784)), name="arrays", indices=np.arange(5))
    ctx = MetricContext(rule=rule, state=rule.init_state(np.random.default_rng(0)), data=unlabelled, spec=None,
                        step=0, epoch=0)
    with pytest.raises(DataError, match="linear_probe: the train data \\('arrays'\\) has no labels"):
        probe.compute(ctx)
