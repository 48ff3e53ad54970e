"""Resume: a run continued from its last checkpoint equals the same run never interrupted
(bitwise: same machine, same kernels), after SIGKILL, Ctrl-C between or inside steps, for every rule."""
import copy
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

import plasticity_kit as pk
from helpers import cli, interrupt_metric, tiny_spec, write_spec
from live_runs import assert_same_run, start_run
from plasticity_kit.errors import DataError, SpecError
from plasticity_kit.plugins import registry
from plasticity_kit.h5clear import WRITE, clear_status_flags, dead_plain_writer, status_flags
from plasticity_kit.recording import Recorder, open_for_reading
from plasticity_kit.runner import execute
from plasticity_kit.scheduler import Position, train
from plasticity_kit.spec import resolve
from plasticity_kit.testing import make_rule

QUIET = {"progress": False, "log": lambda *a: None}
RULE_PARAMS = {  # what a rule needs beyond its defaults to run on 64x64 faces
    "hebbian_weight_sharing": ({"input_shape": [64, 64], "kernel_size": 16, "stride": 16, "sleep_every": 4,
                                "sleep_steps": 2, "sleep_batch": 4}, 1),
}


def rule_spec(tmp_path, rule: str, **changes) -> dict:
    params, n_neurons = RULE_PARAMS.get(rule, ({}, 4))
    spec = tiny_spec(tmp_path, **{"record.every": 4, "record.checkpoint_seconds": 0,
                                  "metrics": [{"name": "weight_norm", "every": 5}], "exporters": [], **changes})
    if rule != "bcm":
        spec["model"] = {"rule": {"name": rule, "params": params}, "n_neurons": n_neurons}
    return spec


def test_multi_step_calls_hold_at_most_chunk_samples_indices(monkeypatch):
    """A rule's chunk (``chunk_steps`` steps per ``run_steps`` call) is cut to CHUNK_SAMPLES sample
    indices, at fixed step numbers: 7 epochs of 10 samples in batches of 2 with CHUNK_SAMPLES = 6
    are calls of 3 steps, ending at the multiples of 3."""
    from plasticity_kit import scheduler

    rule = make_rule("bcm", {}, {"optimizer": {"name": "sgd", "params": {"lr": 0.01}}}, n_inputs=6, n_neurons=3)
    assert rule.chunk_steps > 3
    monkeypatch.setattr(scheduler, "CHUNK_SAMPLES", 6)
    sizes = []
    original = type(rule).run_steps
    monkeypatch.setattr(type(rule), "run_steps", lambda self, state, X, batches: (sizes.append(len(batches)),
                                                                                  original(self, state, X, batches)))
    X = np.random.default_rng(0).random((10, 6))
    train(rule, rule.init_state(np.random.default_rng(1)), X, epochs=7, batch_size=2, shuffle=True,
          rng=np.random.default_rng(2))
    assert sizes == [3] * 11 + [2]


def test_train_continues_from_a_position_exactly():
    rule = make_rule("bcm", {}, {"optimizer": {"name": "adam", "params": {"lr": 0.01}}}, n_inputs=6, n_neurons=3,
                     dtype="float64")
    X = np.random.default_rng(0).random((10, 6))
    snapshots = {}

    def on_record(step, epoch, elapsed, state):
        snapshots[step] = (copy.deepcopy(position), {k: v.copy() for k, v in state.items()})

    position = Position()
    full = rule.init_state(np.random.default_rng(1))
    train(rule, full, X, epochs=5, batch_size=4, shuffle=True, rng=np.random.default_rng(2), record_every=1,
          on_record=on_record, position=position)
    assert (position.step, position.epoch, position.batch) == (15, 5, 0)
    for step, (epoch, batch) in {7: (2, 1), 9: (3, 0)}.items():  # mid-epoch and at an epoch's end
        start, state = snapshots[step]
        assert (start.step, start.epoch, start.batch) == (step, epoch, batch)
        rng = np.random.default_rng(12345)  # its state is replaced by the saved one
        outcome = train(rule, state, X, epochs=5, batch_size=4, shuffle=True, rng=rng, position=start)
        assert outcome.status == "completed" and outcome.steps == 15
        for key in full:
            np.testing.assert_array_equal(state[key], full[key], err_msg=key)


INTERRUPTIONS = {  # where Ctrl-C comes → the step the run resumes from
    "between_steps": ("plasticity_kit.scheduler.Progress.update", 3, 9),  # after epoch 3: checkpointed
    "inside_step": ("step", 10, 8),             # inside step 10: back to the record of step 8
    "in_metric": ("plasticity_kit.metrics.convergence.WeightNorm.compute", 2, 8),  # metric of step 10
}


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """The uninterrupted run of each rule, made once."""
    done = {}

    def get(rule):
        if rule not in done:
            done[rule] = execute(resolve(rule_spec(tmp_path_factory.mktemp(rule), rule), "ref.yaml"), **QUIET)
        return done[rule]
    return get


@pytest.mark.parametrize("rule", sorted(registry().rules))
@pytest.mark.parametrize("where", sorted(INTERRUPTIONS))
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, monkeypatch, references, rule, where):
    reference = references(rule)
    spec = rule_spec(tmp_path, rule)
    target, nth, resumed_at = INTERRUPTIONS[where]
    if target == "step":
        owner = registry().rules.classes[rule]
        # a multi-step kernel gets several steps per call: the call holding step `nth` is interrupted
        name = "run_steps" if resolve(spec, "tiny.yaml").build_rule(4096).chunk_steps > 1 else "step"
    else:
        module, cls_name, name = target.rsplit(".", 2)
        owner = getattr(__import__(module, fromlist=[cls_name]), cls_name)
    original = getattr(owner, name)
    calls = []

    def interrupting(self, *args):
        calls.append(len(args[2]) if name == "run_steps" else 1)
        if sum(calls) >= nth:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(owner, name, interrupting)
    first = execute(resolve(spec, "tiny.yaml"), **QUIET)
    monkeypatch.undo()
    assert first.status == "interrupted"
    with h5py.File(first.path, "r") as f:
        assert f["trajectory/step"][-1] == first.outcome.steps in (9, 10)  # the interruption's own frame
    resumed = execute(resolve(spec, "tiny.yaml"), resume=first.path, **QUIET)
    assert resumed.status == "completed" and resumed.path == first.path
    assert_same_run(first.path, reference.path)
    with h5py.File(first.path, "r") as f:
        assert list(f.attrs["resumed_at"]) == [resumed_at]
    with pk.open(first.path) as t:  # the reader rebuilds this rule and its full end state
        end = t.at(int(t.steps[-1]))
        assert set(end) == set(resumed.state)
        X = resumed.data.X[:3]
        np.testing.assert_array_equal(end.transform(X), resumed.rule.transform(resumed.state, X))


THETA_ONLY = {"schedule.batch_size": 10, "record.every": 10, "record.fields": ["theta"], "exporters": [],
              "model.optimizer": {"name": "sgd", "params": {"lr": 0.0003}}, "model.initializer.params.std": 0.0001}


def test_theta_frames_are_taken_inside_kernel_calls(tmp_path, monkeypatch):
    """BCM with SGD recording θ only: the sample-space kernel is called once for 800 steps (not
    once per frame), the 81 frames are all there, and the frame of step 200 is the θ that a run
    of those 200 steps alone ends with, bit for bit."""
    from plasticity_kit.rules.bcm import BCM

    calls = []
    original = BCM.run_steps
    monkeypatch.setattr(BCM, "run_steps", lambda self, *a: (calls.append(len(a[2])), original(self, *a))[1])
    spec = tiny_spec(tmp_path / "long", **THETA_ONLY, **{"schedule.epochs": 400})
    long = execute(resolve(spec, "long.yaml"), **QUIET)
    assert long.status == "completed" and calls == [800]
    short = execute(resolve(tiny_spec(tmp_path / "short", **THETA_ONLY, **{"schedule.epochs": 100}), "s.yaml"), **QUIET)
    with h5py.File(long.path, "r") as f:
        np.testing.assert_array_equal(f["trajectory/step"][:], np.arange(0, 801, 10))
        assert np.all(np.diff(f["trajectory/time"][:]) >= 0)
        np.testing.assert_array_equal(f["trajectory/theta"][20], short.state["theta"])
        np.testing.assert_array_equal(f["trajectory/theta"][-1], long.state["theta"])
    calls.clear()  # recording the weights too: a call ends at every record
    both = {**THETA_ONLY, "schedule.epochs": 400, "record.fields": ["weights", "theta"]}
    execute(resolve(tiny_spec(tmp_path / "w", **both), "w.yaml"), **QUIET)
    assert calls == [10] * 80


def test_theta_frames_inside_calls_in_the_weight_space(tmp_path):
    """With Adam (no sample-space form) the kernel is called once per stretch between frames, as
    when the weights are recorded too: the same θ frames, bit for bit."""
    adam = {**THETA_ONLY, "schedule.epochs": 60, "model.optimizer": {"name": "adam", "params": {"lr": 0.001}}}
    theta = execute(resolve(tiny_spec(tmp_path / "t", **adam), "t.yaml"), **QUIET)
    both = execute(resolve(tiny_spec(tmp_path / "b", **{**adam, "record.fields": ["weights", "theta"]}), "b.yaml"),
                   **QUIET)
    with h5py.File(theta.path, "r") as a, h5py.File(both.path, "r") as b:
        assert a["trajectory/theta"].shape[0] == 13
        np.testing.assert_array_equal(a["trajectory/theta"][:], b["trajectory/theta"][:])


def test_resumed_from_a_checkpoint_between_frames_equals_uninterrupted(tmp_path, monkeypatch):
    """θ-only frames inside calls of 35 steps (a metric every 35): the checkpoint is rewritten at
    the calls' ends.  Ctrl-C in the metric of step 140 leaves the checkpoint of step 105, between
    the frames of 100 and 110; the resumed run equals the uninterrupted one."""
    changes = {**THETA_ONLY, "schedule.epochs": 150, "record.checkpoint_seconds": 0,
               "metrics": [{"name": "weight_norm", "every": 35}]}
    reference = execute(resolve(tiny_spec(tmp_path / "ref", **changes), "ref.yaml"), **QUIET)
    spec = tiny_spec(tmp_path, **changes)
    interrupt_metric(monkeypatch, 4)
    first = execute(resolve(spec, "tiny.yaml"), **QUIET)
    monkeypatch.undo()
    assert first.status == "interrupted" and first.outcome.steps == 140
    resumed = execute(resolve(spec, "tiny.yaml"), resume=first.path, **QUIET)
    assert resumed.status == "completed"
    assert_same_run(first.path, reference.path)
    with h5py.File(first.path, "r") as f:
        assert list(f.attrs["resumed_at"]) == [105]


@pytest.mark.parametrize("swmr", [False, True], ids=["plain", "swmr"])
def test_killed_then_resumed_equals_uninterrupted(tmp_path, swmr):
    changes = {"schedule.epochs": 500, "record.every": 25, "record.swmr": swmr, "record.checkpoint_seconds": 0,
               "exporters": [],
               "metrics": [{"name": "weight_norm", "every": 40}]}
    proc, h5, spec_path = start_run(tmp_path, min_frames=2, **changes)
    try:
        with pytest.raises(DataError, match="still|cannot open for writing"):  # its writer is alive
            Recorder.resume(h5, record_every=25, swmr=swmr)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with open_for_reading(h5, retries=0) as f:  # killed in SWMR mode or in one of its plain windows
        killed_at = int(f["trajectory/step"][-1])
        assert f.attrs["status"] == "running" and killed_at < 1500
    out = cli("run", spec_path, "--resume", h5)
    assert out.returncode == 0, out.stderr
    assert "completed 500 epochs" in out.stdout
    reference = execute(resolve(tiny_spec(tmp_path / "ref", **changes), "ref.yaml"), **QUIET)
    assert_same_run(h5, reference.path)
    with h5py.File(h5, "r") as f:  # closed cleanly again: plain h5py opens it
        (resumed_at,) = f.attrs["resumed_at"]
        assert 0 < resumed_at <= killed_at and resumed_at % 25 == 0


def test_swmr_run_killed_outside_swmr_mode_is_shown_and_resumed(tmp_path):
    """An SWMR run leaves SWMR mode for a moment to add datasets or rewrite a checkpoint; killed
    then, its file says "open for writing" without SWMR, which HDF5 refuses even to read.  Made
    here for certain: the run is killed, then a second process opens the file for writing
    outside SWMR mode and dies without closing it.  While that process lives its file is not
    touched; once it is dead, ``show`` reads the file and ``--resume`` continues it to the run
    never interrupted."""
    changes = {"schedule.epochs": 500, "record.every": 25, "record.swmr": True, "record.checkpoint_seconds": 0,
               "exporters": [], "metrics": [{"name": "weight_norm", "every": 40}]}
    proc, h5, spec_path = start_run(tmp_path, min_frames=2, **changes)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    clear_status_flags(h5)
    plain_writer = subprocess.Popen([sys.executable, "-c", (
        "import h5py, sys, time\n"
        f"f = h5py.File({str(h5)!r}, 'r+', libver=('v110', 'v110'))\n"
        "f.attrs['note'] = 1; f.flush(); print('open', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert plain_writer.stdout.readline().strip() == "open"
        assert status_flags(h5) == WRITE
        assert not dead_plain_writer(h5)  # it holds HDF5's lock
        with pytest.raises(DataError, match="cannot be opened for reading"):
            open_for_reading(h5, retries=0)
        with pytest.raises(DataError, match="still open for writing"):
            Recorder.resume(h5, record_every=25, swmr=True)
        assert status_flags(h5) == WRITE  # a live writer's flags are left alone
    finally:
        plain_writer.kill()
        plain_writer.wait(timeout=30)
    assert dead_plain_writer(h5)
    with pytest.raises(OSError, match="not already open for SWMR writing"):
        h5py.File(h5, "r", swmr=True)
    out = cli("show", h5)
    assert out.returncode == 0, out.stderr
    assert "continue with: plasticity-kit run SPEC --resume" in out.stdout
    out = cli("run", spec_path, "--resume", h5)
    assert out.returncode == 0, out.stderr
    reference = execute(resolve(tiny_spec(tmp_path / "ref", **changes), "ref.yaml"), **QUIET)
    assert_same_run(h5, reference.path)


def test_refuses_a_completed_run_and_another_spec(tmp_path):
    spec = tiny_spec(tmp_path)
    done = execute(resolve(spec, "tiny.yaml"), **QUIET)
    before = done.path.read_bytes()
    with pytest.raises(DataError, match="completed; nothing to resume"):
        execute(resolve(spec, "tiny.yaml"), resume=done.path, **QUIET)
    other = tiny_spec(tmp_path, **{"schedule.epochs": 7, "model.n_neurons": 4})
    with pytest.raises(SpecError, match=r"--resume: .* recorded from another spec: model.n_neurons is 5 there, "
                                        r"4 here; schedule.epochs is 6 there, 7 here"):
        execute(resolve(other, "tiny.yaml"), resume=done.path, **QUIET)
    assert done.path.read_bytes() == before  # untouched


def test_cli_resume_errors_name_the_file(tmp_path):
    path = write_spec(tmp_path, tiny_spec(tmp_path))
    out = cli("run", path, "--resume", tmp_path / "nope.h5")
    assert out.returncode == 2
    assert f"{tmp_path / 'nope.h5'}: no such run file" in out.stderr


def test_lookup3_matches_the_reference_vectors():
    """The superblock checksum that clearing a killed SWMR file's flags rewrites (Jenkins' driver5)."""
    from plasticity_kit.h5clear import lookup3

    assert lookup3(b"") == 0xDEADBEEF
    assert lookup3(b"Four score and seven years ago") == 0x17770551
    assert lookup3(b"Four score and seven years ago", 1) == 0xCD628161


@pytest.mark.parametrize("checkpoint_seconds", [0, 30])  # step 0 checkpointed with its frame / at creation only
def test_resuming_from_step_0_records_frame_0_once(tmp_path, monkeypatch, references, checkpoint_seconds):
    spec = rule_spec(tmp_path, "bcm", **{"record.checkpoint_seconds": checkpoint_seconds})
    owner = registry().rules.classes["bcm"]
    name = "run_steps" if resolve(spec, "tiny.yaml").build_rule(4096).chunk_steps > 1 else "step"

    def interrupting(self, *args):
        raise KeyboardInterrupt  # inside the first step: no exact position to checkpoint

    monkeypatch.setattr(owner, name, interrupting)
    first = execute(resolve(spec, "tiny.yaml"), **QUIET)
    monkeypatch.undo()
    with h5py.File(first.path, "r") as f:
        assert first.status == "interrupted" and list(f["trajectory/step"][:]) == [0]
        assert f["checkpoint/0/position"][0] == 0 and f["checkpoint/current"][()] in (0, 1)
    execute(resolve(spec, "tiny.yaml"), resume=first.path, **QUIET)
    assert_same_run(first.path, references("bcm").path)  # steps 0, 4, 8, ... once each


@pytest.mark.parametrize("damage", ["spec", "data", "checkpoint"])
def test_cli_resume_of_a_damaged_file_is_one_line(tmp_path, damage):
    spec = tiny_spec(tmp_path, **{"schedule.epochs": 2})
    done = execute(resolve(spec, "tiny.yaml"), **QUIET)
    with h5py.File(done.path, "r+") as f:
        f.attrs["status"] = "interrupted"
        if damage == "checkpoint":
            f["checkpoint/current"][()] = 5
        else:
            del f[damage]
    out = cli("run", write_spec(tmp_path, spec), "--resume", done.path)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(done.path) in lines[0]
