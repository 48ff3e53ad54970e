"""Fault injection, concurrency: two real ``plasticity-kit run`` processes on the same output, a
run over a finished one, a symbolic link at run.h5.  In every case exactly one run writes the
file, the other stops with one line (exit 2), and no file is destroyed."""
import os
import time

import h5py
import pytest

from helpers import cli, tiny_spec, write_spec
from live_runs import error_line, launch, start_run

CHANGES = {"schedule.epochs": 150, "record.every": 10, "exporters": []}


@pytest.mark.parametrize("delay", [0.0, 0.5, 1.5])  # the second starts during the first's start-up or training
def test_two_runs_of_one_spec_one_wins(tmp_path, delay):
    spec_path = write_spec(tmp_path, tiny_spec(tmp_path, **CHANGES))
    runs = [launch("run", spec_path, "-q")]
    time.sleep(delay)
    runs.append(launch("run", spec_path, "-q"))
    outs = [p.communicate(timeout=120) for p in runs]
    codes = sorted(p.returncode for p in runs)
    assert codes == [0, 2], outs
    loser = outs[[p.returncode for p in runs].index(2)]
    line = error_line(loser[1])
    h5 = tmp_path / "runs" / "tiny" / "run.h5"
    assert str(h5) in line and ("another run is writing it" in line or "already holds a completed run" in line)
    with h5py.File(h5, "r") as f:  # the winner's file is whole
        assert f.attrs["status"] == "completed"
        assert f["trajectory/step"][-1] == 450 and f["final/weights"].shape == (5, 4096)
    assert not (tmp_path / "runs" / "tiny" / "run.h5.lock").exists()


def test_a_run_while_another_writes_and_a_resume_of_a_live_run(tmp_path):
    proc, h5, spec_path = start_run(tmp_path, min_frames=2)
    try:
        for args in (("run", spec_path), ("run", spec_path, "--overwrite"), ("run", spec_path, "--resume", h5)):
            out = cli(*args)
            assert out.returncode == 2, out
            line = error_line(out.stderr)
            assert line == (f"error: {h5}: another run is writing it (process {proc.pid} on {os.uname().nodename}); "
                            f"wait for it to end, or give this run another name or output.dir")
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert proc.returncode == 130
    with h5py.File(h5, "r") as f:
        assert f.attrs["status"] == "interrupted"


def test_a_finished_run_is_replaced_only_with_overwrite(tmp_path):
    spec_path = write_spec(tmp_path, tiny_spec(tmp_path, exporters=[]))
    assert cli("run", spec_path).returncode == 0
    h5 = tmp_path / "runs" / "tiny" / "run.h5"
    before, inode = h5.read_bytes(), h5.stat().st_ino
    out = cli("run", spec_path)
    assert out.returncode == 2
    assert error_line(out.stderr) == f"error: {h5} already holds a completed run; add --overwrite to replace it"
    assert h5.read_bytes() == before
    out = cli("run", spec_path, "--overwrite")
    assert out.returncode == 0, out.stderr
    with h5py.File(h5, "r") as f:
        assert f.attrs["status"] == "completed"
    assert h5.stat().st_ino != inode  # a new file renamed over the old one, never the old one truncated
    assert not list(h5.parent.glob(".run.h5.new-*"))


def test_an_interrupted_run_is_offered_resume(tmp_path):
    proc, h5, spec_path = start_run(tmp_path, min_frames=2)
    proc.terminate()
    proc.communicate(timeout=60)
    out = cli("run", spec_path)
    assert out.returncode == 2
    assert error_line(out.stderr) == (f"error: {h5} already holds an interrupted run; add --overwrite to replace it, "
                                      f"or continue it with --resume {h5}")


def test_a_symlinked_run_file_is_refused(tmp_path):
    outside = tmp_path / "elsewhere" / "precious.h5"
    outside.parent.mkdir()
    outside.write_bytes(b"a week of work")
    spec_path = write_spec(tmp_path, tiny_spec(tmp_path, exporters=[]))
    h5 = tmp_path / "runs" / "tiny" / "run.h5"
    h5.parent.mkdir(parents=True)
    h5.symlink_to(outside)
    for args in ((), ("--overwrite",)):
        out = cli("run", spec_path, *args)
        assert out.returncode == 2
        assert error_line(out.stderr) == (f"error: {h5} is a symbolic link (to {outside}); a run writes its file only "
                                          f"inside its output folder: remove the link, or set another output.dir")
    assert outside.read_bytes() == b"a week of work" and h5.is_symlink()
