"""Runs in a subprocess, for the tests of live, killed and resumed run files."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import tiny_spec, write_spec


def start_run(tmp_path: Path, min_frames: int = 3, **changes):
    """Start ``plasticity-kit run`` on the tiny spec (long by default) and wait until the run file
    holds ``min_frames`` frames; returns (process, run file, spec file)."""
    import plasticity_kit as pk
    from plasticity_kit.errors import DataError

    spec = tiny_spec(tmp_path, **{"schedule.epochs": 100000, "record.every": 50, **changes})
    spec_path = write_spec(tmp_path, spec)
    h5 = tmp_path / "runs" / spec["name"] / "run.h5"
    proc = subprocess.Popen([sys.executable, "-m", "plasticity_kit", "run", str(spec_path), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if h5.exists():
            try:
                with pk.open(h5) as t:
                    if len(t) >= min_frames:
                        return proc, h5, spec_path
            except (DataError, OSError, KeyError):
                pass
        if proc.poll() is not None:
            pytest.fail(f"the run ended before recording {min_frames} frames: {proc.communicate()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"the run did not record {min_frames} frames within 60 s")


def launch(*args, preexec_fn=None) -> subprocess.Popen:
    """``plasticity-kit ARGS`` in a child process, stdout and stderr captured."""
    return subprocess.Popen([sys.executable, "-m", "plasticity_kit", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)


def error_line(stderr: str) -> str:
    """The one line a failed command printed (asserting it printed exactly one, and no traceback)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def assert_same_run(resumed_path, reference_path):
    """Same frames (steps strictly increasing), metrics and end state; only wall-clock times may differ."""
    import h5py
    import numpy as np

    with h5py.File(resumed_path, "r") as a, h5py.File(reference_path, "r") as b:
        assert a.attrs["status"] == b.attrs["status"] == "completed"
        assert a.attrs["steps"] == b.attrs["steps"] and a.attrs["epochs_completed"] == b.attrs["epochs_completed"]
        assert np.all(np.diff(a["trajectory/step"][:]) > 0)
        for key in b["trajectory"]:
            if key != "time":
                np.testing.assert_array_equal(a["trajectory"][key][:], b["trajectory"][key][:], err_msg=key)
        assert np.all(np.diff(a["trajectory/time"][:]) >= 0)
        assert set(a.get("metrics", {})) == set(b.get("metrics", {}))
        for name, g in b.get("metrics", {}).items():
            for key in g:
                np.testing.assert_array_equal(a["metrics"][name][key][:], g[key][:], err_msg=f"{name}/{key}")
        finals = []
        b["final"].visititems(lambda k, o: finals.append(k) if isinstance(o, h5py.Dataset) else None)
        assert finals
        for key in finals:
            np.testing.assert_array_equal(a["final"][key][()], b["final"][key][()], err_msg=key)
