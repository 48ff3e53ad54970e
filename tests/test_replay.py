"""plasticity_kit.open / Trajectory: the lazy reader on complete, float16, killed and live run files."""
import signal
import time
import tracemalloc

import h5py
import numpy as np
import pytest
import yaml

import plasticity_kit as pk
from helpers import tiny_spec
from live_runs import start_run
from plasticity_kit.errors import DataError
from plasticity_kit.metrics.convergence import pnorms
from plasticity_kit.runner import execute
from plasticity_kit.spec import resolve

NORM_EVERY = 6


def run(tmp_path, **changes):
    spec = tiny_spec(tmp_path, **{"metrics": [{"name": "weight_norm", "every": NORM_EVERY}], **changes})
    return execute(resolve(spec, "tiny.yaml"), progress=False, log=lambda *a: None)


@pytest.fixture(scope="module")
def complete(tmp_path_factory):
    return run(tmp_path_factory.mktemp("complete"))


def test_reader_agrees_with_plain_h5py(complete):
    with pk.open(complete.path) as t, h5py.File(complete.path, "r") as f:
        assert t.status == "completed" and not t.live
        assert t.spec == yaml.safe_load(f["spec"][()].decode()) == complete.spec.resolved
        assert sorted(t.fields) == ["theta", "weights"]
        np.testing.assert_array_equal(t.steps, np.arange(0, 19, 2))
        np.testing.assert_array_equal(t.epochs, np.arange(0, 19, 2) // 3)
        assert len(t) == 10 and t["weights"].shape == (10, 5, 4096) and t["theta"].shape == (10, 5)
        np.testing.assert_array_equal(t["weights"][3], f["trajectory/weights"][3])
        np.testing.assert_array_equal(t["theta"][2:5], f["trajectory/theta"][2:5])
        np.testing.assert_array_equal(t["weights"][-1], complete.state["weights"])
        np.testing.assert_array_equal(np.asarray(t["theta"]), f["trajectory/theta"][:])
        assert t.image_shape == (64, 64)
        with pytest.raises(KeyError, match="no recorded field 'thetta'; recorded: "):
            t["thetta"]
    assert not t.file.id.valid  # the context manager closed it


def test_metrics_over_time_match_the_recorded_frames(complete):
    with pk.open(complete.path) as t:
        m = t.metrics["weight_norm"]
        np.testing.assert_array_equal(m["step"], [6, 12, 18])
        for row, step in enumerate(m["step"]):
            norms = pnorms(t["weights"][t.index(step)], 2.0)
            np.testing.assert_allclose(m["norms"][row], norms, rtol=1e-12)
            assert m["mean"][row] == pytest.approx(norms.mean(), rel=1e-12)


def test_at_gives_a_state_the_rule_uses(complete):
    X = complete.data.X[:7]
    with pk.open(complete.path) as t:
        mid = t.at(8)
        assert (mid.step, mid.epoch) == (8, 2) and set(mid) == {"weights", "theta"}
        np.testing.assert_array_equal(mid["weights"], t["weights"][4])
        # the rule rebuilt from the recorded spec gives the responses of the run's own rule
        np.testing.assert_array_equal(mid.transform(X), complete.rule.transform(dict(mid), X))
        assert mid.synthesize().shape == (5, 4096)
        end = t.at(18)  # the end of the run: the full state, optimizer moments included
        assert set(end) == set(complete.state)
        for key, value in complete.state.items():
            np.testing.assert_array_equal(end[key], value)
        np.testing.assert_array_equal(end.transform(X), complete.rule.transform(complete.state, X))
        with pytest.raises(DataError, match=r"step 7 was not recorded \(nearest recorded: 6, 8\)"):
            t.at(7)


def test_frames_iterate_every_nth_frame_and_the_last(complete):
    with pk.open(complete.path) as t:
        got = list(t.frames("weights", every=4))
        assert [s for s, _ in got] == [0, 8, 16, 18]
        for (step, frame), i in zip(got, [0, 4, 8, 9]):
            np.testing.assert_array_equal(frame, t["weights"][i])


def test_iterating_frames_holds_one_frame_in_memory(tmp_path):
    result = run(tmp_path, **{"schedule.epochs": 20, "record.every": 1})
    with pk.open(result.path) as t:
        assert len(t) == 61
        frame_bytes = t["weights"][0].nbytes
        tracemalloc.start()
        count = sum(1 for _ in t.frames("weights"))
        _, peak_iter = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        t["weights"][:]
        _, peak_all = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert count == 61
    assert peak_all > 30 * frame_bytes  # tracemalloc sees what h5py reads
    assert peak_iter < 3 * frame_bytes


def test_float16_storage_halves_the_frames_and_keeps_full_precision_state(complete, tmp_path):
    half = run(tmp_path, **{"record.dtype": "float16"})
    with pk.open(half.path) as t, pk.open(complete.path) as full:
        assert t["weights"].dtype == np.float16 and t["theta"].dtype == np.float16
        np.testing.assert_array_equal(t["weights"][:], full["weights"][:].astype(np.float16))
        mid = t.at(8)
        assert mid["weights"].dtype == np.float32  # cast back to the model's dtype
        np.testing.assert_array_equal(mid["weights"], full["weights"][4].astype(np.float16).astype(np.float32))
        np.testing.assert_array_equal(t.at(18)["weights"], complete.state["weights"])  # from final/, exact
        ratio = t["weights"].dataset.id.get_storage_size() / full["weights"].dataset.id.get_storage_size()
    assert ratio < 0.6


def test_bad_files_get_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no such run file"):
        pk.open(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(DataError, match="not an HDF5 file"):
        pk.open(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(DataError, match="not a plasticity-kit run file"):
        pk.open(tmp_path / "other.h5")


@pytest.mark.parametrize("swmr", [False, True], ids=["plain", "swmr"])
def test_killed_run_is_readable(tmp_path, swmr):
    proc, h5, _ = start_run(tmp_path, **{"record.swmr": swmr})
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with pk.open(h5) as t:
        assert t.status == "running" and not t.live  # the writer is gone
        n = len(t)
        assert n >= 3 and np.all(np.diff(t.steps) == 50)
        assert np.isfinite(t["weights"][n - 1]).all()
        last = t.at(int(t.steps[-1]))
        assert last.transform(np.ones((2, 4096))).shape == (2, 5)


def test_live_swmr_file_is_read_while_written(tmp_path):
    proc, h5, _ = start_run(tmp_path, **{"record.swmr": True, "record.every": 20,
                                        "metrics": [{"name": "weight_norm", "every": 300}]})
    try:
        with pk.open(h5) as t:
            assert t.live and t.attrs["swmr"]
            n0, steps0 = len(t), t.steps
            deadline = time.time() + 60
            reads = 0
            while reads < 10 or "weight_norm" not in t.metrics or len(t) < n0 + 5:  # the metric appears mid-run
                assert time.time() < deadline, "the live file stopped growing"
                time.sleep(0.05)
                t.refresh()
                n = len(t)
                np.testing.assert_array_equal(t.steps, np.arange(n) * 20)
                assert np.isfinite(t["weights"][n - 1]).all() and t["theta"][n - 1].shape == (5,)
                reads += 1
            np.testing.assert_array_equal(t.steps[:n0], steps0)
            m = t.metrics["weight_norm"]
            assert m["step"][0] == 300 and m["norms"].shape[1:] == (5,)
    finally:
        proc.kill()
        proc.wait(timeout=30)
