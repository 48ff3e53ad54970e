"""Replicas (``model.replicas``): R networks trained side by side equal R separate runs, and the
run file, metrics and sweeps carry the replica axis."""
import h5py
import numpy as np
import pytest

from helpers import tiny_spec
from plasticity_kit.errors import SpecError
from plasticity_kit.metrics.synthetic import synthetic_images
from plasticity_kit.rules.replicas import Replicas
from plasticity_kit.runner import execute, execute_data, seed_streams
from plasticity_kit.spec import resolve
from plasticity_kit.sweep import expand

QUIET = {"progress": False, "log": lambda *a: None}
R = 3
SPECS = {  # rule → model section; BCM in both kernel forms, a rule stepped replica by replica
    "bcm-sgd": {"optimizer": {"name": "sgd", "params": {"lr": 0.0003}},
                "initializer": {"name": "normal", "params": {"std": 0.0001}}},
    "bcm-adam": {},
    "krotov_hopfield": {"rule": {"name": "krotov_hopfield", "params": {"k": 2}}, "n_neurons": 4,
                        "interaction": None, "activation": None, "optimizer": None, "initializer": None},
    "krotov_hopfield_dynamics": {"rule": {"name": "krotov_hopfield_dynamics"}, "n_neurons": 4,
                                 "interaction": None, "activation": None, "optimizer": None, "initializer": None},
}


def spec_for(tmp_path, case, replicas, **changes):
    spec = tiny_spec(tmp_path, **{"model.replicas": replicas, "exporters": [], "schedule.epochs": 4, **changes})
    for key, value in SPECS[case].items():
        if value is None:
            spec["model"].pop(key, None)
        else:
            spec["model"][key] = value
    return spec


@pytest.mark.parametrize("case", sorted(SPECS))
def test_each_replica_equals_its_own_run(tmp_path, case):
    """Replica r of one run = a run of its own from replica r's initial state, same data and
    shuffling, bit for bit; replica 0 = the run with replicas: 1."""
    together = execute(resolve(spec_for(tmp_path / "all", case, R)), **QUIET)
    assert together.status == "completed"
    weights = together.state["weights"]
    assert weights.shape[0] == R and not np.array_equal(weights[0], weights[1])
    single = resolve(spec_for(tmp_path / "one", case, 1))
    streams = seed_streams(single.schedule["seed"])
    data = single.dataset.load(streams["data"])
    initial = together.rule.init_state(seed_streams(single.schedule["seed"])["init"])
    for r in range(R):
        alone = resolve(spec_for(tmp_path / f"r{r}", case, 1))
        state = {k: v[r].copy() for k, v in initial.items()}
        result = execute_data(alone, data, state=state, streams=seed_streams(alone.schedule["seed"]), **QUIET)
        for key in result.state:
            np.testing.assert_array_equal(together.state[key][r], result.state[key], err_msg=f"replica {r}: {key}")
    plain = execute(resolve(spec_for(tmp_path / "plain", case, 1)), **QUIET)
    for key in plain.state:
        np.testing.assert_array_equal(together.state[key][0], plain.state[key], err_msg=key)


def test_run_file_has_the_replica_axis(tmp_path):
    spec = spec_for(tmp_path, "bcm-sgd", R, **{"record.fields": ["weights", "theta"], "record.every": 8,
                                              "metrics": ["network", {"name": "nearest"}]})
    result = execute(resolve(spec), **QUIET)
    with h5py.File(result.path, "r") as f:
        assert f.attrs["replicas"] == R
        assert f["trajectory/weights"].shape[1:] == (R, 5, 4096)
        assert f["trajectory/theta"].shape[1:] == (R, 5)
        assert f["final/weights"].shape == (R, 5, 4096)
        assert f["final/synthetic_images"].shape == (R, 5, 4096)
        # per-replica metric: one value per replica and their mean; image metric: all images pooled
        selected = f["metrics/network/selected"][-1]
        assert selected.shape == (R,)
        assert f["metrics/network/selected_mean"][-1] == pytest.approx(selected.mean())
        assert f["metrics/nearest/ssim"].shape[-1] == R * 5
    assert result.metrics["network"]["selectivity"].shape == (R, 5)


def test_middle_neuron_images_come_one_per_replica(tmp_path):
    spec = spec_for(tmp_path, "bcm-sgd", R)
    result = execute(resolve(spec), **QUIET)
    images = synthetic_images(result.rule, result.state, (64, 64), "middle")
    assert images.shape == (R, 64, 64)
    for r in range(R):
        alone = result.rule.rule.synthesize({k: v[r] for k, v in result.state.items()})
        np.testing.assert_array_equal(images[r].ravel(), np.clip(alone[2], 0, 1))


def test_replicas_in_spec_and_sweep(tmp_path):
    with pytest.raises(SpecError, match="model.replicas: expected an integer >= 1"):
        resolve(tiny_spec(tmp_path, **{"model.replicas": 0}))
    assert isinstance(resolve(tiny_spec(tmp_path, **{"model.replicas": 2})).build_rule(4096), Replicas)
    assert not isinstance(resolve(tiny_spec(tmp_path)).build_rule(4096), Replicas)
    raw = {**tiny_spec(tmp_path), "sweep": {"replicas": 4, "grid": {"model.n_neurons": [3, 5]}}}
    runs = expand(raw).runs
    assert [resolve(run.raw).replicas for run in runs] == [4, 4]
    with pytest.raises(SpecError, match="sweep.replicas: expected an integer >= 1"):
        expand({**raw, "sweep": {"replicas": "many"}})
    with pytest.raises(SpecError, match="sweep.replicas: model.replicas is swept too"):
        expand({**raw, "sweep": {"replicas": 2, "grid": {"model.replicas": [1, 2]}}})


def test_diverging_replica_is_named(tmp_path):
    spec = spec_for(tmp_path, "bcm-adam", R, **{"model.optimizer": {"name": "sgd", "params": {"lr": 10.0}},
                                              "model.initializer": {"name": "normal", "params": {"std": 0.1}}})
    result = execute(resolve(spec), **QUIET)
    assert result.status == "diverged"
    assert "replica 0:" in result.outcome.message
    with h5py.File(result.path, "r") as f:
        assert f.attrs["status"] == "diverged"



def test_ensemble_copies_and_pickles(tmp_path):
    """Executors ship rules to workers: an ensemble survives copy and pickle."""
    import copy
    import pickle

    ensemble = resolve(tiny_spec(tmp_path, **{"model.replicas": 2})).build_rule(4096)
    for clone in (copy.deepcopy(ensemble), pickle.loads(pickle.dumps(ensemble))):
        assert isinstance(clone, Replicas) and clone.count == 2 and clone.name == "bcm"
        state = clone.init_state(np.random.default_rng(0))
        assert state["weights"].shape == (2, 5, 4096)
