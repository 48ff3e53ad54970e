"""Fault injection, a full disk: a real ``plasticity-kit run`` writing to a 2 MB tmpfs (when root
may mount one) or under a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored so that writes fail with
EFBIG).  Every case: exit 3 with one line naming the file, the file readable with status
``failed`` and its frames a prefix of the uninterrupted run's, and ``--resume`` once there is room
again ends bit-identical to the uninterrupted run.  The file-size limits are also met with the
recorder's room check switched off, so that HDF5 itself meets the error mid-write.  Each case
for a plain and an SWMR run file."""
import resource
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

from helpers import cli, tiny_spec, write_spec
from live_runs import assert_same_run, error_line
from plasticity_kit.recording import open_for_reading
from plasticity_kit.runner import execute
from plasticity_kit.spec import resolve

CHANGES = {"schedule.epochs": 40, "record.every": 2, "exporters": [],
           "metrics": [{"name": "weight_norm", "every": 6}]}
NO_ROOM_CHECK = ("import sys, plasticity_kit.recording as r, plasticity_kit.runfile as f\n"
                 "r.ensure_room = f.ensure_room = lambda *a: None\n"
                 "from plasticity_kit.cli import main\n"
                 "sys.exit(main(sys.argv[1:]))\n")


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    done = {}

    def get(checkpoint_seconds):
        if checkpoint_seconds not in done:
            tmp = tmp_path_factory.mktemp("reference")
            spec = tiny_spec(tmp, **CHANGES, **{"record.checkpoint_seconds": checkpoint_seconds})
            done[checkpoint_seconds] = execute(resolve(spec, "ref.yaml"), progress=False, log=lambda *a: None).path
        return done[checkpoint_seconds]
    return get


def assert_failed_then_resumes(out, h5, spec_path, reference, resume_env=None):
    """The run stopped with exit 3 and one line; the file is readable and failed; resuming completes it."""
    assert out.returncode == 3, (out.returncode, out.stderr)
    line = error_line(out.stderr)
    assert line.startswith(f"error: {h5}: ") and "the file keeps" in line and "marked failed" in line, line
    with open_for_reading(h5) as f, h5py.File(reference, "r") as ref:
        assert f.attrs["status"] == "failed" and f.attrs["message"] in line
        steps = f["trajectory/step"][:]
        np.testing.assert_array_equal(steps, ref["trajectory/step"][: len(steps)])
        for n in range(len(steps)):  # every frame the file says it has is the uninterrupted run's
            np.testing.assert_array_equal(f["trajectory/weights"][n], ref["trajectory/weights"][n])
    out = cli("run", spec_path, "--resume", h5)
    assert out.returncode == 0, out.stderr
    assert_same_run(h5, reference)
    return len(steps)


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs at tmp_path/disk (root only); grown to 64 MB by calling ``grow()``."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")

    def grow():
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
    try:
        yield disk, grow
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("swmr", [False, True], ids=["plain", "swmr"])
@pytest.mark.parametrize("checkpoint_seconds", [0, 30])
def test_a_full_disk_stops_the_run_and_resume_completes_it(tmp_path, small_disk, references, checkpoint_seconds, swmr):
    disk, grow = small_disk
    spec_path = write_spec(tmp_path, tiny_spec(disk, **CHANGES, **{"record.checkpoint_seconds": checkpoint_seconds,
                                                                  "record.swmr": swmr}))
    h5 = disk / "runs" / "tiny" / "run.h5"
    out = cli("run", spec_path)
    assert "disk full" in out.stderr
    grow()
    assert_failed_then_resumes(out, h5, spec_path, references(checkpoint_seconds))


def limited(size: int):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return preexec


@pytest.mark.parametrize("swmr", [False, True], ids=["plain", "swmr"])
@pytest.mark.parametrize("room_check", [True, False], ids=["checked", "hdf5-meets-it"])
@pytest.mark.parametrize("limit", [1_300_000, 1_800_000])
def test_a_file_size_limit_stops_the_run_and_resume_completes_it(tmp_path, references, limit, room_check, swmr):
    spec_path = write_spec(tmp_path, tiny_spec(tmp_path, **CHANGES, **{"record.checkpoint_seconds": 0,
                                                                      "record.swmr": swmr}))
    h5 = tmp_path / "runs" / "tiny" / "run.h5"
    command = ["-m", "plasticity_kit"] if room_check else ["-c", NO_ROOM_CHECK]
    out = subprocess.run([sys.executable, *command, "run", str(spec_path)], capture_output=True, text=True,
                         preexec_fn=limited(limit), timeout=300)
    assert ("disk full" if room_check else "File too large") in out.stderr
    assert_failed_then_resumes(out, h5, spec_path, references(0))


def test_no_room_to_start_leaves_no_file(tmp_path):
    spec_path = write_spec(tmp_path, tiny_spec(tmp_path, **CHANGES))
    out = subprocess.run([sys.executable, "-m", "plasticity_kit", "run", str(spec_path)], capture_output=True,
                         text=True, preexec_fn=limited(300_000), timeout=300)
    h5 = tmp_path / "runs" / "tiny" / "run.h5"
    assert out.returncode == 3
    assert error_line(out.stderr).startswith(f"error: {h5}: disk full:")
    assert not h5.exists() and not list(h5.parent.glob(".run.h5.new-*"))
    assert cli("run", spec_path).returncode == 0
