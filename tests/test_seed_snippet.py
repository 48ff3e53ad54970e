"""The Nico-Curti/plasticity library's documented BCM call, run verbatim (with this toolkit's
imports) on the MNIST test set: the estimator defaults are that library's (every optimizer's
lr 2e-2), so the receptive fields move well away from their initial N(0, 1) noise in 10 epochs.
With Adam's textbook lr 1e-3 they moved 4.7 % (issue 13)."""
import numpy as np
import pytest
import yaml

from plasticity_kit import BCM, Plasticity
from plasticity_kit.activations import Relu
from plasticity_kit.datasets.mnist import read_idx
from plasticity_kit.estimators import REFERENCE_LR
from plasticity_kit.initializers import Normal
from plasticity_kit.metrics.nearest import correlation_matrix
from plasticity_kit.optimizers import SGD, Adam
from plasticity_kit.runner import seed_streams


@pytest.fixture(scope="module")
def mnist_test_images(mnist_dir):
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    X = images.reshape(len(images), -1).astype(np.float64)
    X *= 1. / 255
    return X


def initial_weights(model):
    """W0 of a fitted estimator: the first draw of its rule's initial state from its seed."""
    return model._fitted_rule.init_state(seed_streams(model.seed_)["init"])["weights"]


def test_seed_snippet_learns_with_the_reference_learning_rate(mnist_test_images):
    X = mnist_test_images
    model = BCM(outputs=100, num_epochs=10, batch_size=1000,
                activation=Relu(), optimizer=Adam(), weights_init=Normal(mu=0., std=1.),
                interaction_strength=0.)
    model.fit(X)

    assert REFERENCE_LR == 2e-2
    assert model._fitted_rule.model.optimizer.lr == REFERENCE_LR  # the lr the kernel steps with
    assert yaml.safe_load(model.to_spec())["model"]["optimizer"] == {
        "name": "adam", "params": {"lr": REFERENCE_LR, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}}
    assert model.n_iter_ == 10

    W0 = initial_weights(model).astype(np.float64)
    W = model.weights.astype(np.float64)
    change = np.linalg.norm(W - W0) / np.linalg.norm(W0)
    assert change > 0.25, f"weights moved only {change:.1%} from their initial noise"
    # what moved is digit-like: each neuron's change correlates with some test digit
    dW_match = correlation_matrix(W - W0, X[:2000]).max(axis=1)
    assert np.median(dW_match) > 0.3
    # and the neurons became selective: they answer fewer images than the random initial fields
    assert (model.transform(X) > 0).mean() < 0.5 * (X @ W0.T > 0).mean()


def test_initial_weights_helper_is_the_fit_start(mnist_test_images):
    """The W0 the test above compares with is where fit starts (a vanishing lr leaves it there)."""
    X = mnist_test_images[:1000]
    model = BCM(outputs=5, num_epochs=1, batch_size=1000, activation=Relu(), optimizer=Adam(lr=1e-12),
                random_state=4).fit(X)
    np.testing.assert_allclose(model.weights, initial_weights(model), rtol=0, atol=1e-9)


@pytest.mark.parametrize("optimizer, lr", [
    (Adam(), REFERENCE_LR), (Adam, REFERENCE_LR), ("adam", REFERENCE_LR), ({"name": "adam"}, REFERENCE_LR),
    ({"name": "momentum", "params": {"momentum": 0.5}}, REFERENCE_LR), (SGD(), REFERENCE_LR),
    (Adam(lr=1e-3), 1e-3), ({"name": "sgd", "params": {"lr": 0.01}}, 0.01),
])
def test_optimizer_without_lr_gets_the_reference_lr(optimizer, lr):
    spec = yaml.safe_load(BCM(optimizer=optimizer).to_spec())
    assert spec["model"]["optimizer"]["params"]["lr"] == lr


def test_bcm_defaults_are_the_reference_librarys():
    """BCM(): logistic, SGD(lr=2e-2), N(0, 1), no interaction, batch 100, 100 epochs; the generic
    estimator on the bcm rule gives the same model section."""
    model = yaml.safe_load(BCM().to_spec())["model"]
    assert model["activation"]["name"] == "logistic"
    assert model["optimizer"] == {"name": "sgd", "params": {"lr": REFERENCE_LR}}
    assert model["initializer"] == {"name": "normal", "params": {"mu": 0.0, "std": 1.0}}
    assert model["interaction"]["name"] == "none"
    schedule = yaml.safe_load(BCM().to_spec())["schedule"]
    assert (schedule["batch_size"], schedule["epochs"]) == (100, 100)
    assert yaml.safe_load(Plasticity(rule="bcm").to_spec())["model"]["optimizer"] == model["optimizer"]
