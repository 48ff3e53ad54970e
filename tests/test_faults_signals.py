"""Fault injection, signals: SIGKILL, SIGTERM and SIGINT sent to a real ``plasticity-kit run`` at
seeded random instants from start-up to the end (checkpoints at every record, so that many land
during checkpoint writes).  Every case leaves either no run file (killed before it was created)
or a readable one, and resuming it (or running again) ends bit-identical to the uninterrupted
run, with the same frames and no frame twice.

Two runs: BCM with Adam recording the weights (a kernel call ends at every record), and BCM with
SGD in the sample-space form recording θ only (the frames are taken inside kernel calls, the
checkpoints at the calls' ends between records)."""
import random
import signal
import time

import h5py
import numpy as np
import pytest

from helpers import cli, tiny_spec, write_spec
from live_runs import assert_same_run, error_line, launch
from plasticity_kit.recording import open_for_reading

VARIANTS = {
    "weights": {"schedule.epochs": 100, "record.every": 10, "record.checkpoint_seconds": 0, "exporters": [],
                "metrics": [{"name": "weight_norm", "every": 30}]},
    "theta-inside-calls": {"schedule.epochs": 3000, "schedule.batch_size": 10, "record.every": 10,
                           "record.fields": ["theta"], "record.checkpoint_seconds": 0, "exporters": [],
                           "model.optimizer": {"name": "sgd", "params": {"lr": 0.0003}},
                           "model.initializer.params.std": 0.0001,
                           "metrics": [{"name": "weight_norm", "every": 35}]},
}
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}
CASES = 3  # per signal
STARTUP = 0.2  # seconds: the earliest signal (the interpreter's start-up comes first)


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def reference(request, tmp_path_factory):
    """The uninterrupted run, as a child process: its changes, its file and its wall time (start-up included)."""
    tmp = tmp_path_factory.mktemp("reference")
    changes = VARIANTS[request.param]
    spec_path = write_spec(tmp, tiny_spec(tmp, **changes))
    start = time.perf_counter()
    out = cli("run", spec_path, "-q")
    assert out.returncode == 0, out.stderr
    return changes, tmp / "runs" / "tiny" / "run.h5", time.perf_counter() - start


@pytest.mark.parametrize("case", range(CASES))
@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_a_signal_at_a_random_instant_loses_nothing(tmp_path, reference, name, case):
    changes, ref_path, duration = reference
    field = changes.get("record.fields", ["weights"])[0]
    with h5py.File(ref_path, "r") as f:
        ref_steps = f["trajectory/step"][:]
    delay = random.Random(f"{name}/{case}").uniform(STARTUP, duration)
    spec_path = write_spec(tmp_path, tiny_spec(tmp_path, **changes))
    h5 = tmp_path / "runs" / "tiny" / "run.h5"
    proc = launch("run", spec_path, "-q")
    time.sleep(delay)
    proc.send_signal(SIGNALS[name])
    _, err = proc.communicate(timeout=120)
    expected = -signal.SIGKILL if name == "SIGKILL" else 130
    if proc.returncode == -SIGNALS[name] and name != "SIGKILL":
        # the interpreter's own start-up, before the CLI could install a handler: nothing was written
        assert not h5.parent.exists(), err
    else:
        assert proc.returncode in (expected, 0), (delay, proc.returncode, err)  # 0: it ended before the signal
    if name != "SIGKILL" and proc.returncode == 130:
        assert "Traceback" not in err and error_line(err).startswith("interrupted")
    if proc.returncode == 0:
        assert_same_run(h5, ref_path)
        return
    if not h5.exists():  # stopped before the file was made: nothing to lose, a new run starts afresh
        out = cli("run", spec_path, "-q")
    else:
        with open_for_reading(h5) as f:  # readable, frames a prefix of the uninterrupted run's
            status = f.attrs["status"]
            assert status in (("running", "completed") if name == "SIGKILL" else ("interrupted", "completed"))
            steps = f["trajectory/step"][:]
            assert f[f"trajectory/{field}"].shape[0] >= len(steps) and np.all(np.diff(steps) > 0)
            if status == "interrupted" and len(steps) and steps[-1] % changes["record.every"]:
                steps = steps[:-1]  # the interruption's own frame, off the cadence (dropped on resume)
            np.testing.assert_array_equal(steps, ref_steps[: len(steps)])
        if status == "completed":  # the signal came after the file was finished
            assert_same_run(h5, ref_path)
            return
        out = cli("run", spec_path, "--resume", h5, "-q")
    assert out.returncode == 0, out.stderr
    assert_same_run(h5, ref_path)
    assert not list(h5.parent.glob(".run.h5.new-*")) and not (h5.parent / "run.h5.lock").exists()
