"""Network properties (selectivity, overlap index, capacity), synthetic-image extraction, and metrics
recomputed from saved run files with ``plasticity-kit metrics``."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from plasticity_kit.cli import main
from plasticity_kit.interactions import Binocular
from plasticity_kit.metrics.base import MetricContext, MetricUnavailable
from plasticity_kit.metrics.network import NetworkProperties, network_properties, selection
from plasticity_kit.metrics.synthetic import middle_neuron, synthetic_images
from plasticity_kit.runner import execute
from plasticity_kit.spec import resolve

from helpers import tiny_spec


def test_hand_made_selectivity():
    Y = np.array([  # 6 patterns × 3 neurons
        [5.0, 0.0, 1.0],
        [0.0, 3.0, 1.0],
        [0.0, 3.0, 1.0],
        [0.0, 0.0, 1.0],
        [0.0, 0.0, 1.0],
        [0.0, 0.0, 1.0],
    ])
    # neuron 0: mean 5/6, selects {0}; neuron 1: mean 1, selects {1, 2}; neuron 2 is flat: selects nothing
    out = network_properties(Y)
    assert list(out["selectivity"]) == [1, 2, 0]
    assert out["mean_selectivity"] == 1.0 and out["selected"] == 3
    assert out["overlap_index"] == 3.0   # S / ᾱ = 3 / 1
    assert out["capacity"] == 3          # min(Σα, P) = min(3, 6)


def test_overlap_index_spans_one_to_n():
    same = np.tile(np.array([[1.0], [1.0], [0.0], [0.0]]), (1, 4))  # 4 neurons select patterns {0, 1}
    assert network_properties(same)["overlap_index"] == 1.0
    disjoint = np.eye(4)  # neuron i selects pattern i only
    out = network_properties(disjoint)
    assert out["overlap_index"] == 4.0 and out["capacity"] == 4 and out["selected"] == 4
    crowded = np.vstack([np.eye(3), np.eye(3)])  # 6 patterns, each neuron selects 2 → capacity = min(6, 6)
    assert network_properties(crowded)["capacity"] == 6
    flat = np.ones((5, 3))
    assert np.isnan(network_properties(flat)["overlap_index"]) and network_properties(flat)["capacity"] == 0


def test_bounds_on_random_responses():
    rng = np.random.default_rng(0)
    for _ in range(20):
        P, N = rng.integers(3, 30), rng.integers(1, 8)
        Y = rng.exponential(size=(P, N)) * (rng.random((P, N)) < 0.5)
        out = network_properties(Y)
        if out["mean_selectivity"] > 0:
            assert 1.0 <= out["overlap_index"] <= N
        assert out["selected"] <= out["capacity"] <= P


def tiny_context(tmp_path, **changes):
    spec = resolve(tiny_spec(tmp_path, **changes))
    data = spec.dataset.load(np.random.default_rng(0))
    rule = spec.build_rule(data.X.shape[1])
    state = rule.init_state(np.random.default_rng(1))
    return MetricContext(rule=rule, state=state, data=data, spec=spec, step=0, epoch=0)


def test_metric_uses_the_lateral_network_responses(tmp_path):
    ctx = tiny_context(tmp_path)
    W, X = ctx.state["weights"].astype(np.float64), ctx.data.X
    L = Binocular().lateral(5)
    Y = np.maximum(X @ W.T @ np.linalg.inv(np.eye(5) - L).T, 0.0)  # y = relu((I−L)⁻¹ W x)
    out = NetworkProperties().compute(ctx)
    assert np.array_equal(out["selectivity"], selection(Y).sum(0))
    assert out["selected"] == int(selection(Y).any(1).sum())


def test_middle_neuron_of_binocular_runs(tmp_path):
    ctx = tiny_context(tmp_path)
    assert middle_neuron(ctx.rule) == 2
    all_images = synthetic_images(ctx.rule, ctx.state, (64, 64))
    middle = synthetic_images(ctx.rule, ctx.state, (64, 64), "middle")
    assert all_images.shape == (5, 64, 64) and middle.shape == (1, 64, 64)
    w = ctx.state["weights"][2].astype(np.float64)
    assert np.allclose(middle[0].ravel(), (w - w.min()) / (w.max() - w.min()), atol=1e-6)
    assert middle_neuron(tiny_context(tmp_path, **{"model.n_neurons": 4}).rule) is None
    uniform = tiny_context(tmp_path, **{"model.interaction": "uniform"})
    assert middle_neuron(uniform.rule) is None
    with pytest.raises(MetricUnavailable, match="binocular"):
        synthetic_images(uniform.rule, uniform.state, (64, 64), "middle")


# --- recomputed from saved run files ----------------------------------------------------------------


@pytest.fixture
def saved_run(tmp_path):
    raw = tiny_spec(tmp_path, metrics=[{"name": "network", "every": 2}])
    result = execute(resolve(raw), progress=False, log=lambda *a: None)
    assert result.status == "completed"
    return result


def test_recomputed_from_the_trajectory_equals_the_values_of_the_run(saved_run, capsys):
    assert main(["metrics", str(saved_run.path), "--metric", "network", "--step", "all", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    with h5py.File(saved_run.path, "r") as f:
        in_run = dict(zip(f["metrics/network/step"][()], f["metrics/network/selectivity"][()]))
        recorded_steps = list(f["trajectory/step"][()])
    assert [r["step"] for r in records] == recorded_steps
    compared = 0
    for r in records:
        if r["step"] in in_run:
            assert r["values"]["selectivity"] == list(in_run[r["step"]]), r["step"]
            compared += 1
    assert compared >= 5
    # default metrics and step: the spec's list, the last frame
    assert main(["metrics", str(saved_run.path)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{saved_run.path} step 18: network: selectivity = ")


def test_pooled_synthetic_images_of_several_runs(tmp_path, capsys):
    paths = []
    for seed in (1, 2, 3):
        raw = tiny_spec(tmp_path, **{"name": f"seed{seed}", "schedule.seed": seed, "schedule.epochs": 1})
        paths.append(str(execute(resolve(raw), progress=False, log=lambda *a: None).path))
    assert main(["metrics", *paths, "--metric", "nearest", "--param", "neurons=middle", "--pool", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["run"] == "3 runs pooled" and record["values"]["n_images"] == 3
    assert main(["metrics", *paths, "--metric", "nearest", "--pool", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["values"]["n_images"] == 15
    assert main(["metrics", *paths, "--metric", "network", "--pool"]) == 2
    assert "--pool: metric 'network' does not score images" in capsys.readouterr().err


def test_metrics_command_errors(saved_run, tmp_path, capsys):
    path = str(saved_run.path)
    cases = [
        (["metrics", str(tmp_path / "nope.h5")], "nope.h5: no such run file"),
        (["metrics", path, "--metric", "network", "--step", "7"], "step 7 was not recorded (nearest recorded: 6, 8)"),
        (["metrics", path, "--metric", "network", "--step", "later"], "expected last, all or a recorded step number"),
        (["metrics", path, "--metric", "fidd"], "unknown metric 'fidd' (did you mean 'fid'?)"),
        (["metrics", path, "--metric", "network", "--param", "dims=64"], "--param dims: no selected metric"),
        (["metrics", path, "--metric", "nearest", "--param", "reference=all"], "nearest.reference: expected one of"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    (tmp_path / "not.h5").write_bytes(b"not hdf5")
    assert main(["metrics", str(tmp_path / "not.h5")]) == 2
    assert "not an HDF5 file" in capsys.readouterr().err


def test_changed_data_are_detected(saved_run, capsys):
    with h5py.File(saved_run.path, "a") as f:
        f["data"].attrs["checksum"] = "0" * 64
    assert main(["metrics", str(saved_run.path), "--metric", "network"]) == 2
    assert "differs from the one it was trained on" in capsys.readouterr().err
