"""Sweeps under faults, with real processes: a local worker killed with SIGKILL costs only its run
(recorded ``failed``, the others complete, ``sweep.csv`` written); killing the sweep's parent
(SIGKILL or SIGTERM) ends its workers within seconds; a restarted sweep skips the finished runs
and runs the failed and interrupted ones again — from their checkpoints when the spec is the same.
Also: a run inside a sweep equals the same run done alone."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from plasticity_kit.executors import InProcess, Local
from plasticity_kit.recording import open_for_reading
from plasticity_kit.runner import execute
from plasticity_kit.spec import resolve
from plasticity_kit.sweep import expand, run_sweep

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, uses POSIX signals")

SLOW = 40000  # white-noise samples of a run that lasts until killed (200 epochs of 10,000 steps)


def sweep_spec(tmp_path: Path, zipped: dict, epochs: int = 200) -> Path:
    raw = {
        "name": "faults",
        "data": {"name": "white_noise", "params": {"image_shape": [4, 4], "n_samples": 12}},
        "model": {"rule": "bcm", "n_neurons": 3},
        "schedule": {"epochs": epochs, "batch_size": 4},
        "output": {"dir": str(tmp_path / "out")},
        "exporters": [],
        "metrics": [],
        "sweep": {"seed": 1, "zip": zipped},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def start(spec: Path, *args, workers: int | None = 2) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    args = (("--workers", str(workers)) if workers else ()) + args
    return subprocess.Popen([sys.executable, "-m", "plasticity_kit", "sweep", str(spec), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def writer(run_h5: Path, sweep: subprocess.Popen, timeout: float = 120.0) -> int:
    """The pid of the worker writing ``run_h5`` (its ``writer_pid``), once it has recorded a frame."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert sweep.poll() is None, sweep.communicate()
        if run_h5.exists():
            try:
                with open_for_reading(run_h5, retries=0, wait=0) as f:
                    if f.attrs.get("status") == "running" and f["trajectory/step"].shape[0] >= 2:
                        return int(f.attrs["writer_pid"])
            except Exception:  # noqa: BLE001 - being created: look again
                pass
        time.sleep(0.2)
    raise AssertionError(f"no worker wrote {run_h5} within {timeout} s")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a reaper does not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def table(path: Path) -> dict:
    with open(path, newline="") as fh:
        return {r["name"]: r for r in csv.DictReader(fh)}


def wait_gone(pids, seconds: float = 15.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def test_a_killed_worker_fails_only_its_run(tmp_path):
    spec = sweep_spec(tmp_path, {"data.params.n_samples": [SLOW, 12, 16], "model.n_neurons": [2, 3, 4]})
    out = tmp_path / "out" / "faults"
    sweep = start(spec)
    victim = writer(out / f"n_samples={SLOW},n_neurons=2" / "run.h5", sweep)
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = sweep.communicate(timeout=300)
    assert sweep.returncode == 1, stderr  # some runs did not complete
    assert "Traceback" not in stderr
    rows = table(out / "sweep.csv")
    assert {k: r["status"] for k, r in rows.items()} == {
        f"n_samples={SLOW},n_neurons=2": "failed", "n_samples=12,n_neurons=3": "completed",
        "n_samples=16,n_neurons=4": "completed"}
    assert rows[f"n_samples={SLOW},n_neurons=2"]["message"] == "worker died (SIGKILL)"
    assert "worker died (SIGKILL)" in stdout and "1 of 3 runs did not complete" in stderr


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killing_the_parent_ends_its_workers_and_a_restart_finishes(tmp_path, how):
    spec = sweep_spec(tmp_path, {"data.params.n_samples": [12, SLOW, SLOW + 4], "model.n_neurons": [2, 3, 4]})
    out = tmp_path / "out" / "faults"
    names = ["n_samples=12,n_neurons=2", f"n_samples={SLOW},n_neurons=3", f"n_samples={SLOW + 4},n_neurons=4"]
    sweep = start(spec)
    # two workers: the short run ends (its row written) before the second slow run can start
    pids = [writer(out / name / "run.h5", sweep) for name in names[1:]]
    assert table(out / "sweep.csv")[names[0]]["status"] == "completed"
    os.kill(sweep.pid, how)
    stdout, stderr = sweep.communicate(timeout=60)
    assert wait_gone(pids) == [], f"workers {pids} outlived their parent"
    assert "Traceback" not in stderr
    for name in names[1:]:  # each worker closed its file: resumable, nothing left "running"
        with h5py.File(out / name / "run.h5", "r") as f:
            assert f.attrs["status"] == "interrupted", (name, dict(f.attrs))
    if how == signal.SIGTERM:  # the parent stopped its workers itself and wrote the table
        assert sweep.returncode == 130, stderr
        rows = table(out / "sweep.csv")
        assert [rows[n]["status"] for n in names] == ["completed", "interrupted", "interrupted"]
    # a restart (short runs this time) skips the finished run and runs the other two again
    stamp = (out / names[0] / "run.h5").stat().st_mtime_ns
    again = subprocess.run([sys.executable, "-m", "plasticity_kit", "sweep", str(spec), "--workers", "2",
                            "--set", "schedule.epochs=1"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "1 already completed, 2 to run" in again.stdout
    assert (out / names[0] / "run.h5").stat().st_mtime_ns == stamp
    assert [table(out / "sweep.csv")[n]["status"] for n in names] == ["completed"] * 3


def test_a_restarted_sweep_continues_an_interrupted_run_from_its_checkpoint(tmp_path, monkeypatch):
    """A run of the sweep interrupted (Ctrl-C in a metric at step 30, checkpoint of step 25): the
    restarted sweep resumes it there instead of starting it again, and it ends bit-identical to
    the same run never interrupted; the other run, never started, runs from the beginning."""
    from helpers import interrupt_metric
    from live_runs import assert_same_run

    raw = yaml.safe_load(sweep_spec(tmp_path, {"model.n_neurons": [2, 3]}, epochs=30).read_text())
    raw["record"] = {"every": 5, "checkpoint_seconds": 0}
    raw["metrics"] = [{"name": "weight_norm", "every": 10}]
    sweep = expand(raw, "sweep.yaml")
    first = sweep.runs[0]
    interrupt_metric(monkeypatch, 3)
    assert execute(resolve(first.raw, first.source), progress=False, log=lambda *a: None).status == "interrupted"
    monkeypatch.undo()
    rows = run_sweep(sweep, InProcess(), log=lambda *a: None)
    assert [r["status"] for r in rows] == ["completed", "completed"]
    with h5py.File(first.output_dir / "run.h5", "r") as f:
        assert list(f.attrs["resumed_at"]) == [25]
    with h5py.File(sweep.runs[1].output_dir / "run.h5", "r") as f:
        assert list(f.attrs["resumed_at"]) == []
    alone = resolve({**first.raw, "output": {"dir": str(tmp_path / "alone")}}, "alone.yaml")
    assert_same_run(first.output_dir / "run.h5", execute(alone, progress=False, log=lambda *a: None).path)


def test_sigterm_stops_an_inprocess_sweep(tmp_path):
    """The inprocess executor: SIGTERM interrupts the current run (its file closed ``interrupted``)
    and ends the sweep there, exit 130, the runs not started recorded interrupted."""
    spec = sweep_spec(tmp_path, {"data.params.n_samples": [SLOW, 12], "model.n_neurons": [2, 3]})
    out = tmp_path / "out" / "faults"
    sweep = start(spec, "--executor", "inprocess", workers=None)
    assert writer(out / f"n_samples={SLOW},n_neurons=2" / "run.h5", sweep) == sweep.pid
    sweep.send_signal(signal.SIGTERM)
    _, stderr = sweep.communicate(timeout=60)
    assert sweep.returncode == 130 and "Traceback" not in stderr, stderr
    rows = table(out / "sweep.csv")
    assert [r["status"] for r in rows.values()] == ["interrupted", "interrupted"]
    assert not (out / "n_samples=12,n_neurons=3" / "run.h5").exists()
    with h5py.File(out / f"n_samples={SLOW},n_neurons=2" / "run.h5", "r") as f:
        assert f.attrs["status"] == "interrupted"


def test_inprocess_and_local_executors_still_agree_and_report(tmp_path):
    """The plugin interface is unchanged: Local.map yields one record per task, a dead worker's
    through ``fn.lost``; a function without ``lost`` gets the death as an error."""
    records = list(Local(workers=2).map(_echo_or_die, [1, 2, 3]))
    assert sorted(r if isinstance(r, int) else r[0] for r in records) == [1, 2, 3]
    assert ("lost", "worker died (SIGKILL)") in [(r[1], r[2]) for r in records if isinstance(r, tuple)]
    with pytest.raises(RuntimeError, match=r"worker died \(SIGKILL\)"):
        list(Local(workers=1).map(_die, [1]))


def test_dask_reports_a_lost_worker():
    """Dask retries a task whose worker died; when it gives up (KilledWorker) the task comes back
    through ``fn.lost`` and the other tasks complete."""
    pytest.importorskip("distributed")
    from plasticity_kit.executors import Dask

    records = list(Dask(workers=2).map(_echo_or_die, [1, 2, 3]))
    assert sorted(r for r in records if isinstance(r, int)) == [1, 3]
    lost = [r for r in records if isinstance(r, tuple)]
    assert len(lost) == 1 and lost[0][:2] == (2, "lost") and "worker lost (KilledWorker" in lost[0][2]


def _die(task):
    os.kill(os.getpid(), signal.SIGKILL)


def _echo_or_die(task):
    if task == 2:
        _die(task)
    return task


_echo_or_die.lost = lambda task, reason, **how: (task, "lost", reason)


@pytest.mark.parametrize("rule", ["bcm", "krotov_hopfield"])
def test_a_sweep_run_equals_the_same_run_alone(tmp_path, rule):
    """A run in a single-threaded sweep worker and the same run done alone on 3 threads in this
    process end with bit-identical weights (kernels independent of the thread count, issue 14)."""
    raw = {
        "name": "alone",
        "data": {"name": "white_noise", "params": {"image_shape": [6, 6], "n_samples": 64}},
        "model": {"rule": rule, "n_neurons": 4},
        "schedule": {"epochs": 3, "batch_size": 8, "seed": 11},
        "output": {"dir": str(tmp_path / "sweep")},
        "exporters": [],
        "metrics": [],
        "sweep": {"seed": 4, "zip": {"model.n_neurons": [4, 5]}},
    }
    sweep = expand(raw)  # two runs in one worker process: the second also shows nothing carries over
    assert [r["status"] for r in run_sweep(sweep, Local(workers=1), log=lambda *a: None)] == ["completed"] * 2
    for run in sweep.runs:
        alone = dict(run.raw, output={"dir": str(tmp_path / "alone"), "threads": 3})  # vs 1 in the worker
        result = execute(resolve(alone), progress=False, log=lambda *a: None)
        with h5py.File(run.output_dir / "run.h5", "r") as f:
            in_sweep = f["final/weights"][()]
        np.testing.assert_array_equal(in_sweep, result.state["weights"])
