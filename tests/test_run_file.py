"""End-to-end runs: the HDF5 contract, determinism, divergence and interruption."""
import signal

import h5py
import numpy as np
import pytest
import yaml

from helpers import cli, tiny_spec, write_spec
from live_runs import start_run
from plasticity_kit.recording import FORMAT
from plasticity_kit.runner import execute
from plasticity_kit.spec import resolve


def run(tmp_path, **changes):
    return execute(resolve(tiny_spec(tmp_path, **changes), "tiny.yaml"), progress=False, log=lambda *a: None)


def test_cli_run_writes_trajectory_png_and_summary(tmp_path):
    path = write_spec(tmp_path, tiny_spec(tmp_path))
    out = cli("run", path)
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "runs" / "tiny"
    for name in ("run.h5", "synthetic.png", "summary.json", "summary.csv"):
        assert (run_dir / name).exists()
        assert str(run_dir / name) in out.stdout
    assert (run_dir / "synthetic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hdf5_contract_with_plain_h5py(tmp_path):
    result = run(tmp_path)
    with h5py.File(result.path, "r") as f:
        assert f.attrs["format"] == FORMAT
        assert f.attrs["format_version"] == 1
        assert f.attrs["status"] == "completed"
        assert f.attrs["plasticity_kit_version"]
        spec = yaml.safe_load(f["spec"][()].decode())
        assert spec == result.spec.resolved
        assert spec["record"]["every"] == 2
        t = f["trajectory"]
        steps = t["step"][:]
        # 20 images, batch 8 → 3 steps per epoch, 6 epochs = 18 steps; frames at 0, 2, …, 18
        np.testing.assert_array_equal(steps, np.arange(0, 19, 2))
        assert t["weights"].shape == (10, 5, 4096) and t["theta"].shape == (10, 5)
        assert t["epoch"].shape == t["time"].shape == steps.shape
        assert t["epoch"][0] == 0 and t["epoch"][-1] == 6
        assert np.all(np.diff(t["time"][:]) >= 0)
        assert t["weights"].chunks == (1, 5, 4096) and t["weights"].compression is None
        np.testing.assert_array_equal(t["weights"][-1], result.state["weights"])
        np.testing.assert_array_equal(f["final/weights"][:], result.state["weights"])
        np.testing.assert_array_equal(f["final/theta"][:], result.state["theta"])
        assert f["final/optimizer/t"][0] == 18
        assert f["final/synthetic_images"].shape == (5, 4096)
        np.testing.assert_array_equal(f["data/indices"][:], np.arange(20))
        np.testing.assert_array_equal(f["data/labels"][:], np.repeat([0, 1], 10))
        assert f["data"].attrs["name"] == "olivetti"
        assert len(f["data"].attrs["checksum"]) == 64
        assert list(f["data"].attrs["image_shape"]) == [64, 64]
        assert f["versions"].attrs["numpy"] == np.__version__
        assert f.attrs["steps"] == 18 and f.attrs["epochs_completed"] == 6


def test_same_seed_same_trajectory_other_seed_differs(tmp_path):
    a = run(tmp_path / "a")
    b = run(tmp_path / "b")
    c = run(tmp_path / "c", **{"schedule.seed": 4})
    with h5py.File(a.path) as fa, h5py.File(b.path) as fb, h5py.File(c.path) as fc:
        np.testing.assert_array_equal(fa["trajectory/weights"][:], fb["trajectory/weights"][:])
        np.testing.assert_array_equal(fa["trajectory/theta"][:], fb["trajectory/theta"][:])
        assert not np.array_equal(fa["trajectory/weights"][:], fc["trajectory/weights"][:])


def test_random_subsets_are_drawn_from_the_seed(tmp_path):
    params = {"select": "random", "k": 12}
    a = run(tmp_path / "a", **{"data.params": params})
    b = run(tmp_path / "b", **{"data.params": params})
    c = run(tmp_path / "c", **{"data.params": params, "schedule.seed": 9})
    np.testing.assert_array_equal(a.data.indices, b.data.indices)
    assert not np.array_equal(a.data.indices, c.data.indices)


def test_divergence_stops_the_run_and_says_so(tmp_path):
    spec = tiny_spec(tmp_path, **{"model.optimizer": {"name": "sgd", "params": {"lr": 1e6}},
                                  "model.activation": "linear", "model.initializer.params.std": 1.0})
    path = write_spec(tmp_path, spec)
    out = cli("run", path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "diverged" in out.stdout
    with h5py.File(tmp_path / "runs" / "tiny" / "run.h5", "r") as f:
        assert f.attrs["status"] == "diverged"
        assert "lower the learning rate" in f.attrs["message"]
        assert f.attrs["steps"] < 18


@pytest.mark.parametrize("sig, word", [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")])
def test_interruption_closes_the_file_with_status_interrupted(tmp_path, sig, word):
    proc, h5, _ = start_run(tmp_path)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    with h5py.File(h5, "r") as f:
        assert f.attrs["status"] == "interrupted"
        assert word in f.attrs["message"]
        n = f["trajectory/step"].shape[0]
        assert f["trajectory/weights"].shape[0] == n >= 3
        np.testing.assert_array_equal(f["final/weights"][:], f["trajectory/weights"][n - 1])


def test_killed_run_leaves_a_readable_file(tmp_path):
    proc, h5, _ = start_run(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with h5py.File(h5, "r") as f:
        assert f.attrs["status"] == "running"  # nobody could say otherwise
        n = f["trajectory/step"].shape[0]
        assert n >= 3
        frames = f["trajectory/weights"][: n - 1]
        assert np.isfinite(frames).all()
        assert yaml.safe_load(f["spec"][()].decode())["name"] == "tiny"


def test_a_value_float16_cannot_hold_stops_the_run(tmp_path):
    spec = tiny_spec(tmp_path, **{"record.dtype": "float16", "model.initializer.params.std": 1e5, "exporters": []})
    out = cli("run", write_spec(tmp_path, spec))
    h5 = tmp_path / "runs" / "tiny" / "run.h5"
    assert out.returncode == 3
    assert out.stderr.strip() == (
        f"error: {h5}: record.dtype float16 cannot hold 'weights' at step 0: values up to 3.937e+05, beyond its "
        f"largest 65504; record it as float32 (record.dtype: float32) in a new run; the run stopped, the file "
        f"has no frame yet and was marked failed")
    with h5py.File(h5, "r") as f:
        assert f.attrs["status"] == "failed" and "float16 cannot hold" in f.attrs["message"]
        assert f["trajectory/weights"].shape[0] == 0 and not np.isinf(f["trajectory/weights"][:]).any()
