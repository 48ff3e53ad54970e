"""The scikit-learn style estimators: same runs as the CLI, parameters ↔ spec keys, supervised
variant, recording, errors, and scikit-learn's own estimator checks."""
import importlib.util
import inspect
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from helpers import cli
from plasticity_kit import BCM, Hopfield, KrotovHopfield, Plasticity, from_spec
from plasticity_kit.activations import Relu
from plasticity_kit.datasets.olivetti import Olivetti
from plasticity_kit.errors import DivergedError, SpecError
from plasticity_kit.estimators import NOT_IN_SPEC, PARAM_KEYS, NotFittedError
from plasticity_kit.initializers import Normal
from plasticity_kit.optimizers import SGD, Adam
from plasticity_kit.plugins import registry

HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
HAVE_OJA = "oja" in registry().rules


def rng_data(n=120, d=16, seed=0):
    return np.random.default_rng(seed).random((n, d))


def small_bcm(**changes):
    params = dict(outputs=4, num_epochs=3, batch_size=16, activation="relu", optimizer=Adam(lr=0.01),
                  weights_init=Normal(std=0.1), random_state=5)
    params.update(changes)
    return BCM(**params)


def test_reference_snippet_runs_as_written():
    """The Nico-Curti/plasticity workflow of the issue, with our imports, on 28×28 inputs."""
    from plasticity_kit.plot import view_weights

    X = rng_data(1200, 784)
    model = BCM(outputs=100, num_epochs=10, batch_size=1000, activation=Relu(), optimizer=Adam(),
                weights_init=Normal(mu=0., std=1.), interaction_strength=0.)
    model.fit(X)
    fig = view_weights(model.weights, dims=(28, 28))
    assert model.weights.shape == (100, 784) and model.theta_.shape == (100,)
    assert model.n_iter_ == 10 and model.n_features_in_ == 784
    assert fig.axes[0].images[0].get_array().shape == (10 * 29 - 1, 10 * 29 - 1)


def test_estimator_and_cli_give_identical_weights(tmp_path):
    """Same configuration and seed: the estimator's fit, the CLI run of its to_spec() and the
    estimator rebuilt by from_spec() end with bit-identical weights, θ and trajectories."""
    data_section = {"name": "olivetti", "params": {"select": "persons", "persons": [0, 1]}}
    X = Olivetti(select="persons", persons=[0, 1]).load(np.random.default_rng(0)).X
    est = BCM(outputs=5, num_epochs=6, batch_size=8, activation="relu", optimizer=Adam(lr=0.001),
              weights_init=Normal(std=0.01), interaction="binocular", random_state=3, record_every=2,
              record_to=str(tmp_path / "est" / "run.h5"))
    est.fit(X)

    spec = yaml.safe_load(est.to_spec(data=data_section))
    spec["output"]["dir"] = str(tmp_path / "cli")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = cli("run", path)
    assert out.returncode == 0, out.stderr
    with h5py.File(tmp_path / "cli" / spec["name"] / "run.h5", "r") as cli_file, \
            h5py.File(tmp_path / "est" / "run.h5", "r") as est_file:
        np.testing.assert_array_equal(cli_file["final/weights"][:], est.weights_)
        np.testing.assert_array_equal(cli_file["final/theta"][:], est.theta_)
        for field in ("step", "epoch", "weights", "theta"):
            np.testing.assert_array_equal(cli_file["trajectory"][field][:], est_file["trajectory"][field][:])
        assert est_file.attrs["status"] == "completed"
        assert yaml.safe_load(est_file["spec"][()].decode())["model"] == spec["model"]

    rebuilt = from_spec(path)
    assert isinstance(rebuilt, BCM)
    rebuilt.fit(X)
    np.testing.assert_array_equal(rebuilt.weights_, est.weights_)


def test_to_spec_from_spec_round_trip(tmp_path):
    est = BCM(outputs=3, num_epochs=2, batch_size=10, activation=Relu, optimizer=Adam(lr=0.002),
              weights_init={"name": "normal", "params": {"std": 0.5}}, interaction_strength=-0.1,
              memory_factor=0.25, threshold="batch", orthogonalize=True, random_state=11, record_every=3)
    text = est.to_spec()
    spec = yaml.safe_load(text)
    model = spec["model"]
    assert model["n_neurons"] == 3 and spec["schedule"]["epochs"] == 2 and spec["schedule"]["seed"] == 11
    assert model["activation"] == {"name": "relu", "params": {}}
    assert model["optimizer"]["params"]["lr"] == 0.002
    assert model["interaction"] == {"name": "uniform", "params": {"strength": -0.1}}
    assert model["rule"]["params"]["memory_factor"] == 0.25 and model["rule"]["params"]["orthogonalize"] is True
    assert spec["record"]["every"] == 3
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    back = BCM.from_spec(path)
    assert back.to_spec() == text
    assert back.get_params()["memory_factor"] == 0.25 and back.random_state == 11
    assert from_spec(path, outputs=7).outputs == 7
    with pytest.raises(SpecError, match="KrotovHopfield.from_spec needs a 'krotov_hopfield' spec"):
        KrotovHopfield.from_spec(path)


def test_every_parameter_maps_to_the_rule_or_a_spec_key():
    """The explicit estimators list exactly their rule's options, with the schema's defaults, and
    default components equal to the rule's defaults; everything else maps to PARAM_KEYS."""
    reg = registry()
    for cls in (BCM, KrotovHopfield):
        rule = reg.rules.classes[cls._rule]
        sig = {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"}
        own = {k: v for k, v in sig.items() if k not in PARAM_KEYS and k not in NOT_IN_SPEC}
        assert own == rule.options.defaults(), cls.__name__
        for param, comp in (("activation", "activation"), ("optimizer", "optimizer"),
                            ("weights_init", "initializer"), ("interaction", "interaction")):
            assert (param in sig) == (comp in rule.uses), (cls.__name__, param)
            if param in sig:
                assert sig[param] == rule.defaults[comp], (cls.__name__, param)
    assert Hopfield is KrotovHopfield


def test_component_objects_classes_names_and_dicts_are_the_same_run():
    X = rng_data()
    runs = [
        small_bcm(activation=Relu(), optimizer=Adam(lr=0.01), weights_init=Normal(std=0.1)),
        small_bcm(activation=Relu, optimizer={"name": "adam", "params": {"lr": 0.01}},
                  weights_init={"name": "normal", "params": {"std": 0.1}}),
        small_bcm(activation="relu", optimizer={"name": "adam", "params": {"lr": np.float64(0.01)}},
                  weights_init={"name": "normal", "params": {"std": 0.1}}, outputs=np.int64(4)),
    ]
    weights = [est.fit(X).weights_ for est in runs]
    for w in weights[1:]:
        np.testing.assert_array_equal(w, weights[0])


def test_set_params_takes_effect_and_rebuilds_the_interaction():
    """The reference library keeps its interaction matrix after construction; here set_params
    then fit equals constructing with the new value, and (I−L)⁻¹ is rebuilt."""
    X = rng_data()
    est = small_bcm().fit(X)
    assert est._fitted_rule.factor is None
    before = est.transform(X)
    est.set_params(interaction_strength=-0.2, outputs=3)
    est.fit(X)
    L = np.full((3, 3), -0.2)
    np.fill_diagonal(L, 0)
    np.testing.assert_allclose(est._fitted_rule.factor, np.linalg.inv(np.eye(3) - L))
    fresh = small_bcm(interaction_strength=-0.2, outputs=3).fit(X)
    np.testing.assert_array_equal(est.weights_, fresh.weights_)
    assert est.transform(X).shape == (120, 3) != before.shape


def test_same_random_state_same_weights_other_seed_other_weights():
    X = rng_data()
    a, b, c = small_bcm().fit(X), small_bcm().fit(X), small_bcm(random_state=6).fit(X)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    assert not np.array_equal(a.weights_, c.weights_)
    d = small_bcm(random_state=None).fit(X)
    np.testing.assert_array_equal(small_bcm(random_state=d.seed_).fit(X).weights_, d.weights_)


def test_partial_fit_continues_the_same_trajectory_as_fit():
    """Two partial_fit epochs equal one two-epoch fit: state (θ, Adam moments) and shuffling continue."""
    X = rng_data()
    est = small_bcm()
    est.partial_fit(X).partial_fit(X)
    full = small_bcm(num_epochs=2).fit(X)
    assert est.n_iter_ == 2
    np.testing.assert_array_equal(est.weights_, full.weights_)
    np.testing.assert_array_equal(est.state_["optimizer/m"], full.state_["optimizer/m"])
    with pytest.raises(ValueError, match="outputs changed from 4 to 5"):
        est.set_params(outputs=5).partial_fit(X)


def test_transform_is_the_rules_response():
    X = rng_data()
    est = small_bcm(interaction="binocular").fit(X)
    W = est.weights_.astype(np.float64)
    Y = np.maximum(X @ W.T @ est._fitted_rule.factor.T, 0)
    np.testing.assert_allclose(est.transform(X), Y, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(est.fit_transform(X), est.transform(X))


def prototypes_data(n_per_class=60, seed=0):
    """Three disjoint binary patterns of 36 pixels (pixel i on in pattern i mod 3, so that either
    half identifies the pattern) plus small noise, with their labels."""
    rng = np.random.default_rng(seed)
    protos = (np.arange(36)[None, :] % 3 == np.arange(3)[:, None]).astype(float)
    y = np.repeat(np.arange(3), n_per_class)
    X = np.clip(protos[y] + 0.05 * rng.standard_normal((len(y), 36)), 0, 1)
    order = rng.permutation(len(y))
    return X[order], y[order], protos


def test_supervised_fit_predicts_and_inpaints():
    X, y, protos = prototypes_data()
    labels = np.array(["a", "b", "c"])[y]
    est = BCM(outputs=6, num_epochs=30, batch_size=20, activation="relu", optimizer=Adam(lr=0.01),
              weights_init=Normal(std=0.01), random_state=0).fit(X, labels)
    assert list(est.classes_) == ["a", "b", "c"]
    assert est.weights_.shape == (6, 36) and est.label_weights_.shape == (6, 3)
    Xt, yt, _ = prototypes_data(20, seed=1)
    assert (est.predict(Xt) == np.array(["a", "b", "c"])[yt]).mean() >= 0.95
    # in-paint: the second half of each test pattern is missing (NaN)
    half = Xt.copy()
    half[:, 18:] = np.nan
    filled = est.inpaint(half)
    np.testing.assert_array_equal(filled[:, :18], Xt[:, :18])
    corr = [np.corrcoef(f, p)[0, 1] for f, p in zip(filled[:, 18:], protos[yt][:, 18:])]
    assert min(corr) > 0.9  # the missing half of the right pattern is drawn in
    mask = np.zeros_like(Xt, dtype=bool)
    mask[:, 18:] = True
    np.testing.assert_array_equal(est.inpaint(np.where(mask, 0.0, Xt), mask=mask), filled)


def test_supervised_partial_fit_and_label_errors():
    X, y, _ = prototypes_data(10)
    est = small_bcm(outputs=3)
    with pytest.raises(ValueError, match="not among classes_"):
        est.partial_fit(X[:10], y[:10], classes=[0, 1]).partial_fit(X, y)
    est = small_bcm(outputs=3).partial_fit(X[:5], y[:5], classes=[0, 1, 2])
    est.partial_fit(X, y)
    assert est.label_weights_.shape == (3, 3)
    with pytest.raises(ValueError, match="fitted with labels: partial_fit needs y"):
        est.partial_fit(X)
    with pytest.raises(ValueError, match="fitted without labels: predict needs fit"):
        small_bcm().fit(X).predict(X)
    with pytest.raises(ValueError, match="inconsistent numbers of samples: 30 and 29"):
        small_bcm().fit(X, y[:-1])


def test_errors_name_the_estimator_parameter():
    X = rng_data()
    cases = [
        (dict(memory_factor=1.5), "BCM: memory_factor: expected a number in [0, 1), got 1.5"),
        (dict(optimizer={"name": "sgd", "params": {"lr": -1}}), "BCM: optimizer.lr: expected a number > 0, got -1"),
        (dict(outputs=0), "BCM: outputs: expected an integer >= 1, got 0"),
        (dict(num_epochs=1.5), "BCM: num_epochs: expected an integer >= 1, got 1.5"),
        (dict(activation="rleu"), "BCM: activation: unknown activation 'rleu' (did you mean 'relu'?)"),
        (dict(random_state=-1), "BCM: random_state: expected an integer "),
        (dict(interaction="binocular", interaction_strength=-0.1), "BCM: interaction_strength: give either"),
        (dict(interaction_strength=0.5, outputs=3), "BCM: interaction_strength: I−L is singular"),
        (dict(orthogonalize=True, outputs=20), "BCM: orthogonalize: needs at most as many neurons as inputs"),
    ]
    for params, message in cases:
        with pytest.raises(SpecError) as info:
            small_bcm(**params).fit(X)
        assert str(info.value).startswith(message), (params, str(info.value))
    with pytest.raises(ValueError, match=r"Invalid parameter 'memory_factr' .* \(did you mean 'memory_factor'\?\)"):
        small_bcm().set_params(memory_factr=0.1)
    with pytest.raises(ValueError, match="X has 3 features, but BCM is expecting 16 features"):
        small_bcm().fit(X).transform(X[:, :3])
    with pytest.raises(NotFittedError, match="not fitted yet"):
        small_bcm().transform(X)
    assert not hasattr(small_bcm(), "weights")
    with pytest.raises(ValueError, match="NaN or infinity"):
        small_bcm().fit(np.full((3, 4), np.nan))
    with pytest.raises(DivergedError, match="BCM: diverged (at|by) step"):
        small_bcm(activation="linear", optimizer=SGD(lr=1e6), weights_init=Normal(std=10.0)).fit(X * 100)


def test_record_to_writes_a_replayable_run_file(tmp_path):
    import plasticity_kit

    X = rng_data(64, 16)
    est = small_bcm(record_to=str(tmp_path / "run.h5"), record_every=4).fit(X)
    with plasticity_kit.open(tmp_path / "run.h5") as t:
        assert t.status == "completed"
        np.testing.assert_array_equal(t.steps, np.arange(0, 13, 4))
        np.testing.assert_array_equal(t["weights"][-1], est.weights_)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert f["data"].attrs["name"] == "arrays" and tuple(f["data"].attrs["image_shape"]) == (4, 4)
        assert f["data"].attrs["checksum"]
        assert f.attrs["name"] == tmp_path.name  # <dir>/<name>/run.h5, as the CLI writes it


@pytest.mark.skipif(not HAVE_OJA, reason="the example plugin plasticity-kit-oja is not installed")
def test_generic_estimator_wraps_a_third_party_rule():
    from sklearn.base import clone

    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(8, 2)))[0].T  # a 2-D principal subspace of variance 4
    X = 2 * rng.normal(size=(400, 2)) @ basis + 0.05 * rng.normal(size=(400, 8))
    est = Plasticity(rule="oja", outputs=2, num_epochs=10, batch_size=20, lr=0.01, random_state=0)
    assert est.lr == 0.01 and est.get_params()["lr"] == 0.01 and "lr" not in vars(est)
    W = est.fit(X).weights_.astype(np.float64)
    np.testing.assert_allclose(W @ W.T, np.eye(2), atol=0.05)  # Oja's rows: an orthonormal basis
    np.testing.assert_allclose(W @ basis.T @ basis, W, atol=0.05)  # of the principal subspace
    copy = clone(est.set_params(lr=0.02))
    assert copy.lr == 0.02 and copy.rule == "oja"
    assert not np.array_equal(copy.fit(X).weights_, est.weights_)
    with pytest.raises(ValueError, match="Invalid parameter 'lrr'"):
        est.set_params(lrr=1)
    with pytest.raises(SpecError, match="Plasticity: activation: rule 'oja' does not use an activation"):
        Plasticity(rule="oja", activation="relu").fit(X)


def test_pickle_round_trip_keeps_the_fitted_network():
    X, y, _ = prototypes_data(10)
    est = small_bcm(outputs=3).fit(X, y)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.transform(X), est.transform(X))
    np.testing.assert_array_equal(back.predict(X), est.predict(X))


@pytest.mark.parametrize("script", ["mnist_bcm.py", "mnist_hopfield.py", "mnist_supervised.py"])
def test_examples_run_on_the_mnist_test_set(script, mnist_dir, tmp_path):
    """Each example on 600 images, 1 epoch: it prints its table and writes its pictures."""
    examples = Path(__file__).resolve().parents[1] / "examples"
    out = subprocess.run([sys.executable, str(examples / script), "--mnist", str(mnist_dir), "--samples", "600",
                          "--epochs", "1", "--out", str(tmp_path), *(["--train", "500"] if "supervised" in script else [])],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    pictures = sorted(tmp_path.glob("*.png"))
    assert len(pictures) == {"mnist_bcm.py": 5, "mnist_hopfield.py": 3, "mnist_supervised.py": 2}[script]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pictures)
    assert ("accuracy" in out.stdout) if "supervised" in script else ("top images" in out.stdout)


def test_import_does_not_import_sklearn():
    """scikit-learn stays optional and out of `import plasticity_kit` (the estimators ask for it only
    in __sklearn_tags__, which scikit-learn calls)."""
    code = "import sys, plasticity_kit; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


# ---------------------------------------------------------------- scikit-learn's estimator checks

def check_instances():
    return [
        BCM(outputs=3, num_epochs=2, batch_size=10, random_state=0),
        BCM(outputs=2, num_epochs=2, batch_size=10, activation="relu", interaction_strength=-0.1,
            orthogonalize=True, random_state=0),
        KrotovHopfield(outputs=3, num_epochs=2, batch_size=10, random_state=0),
        Plasticity(rule="bcm", outputs=2, num_epochs=2, batch_size=10, memory_factor=0.3, random_state=0),
    ]


if HAVE_SKLEARN:
    from sklearn.utils.estimator_checks import parametrize_with_checks

    with warnings.catch_warnings():
        # "Estimator ... does not inherit from sklearn.base.BaseEstimator": by design (the module
        # docstring of plasticity_kit.estimators says why); every check below passes without it.
        warnings.filterwarnings("ignore", message="Estimator .* does not inherit from", category=UserWarning)
        sklearn_checks = parametrize_with_checks(check_instances())

    @sklearn_checks
    def test_sklearn_estimator_checks(estimator, check):
        check(estimator)
else:
    @pytest.mark.skip(reason="scikit-learn is not installed (pip install -e '.[dev]')")
    def test_sklearn_estimator_checks():
        pass
