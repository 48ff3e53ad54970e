"""Property-based fuzzing of run files (Hypothesis): a real small run file, corrupted — truncated,
bytes flipped, groups/datasets/attributes deleted, attributes given odd values or swapped, datasets
replaced by strings or by huge declared shapes, the spec text mangled — then read by every read
path (``show``, ``replay --frame``, ``metrics``, ``plasticity_kit.open(...).at``) in this process.

Each read either succeeds (exit 0) or ends with exit status 2 and one line naming the file: never a
traceback, never an allocation beyond a bound (tracemalloc peak; the huge-shape cases also in a
child process under RLIMIT_AS)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import plasticity_kit as pk  # noqa: E402
from plasticity_kit.cli import main  # noqa: E402
from plasticity_kit.errors import PlasticityKitError  # noqa: E402
from plasticity_kit.runner import execute  # noqa: E402
from plasticity_kit.runfile_check import MalformedRunFile, check_run_file  # noqa: E402
from plasticity_kit.spec import resolve  # noqa: E402

FUZZ = settings(derandomize=True, deadline=None, database=None, print_blob=False,
                suppress_health_check=list(HealthCheck))
PEAK = 256 << 20  # bytes a read path may allocate (tracemalloc peak) on files of a few kB
HUGE = [2**31, 2**36, 2**40, 2**46]  # declared lengths: 16 GiB to 512 TiB once multiplied out
COUNT = {"files": 0, "tests": set()}


def tiny_spec(out: Path) -> dict:
    return {
        "name": "fuzz",
        "data": {"name": "white_noise", "params": {"image_shape": [4, 4], "n_samples": 12}},
        "model": {"rule": "bcm", "n_neurons": 3},
        "schedule": {"epochs": 2, "batch_size": 4, "seed": 1},
        "record": {"every": 1},
        "output": {"dir": str(out)},
        "exporters": [],
        "metrics": ["network"],
    }


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The bytes of a real run file, and the paths of its objects and attributes."""
    tmp = tmp_path_factory.mktemp("fuzz")
    result = execute(resolve(tiny_spec(tmp / "runs"), "fuzz.yaml"), progress=False, log=lambda *a: None)
    path = Path(result.path)
    objects, attrs, datasets = [], [("/", k) for k in h5py.File(path, "r").attrs], []
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            objects.append(name)
            if isinstance(obj, h5py.Dataset):
                datasets.append(name)
            attrs.extend((name, k) for k in obj.attrs)
        f.visititems(visit)
        spec = yaml.safe_load(f["spec"][()])
    return Base({"bytes": path.read_bytes(), "objects": objects, "attrs": attrs, "datasets": datasets,
                 "spec": spec, "dir": tmp, "last": int(result.outcome.steps)})


class Base(dict):
    def __repr__(self) -> str:  # Hypothesis prints the fixture with a failing example
        return f"<run file of {len(self['bytes'])} bytes>"


def fresh(base, name: str = "run.h5") -> Path:
    path = base["dir"] / "case" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(base["bytes"])
    return path


def cli(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def read_everything(path: Path, tmp: Path, frame: bool) -> list[int]:
    """``show``, ``open().at`` and one of ``replay --frame`` (``frame``) and ``metrics`` on ``path``:
    each exits 0, or 2 with one line naming the file; returns the exit codes."""
    codes = []
    commands = [("show", path), ("replay", path, "--frame", "last", "--out", tmp / "frame.png") if frame
                else ("metrics", path)]
    for args in commands:
        code, out, err = cli(*args)
        assert "Traceback" not in err + out
        assert code in (0, 2), (args, code, err)
        if code == 2:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0], err
        codes.append(code)
    try:
        with pk.open(path) as t:
            if len(t):
                t.at(int(t.steps[-1]))
        codes.append(0)
    except PlasticityKitError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
        codes.append(2)
    COUNT["files"] += 1
    COUNT["tests"].add(os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0])
    return codes


def checked(path: Path, tmp: Path, frame: bool = True) -> list[int]:
    tracemalloc.start()
    try:
        codes = read_everything(path, tmp, frame)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK, f"reading {path} allocated {peak / 2**20:.0f} MiB"
    return codes


# -- corruptions ------------------------------------------------------------------------------

@settings(FUZZ, max_examples=50)
@given(st.data())
def test_truncated(base, data):
    size = len(base["bytes"])
    cut = data.draw(st.integers(0, size - 1) | st.sampled_from([0, 7, 8, 95, 512, size // 2, size - 1]))
    path = fresh(base)
    with open(path, "r+b") as fh:
        fh.truncate(cut)
    codes = checked(path, base["dir"], frame=data.draw(st.booleans()))
    assert codes[0] == 2  # a cut file is never taken for whole


@settings(FUZZ, max_examples=55)
@given(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=8),
       st.booleans())
def test_bytes_flipped(base, flips, frame):
    raw = bytearray(base["bytes"])
    for where, mask in flips:
        raw[int(where * len(raw))] ^= mask
    path = fresh(base)
    path.write_bytes(bytes(raw))
    checked(path, base["dir"], frame)


@settings(FUZZ, max_examples=45)
@given(st.data())
def test_object_deleted(base, data):
    victim = data.draw(st.sampled_from(base["objects"]))
    path = fresh(base)
    with h5py.File(path, "r+") as f:
        if victim in f:
            del f[victim]
    codes = checked(path, base["dir"], frame=data.draw(st.booleans()))
    if victim.split("/")[0] in ("spec", "data", "trajectory") and victim.count("/") <= 1:
        assert codes[0] == 2


ODD = st.sampled_from([
    b"completed", "completed", "plasticity-kit/trajectory", b"plasticity-kit/trajectory",
    np.array(["a", "b"], dtype=h5py.string_dtype()), np.array([1, 2, 3]), np.array([[1.5, 2.5]]),
    np.int64(-5), np.uint64(2**64 - 1), 2**62, 1.5, float("nan"), np.array([], dtype=np.int64), "x" * 300,
    np.void(b"\xff\xfe"), True, np.array([b"plasticity-kit/trajectory"]), np.int8(1), "running", "🙂",
])


@settings(FUZZ, max_examples=55)
@given(st.data())
def test_attribute_odd_or_deleted(base, data):
    obj, name = data.draw(st.sampled_from(base["attrs"]))
    value = data.draw(st.none() | ODD)
    path = fresh(base)
    with h5py.File(path, "r+") as f:
        if value is None:
            del f[obj].attrs[name]
        else:
            f[obj].attrs[name] = value
    checked(path, base["dir"], frame=data.draw(st.booleans()))


@settings(FUZZ, max_examples=30)
@given(st.data())
def test_attributes_swapped(base, data):
    (o1, a1), (o2, a2) = data.draw(st.lists(st.sampled_from(base["attrs"]), min_size=2, max_size=2, unique=True))
    path = fresh(base)
    with h5py.File(path, "r+") as f:
        v1, v2 = f[o1].attrs[a1], f[o2].attrs[a2]
        f[o1].attrs[a1], f[o2].attrs[a2] = v2, v1
    checked(path, base["dir"], frame=data.draw(st.booleans()))


WRONG = st.sampled_from([
    "text", b"bytes", np.array([b"a", b"b"]), np.array(["1", "2"], dtype=h5py.string_dtype()),
    np.array([[1.5]]), np.int8(3), np.array([True, False]), np.zeros(4, dtype=[("a", "i4"), ("b", "f4")]),
    np.zeros((2, 3, 4)), np.arange(5), np.array(7.5), "group",
])


@settings(FUZZ, max_examples=45)
@given(st.data())
def test_dataset_wrong_dtype(base, data):
    victim = data.draw(st.sampled_from(base["datasets"]))
    value = data.draw(WRONG)
    path = fresh(base)
    with h5py.File(path, "r+") as f:
        del f[victim]
        if isinstance(value, str) and value == "group":
            f.create_group(victim)
        else:
            f.create_dataset(victim, data=value)
    checked(path, base["dir"], frame=data.draw(st.booleans()))


def declare_huge(f: h5py.File, victim: str, axis: int | None, length: int) -> None:
    """Replace ``victim`` by a never-written chunked dataset of a huge declared shape (a few bytes on disk)."""
    old = f[victim]
    shape, dtype = tuple(old.shape or ()), old.dtype
    del f[victim]
    shape = shape or (1,)
    if axis is None:
        shape = tuple(length for _ in shape)
    else:
        shape = tuple(length if i == axis % len(shape) else s for i, s in enumerate(shape))
    chunks = tuple(min(s, 64) for s in shape)
    f.create_dataset(victim, shape=shape, dtype=dtype, chunks=chunks, maxshape=(None,) * len(shape))


@settings(FUZZ, max_examples=40)
@given(st.data())
def test_huge_declared_shape(base, data):
    victim = data.draw(st.sampled_from(base["datasets"]))
    axis = data.draw(st.none() | st.integers(0, 2))
    length = data.draw(st.sampled_from(HUGE))
    path = fresh(base)
    with h5py.File(path, "r+") as f:
        declare_huge(f, victim, axis, length)
    assert path.stat().st_size < 2 * len(base["bytes"])
    checked(path, base["dir"], frame=data.draw(st.booleans()))


SPEC_EDITS = st.sampled_from([None, -1, 0, "x", [1], {"a": 1}, 10**20, 3.5, True, 10**6])


@settings(FUZZ, max_examples=30)
@given(st.data())
def test_spec_text_mangled(base, data):
    spec = json.loads(json.dumps(base["spec"]))
    kind = data.draw(st.sampled_from(["edit", "delete", "text"]))
    if kind == "text":
        text = data.draw(st.sampled_from(["", "[" * 5000, "a: [", "- 1\n- 2\n", "\x00", "model: 3", "42",
                                          yaml.safe_dump(spec)[: len(yaml.safe_dump(spec)) // 2]]))
    else:
        section = data.draw(st.sampled_from(["model", "schedule", "record", "data", "metrics"]))
        node = spec[section]
        if isinstance(node, dict) and node:
            key = data.draw(st.sampled_from(sorted(node)))
            if kind == "delete":
                del node[key]
            else:
                node[key] = data.draw(SPEC_EDITS)
        else:
            spec[section] = data.draw(SPEC_EDITS)
        text = yaml.safe_dump(spec)
    path = fresh(base)
    with h5py.File(path, "r+") as f:
        del f["spec"]
        if "\x00" in text:  # HDF5's variable-length strings cannot hold NUL: fixed-length bytes
            f.create_dataset("spec", data=np.bytes_(text.encode()))
        else:
            f.create_dataset("spec", data=text, dtype=h5py.string_dtype("utf-8"))
    checked(path, base["dir"], frame=data.draw(st.booleans()))


# -- fixed cases -----------------------------------------------------------------------------

def test_malformed_files_one_line_each(base, tmp_path):
    """The cases named in issue 12, each with the line a user gets."""
    cases = {}
    cases["not hdf5"] = tmp_path / "notes.h5"
    cases["not hdf5"].write_text("hello\n")
    cases["empty"] = tmp_path / "empty.h5"
    cases["empty"].write_bytes(b"")
    cases["missing"] = tmp_path / "missing.h5"
    cases["directory"] = tmp_path / "adir"
    cases["directory"].mkdir()
    cases["other hdf5"] = tmp_path / "other.h5"
    with h5py.File(cases["other hdf5"], "w") as f:
        f["x"] = np.arange(3)
    expected = {"not hdf5": "not an HDF5 file", "empty": "not an HDF5 file", "missing": "no such run file",
                "directory": "is a directory", "other hdf5": "not a plasticity-kit run file"}

    def edit(name, fn, message):
        path = tmp_path / f"{name.replace(' ', '_')}.h5"
        path.write_bytes(base["bytes"])
        with h5py.File(path, "r+") as f:
            fn(f)
        cases[name], expected[name] = path, message

    edit("no spec", lambda f: f.__delitem__("spec"), "dataset 'spec' is missing")
    edit("no data", lambda f: f.__delitem__("data"), "group 'data' is missing")
    edit("no trajectory", lambda f: f.__delitem__("trajectory"), "group 'trajectory' is missing")
    edit("format bytes", lambda f: f.attrs.__setitem__("format", np.array([1, 2])),
         "format attribute is [1, 2]")
    edit("future version", lambda f: f.attrs.__setitem__("format_version", 99), "format version 99")
    edit("status array", lambda f: f.attrs.__setitem__("status", np.array(["a", "b"], dtype=h5py.string_dtype())),
         "attribute 'status' is an array")
    edit("short field", lambda f: f["trajectory/weights"].resize(2, axis=0), "'trajectory/weights' has 2 frames")
    edit("broken checkpoint", lambda f: f["checkpoint/current"].write_direct(np.array(5)),
         "'checkpoint/current' is 5")
    edit("broken rng", lambda f: f["checkpoint/0/rng"].write_direct(np.array(b"{not json", dtype="S2048")),
         "'checkpoint/0/rng' is not the JSON")
    edit("weights vs n_neurons", lambda f: declare_huge(f, "trajectory/weights", 1, 7),
         "expected model.n_neurons = 3 rows")
    edit("73 TiB frames", lambda f: declare_huge(f, "trajectory/weights", 2, 2**40 * 73 // 12), "read cap")
    cut = tmp_path / "truncated.h5"
    cut.write_bytes(base["bytes"][: len(base["bytes"]) // 2])
    cases["truncated"], expected["truncated"] = cut, "cannot be opened"
    superblock = tmp_path / "superblock.h5"
    superblock.write_bytes(base["bytes"][:8] + bytes(16) + base["bytes"][24:])
    cases["bad superblock"], expected["bad superblock"] = superblock, "cannot be opened"
    for name, path in cases.items():
        for args in (("show", path), ("replay", path, "--frame", "last", "--out", tmp_path / "x.png"),
                     ("watch", path, "--once"), ("metrics", path)):
            code, out, err = cli(*args)
            assert code == 2 and out == "", (name, args, code, out, err)
            assert err.count("\n") == 1 and err.startswith(f"error: {path}: "), (name, err)
            assert expected[name] in err, (name, err)
        with pytest.raises(MalformedRunFile, match=expected[name].replace("[", r"\[").replace("]", r"\]")):
            check_run_file(path)
    assert len(cases) == 18


def test_resume_precheck_wants_a_checkpoint(base, tmp_path):
    path = tmp_path / "run.h5"
    path.write_bytes(base["bytes"])
    assert check_run_file(path, for_resume=True)["status"] == "completed"
    with h5py.File(path, "r+") as f:
        f["checkpoint/current"].write_direct(np.array(-1))
    check_run_file(path)  # readable ...
    with pytest.raises(MalformedRunFile, match="no checkpoint to resume from"):
        check_run_file(path, for_resume=True)  # ... but not resumable


def test_frames_ahead_of_their_steps_only_while_running(base, tmp_path):
    """A live (or killed) writer appends step/epoch/time at its next flush: a ``running`` file may
    hold frames past the last step — read as the frames with a step — a completed one may not."""
    path = tmp_path / "run.h5"
    path.write_bytes(base["bytes"])
    with h5py.File(path, "r+") as f:
        n = f["trajectory/step"].shape[0]
        for field in ("weights", "theta"):
            f[f"trajectory/{field}"].resize(n + 3, axis=0)
    with pytest.raises(MalformedRunFile, match=f"'trajectory/(weights|theta)' has {n + 3} frames, 'trajectory/step' {n}"):
        check_run_file(path)
    with h5py.File(path, "r+") as f:
        f.attrs["status"] = "running"
    with pk.open(path) as t:
        assert len(t) == n and t["weights"][-1].shape == (3, 16)
    assert cli("show", path)[0] == 0


def test_read_cap_refuses_a_big_read(base, tmp_path, monkeypatch):
    """A read of more frames than the cap allows is refused before it allocates; one frame is not."""
    from plasticity_kit import runfile_check

    path = tmp_path / "run.h5"
    path.write_bytes(base["bytes"])
    monkeypatch.setattr(runfile_check, "READ_CAP", 3 * 16 * 4 * 3)  # three frames of weights
    with pk.open(path) as t:
        assert t["weights"][0:3].shape == (3, 3, 16)
        with pytest.raises(MalformedRunFile, match="4 frames of 'weights' would need"):
            t["weights"][0:4]
        assert sum(1 for _ in t.frames("weights")) == len(t)  # one frame at a time


HUGE_CHILD = textwrap.dedent("""
    import contextlib, io, json, resource, sys
    import h5py
    from plasticity_kit.cli import main
    vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
    limit = vm + (768 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = []
    for path in sys.argv[2:]:
        for args in (["show", path], ["replay", path, "--frame", "last", "--out", sys.argv[1]], ["metrics", path]):
            err = io.StringIO()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                try:
                    code = main(args)
                except BaseException as exc:
                    code = f"{type(exc).__name__}: {exc}"
            out.append([args[0], path, code, err.getvalue()])
    print(json.dumps(out))
""")


def test_huge_shapes_under_an_address_space_limit(base, tmp_path):
    """Every dataset declared 2**40 long on each axis, read under RLIMIT_AS = baseline + 768 MiB."""
    paths = []
    for i, victim in enumerate(base["datasets"]):
        for axis in (0, -1):
            path = tmp_path / f"huge{i}_{axis}.h5"
            path.write_bytes(base["bytes"])
            with h5py.File(path, "r+") as f:
                declare_huge(f, victim, axis, 2**40)
            paths.append(str(path))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", HUGE_CHILD, str(tmp_path / "f.png"), *paths],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout)
    assert len(results) == 3 * len(paths) >= 60
    for command, path, code, err in results:
        assert code in (0, 2), (command, path, code, err)
        assert "Traceback" not in err and "MemoryError" not in err
        if code == 2:
            assert err.count("\n") == 1 and path in err, err


def test_show_into_a_closed_pipe(base, tmp_path):
    """``show | true`` (the reader gone before the first write, as ``head -1`` after its line):
    exit 141 (SIGPIPE's), nothing on stderr — no BrokenPipe traceback."""
    path = tmp_path / "run.h5"
    path.write_bytes(base["bytes"])
    script = f"{sys.executable} -m plasticity_kit show {path} | true; echo ${{PIPESTATUS[0]}}"
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert run.stderr == "" and run.stdout.split() == ["141"], run


def test_count_of_fuzzed_files():
    """Runs last in this file: how many corrupted files the properties above read (at least 300
    when they all ran; Hypothesis stops a property early only when it has tried every case)."""
    print(f"\nfuzzed run files read: {COUNT['files']} by {len(COUNT['tests'])} properties")
    if len(COUNT["tests"]) == 8:
        assert COUNT["files"] >= 300
