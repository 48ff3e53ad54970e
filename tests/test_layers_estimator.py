"""The layered estimator (plasticity_kit.model.estimator.Layered): the same result as the spec it
writes, run by the runner; parameters; errors."""
import numpy as np
import pytest
import yaml

from plasticity_kit.model.estimator import Layered
from plasticity_kit.plugins import build_registry
from plasticity_kit.runner import execute_data
from plasticity_kit.spec import resolve
from plasticity_kit.testing import array_dataset

X = np.random.default_rng(5).random((30, 64))
LAYERS = [{"stage": "batch_norm"},
          {"rule": "softhebb", "n_neurons": 4, "conv": {"kernel": 3, "padding": 1}},
          {"stage": "activation", "params": {"function": "relu"}},
          {"stage": "max_pool", "params": {"size": 2}},
          {"rule": {"name": "krotov_hopfield", "params": {"k": 2}}, "n_neurons": 3}]


def test_fit_transform_equals_the_spec_run():
    est = Layered(LAYERS, epochs=2, batch_size=7, random_state=4).fit(X)
    features = est.transform(X)
    assert features.shape == (30, 3) and est.n_features_in_ == 64
    raw = yaml.safe_load(est.to_spec({"name": "same"}))
    plugin = array_dataset(X, name="same")
    spec = resolve(raw, reg=build_registry(extra_plugins=[plugin]))
    result = execute_data(spec, plugin.dataset().load(np.random.default_rng(0)), progress=False, log=lambda *a: None)
    np.testing.assert_array_equal(result.rule.transform(result.state, X), features)
    np.testing.assert_array_equal(est.layer_state(4)["weights"], result.state["layers/4/weights"])
    assert est[1].rule.name == "softhebb" and len(est) == 5


def test_params_and_errors():
    est = Layered(LAYERS)
    assert est.set_params(epochs=4).get_params()["epochs"] == 4
    with pytest.raises(ValueError, match="Invalid parameter 'epoch'"):
        est.set_params(epoch=2)
    with pytest.raises(ValueError, match="not fitted yet"):
        est.transform(X)
    est.fit(X[:10])
    with pytest.raises(ValueError, match="expected rows of 64 values"):
        est.transform(X[:, :10])
