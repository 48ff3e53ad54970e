"""plasticity-kit show | replay | watch, and the animation exporter: the files exist and hold the
frames asked for; bad requests get a clear error (exit status 2)."""
import re
import shutil
import signal

import numpy as np
import pytest
from PIL import Image

from helpers import tiny_spec
from live_runs import start_run
from plasticity_kit.cli import main
from plasticity_kit.runner import execute
from plasticity_kit.spec import resolve


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("done")
    spec = tiny_spec(tmp, **{"metrics": [{"name": "weight_norm", "every": 6}],
                             "exporters": [{"name": "animation", "params": {"fps": 4}}]})
    return execute(resolve(spec, "tiny.yaml"), progress=False, log=lambda *a: None)


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def gif_frames(path):
    with Image.open(path) as im:
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info.get("duration"))
        return im.n_frames, im.size, durations


def test_animation_exporter_writes_every_recorded_frame(done):
    gif = done.path.parent / "receptive_fields.gif"
    assert gif in done.outputs
    n, size, durations = gif_frames(gif)
    assert n == 10  # steps 0, 2, ..., 18
    assert set(durations) == {250}  # 4 fps


def test_show_lists_status_fields_metrics_and_size(done, capsys):
    code, out, _ = run_cli(capsys, "show", done.path)
    assert code == 0
    assert "status:   completed 6 epochs (18 steps)" in out
    assert "bcm rule, 5 neurons, float32; data 'olivetti' (20 samples x 4096); 6 epochs, batch 8, seed 3" in out
    assert "10 frames, steps 0 to 18, every 2" in out
    assert re.search(r"weights\s+\(5, 4096\)\s+float32\s+none", out)
    assert re.search(r"theta\s+\(5,\)\s+float32\s+none", out)
    assert re.search(r"weight_norm\s+mean\s+3\s+18\s+\d", out)  # evaluated at 6, 12, 18
    assert re.search(r"file:\s+\d+\.\d MB", out)


def test_replay_animation_has_the_frames_asked_for(done, tmp_path, capsys):
    out_gif = tmp_path / "rf.gif"
    code, out, _ = run_cli(capsys, "replay", done.path, "--animate", out_gif, "--every", "4", "--fps", "5")
    assert code == 0 and "(4 frames of weights, 5 fps)" in out
    n, size, durations = gif_frames(out_gif)
    assert n == 4  # frames 0, 4, 8 and the last
    assert set(durations) == {200}
    assert size[0] > 2 * 64 and size[1] > 2 * 64  # 2x3 tiles of 64x64 at 1.5x


def test_replay_plot_and_frame(done, tmp_path, capsys):
    plot, grid = tmp_path / "metrics.png", tmp_path / "grid.png"
    code, out, _ = run_cli(capsys, "replay", done.path, "--plot", plot, "--frame", "8", "--out", grid)
    assert code == 0
    assert "(5 panels)" in out  # θ + the four scalar values of weight_norm
    assert "(step 8, 5 neurons)" in out
    with Image.open(plot) as im:
        assert im.size[1] == 5 * 240  # 2.4 inches per panel at 100 dpi
    with Image.open(grid) as im:
        assert im.format == "PNG"
        pixels = np.asarray(im.convert("L"))
    assert pixels.std() > 10  # drawn faces, not a blank page


@pytest.mark.parametrize("args, message", [
    ([], "nothing to do"),
    (["--frame", "7", "--out", "x.png"], "step 7 was not recorded (nearest recorded: 6, 8)"),
    (["--frame", "8"], "--frame STEP and --out FILE go together"),
    (["--animate", "x.avi"], "expected a file name ending in .gif or .mp4, got 'x.avi'"),
    (["--animate", "x.gif", "--field", "theta"], "field 'theta' has frames of shape (5,), not one 64x64 image per neuron"),
    (["--animate", "x.gif", "--field", "nope"], "no recorded field 'nope'"),
    (["--animate", "x.gif", "--every", "0"], "--every: expected an integer >= 1, got 0"),
    (["--frame", "8", "--out", "x.png", "--layer", "1"], "rule 'bcm' is not a layered model (model.layers); there "
                                                         "is no layer 1"),
    (["--animate", "x.gif", "--layer", "1", "--field", "theta"], "--layer: --layer I draws layers/I/weights: give "
                                                                 "--layer or --field, not both"),
])
def test_replay_bad_requests(done, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "replay", done.path, *args)
    assert code == 2
    assert message in err


def test_mp4_without_ffmpeg_says_so(done, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg here
    code, _, err = run_cli(capsys, "replay", done.path, "--animate", tmp_path / "rf.mp4")
    assert code == 2
    assert "needs ffmpeg, which is not on PATH" in err and not (tmp_path / "rf.mp4").exists()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_mp4_with_ffmpeg(done, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "replay", done.path, "--animate", tmp_path / "rf.mp4")
    assert code == 0 and "(10 frames of weights" in out
    assert (tmp_path / "rf.mp4").stat().st_size > 1000


def test_watch_follows_a_live_run_to_its_end(tmp_path, capsys):
    proc, h5, _ = start_run(tmp_path, min_frames=2, **{"schedule.epochs": 1500, "record.swmr": True,
                                                        "exporters": [], "metrics": [{"name": "weight_norm", "every": 500}]})
    try:
        code, out, err = run_cli(capsys, "watch", h5, "--interval", "0.05")
    finally:
        proc.communicate(timeout=120)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) >= 3 and lines[0].split("] ")[1].startswith("running: step ")
    assert any("weight_norm.mean=" in line for line in lines)
    assert lines[-1] == "completed 1500 epochs (4500 steps)"


def test_watch_once_and_a_killed_run(tmp_path, capsys):
    proc, h5, _ = start_run(tmp_path, **{"record.swmr": True})
    try:
        code, out, _ = run_cli(capsys, "watch", h5, "--once")
        assert code == 0 and re.search(r"running: step \d+/300000 \(\d+%\), epoch \d+, \d+ frames", out)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    code, out, _ = run_cli(capsys, "watch", h5, "--interval", "0.01")
    assert code == 130
    assert "the writing process is gone" in out and f"--resume {h5}" in out
    code, out, _ = run_cli(capsys, "show", h5)
    assert code == 0 and "gone: killed?" in out and "checkpoint: step" in out and f"--resume {h5}" in out
