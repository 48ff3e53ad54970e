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
