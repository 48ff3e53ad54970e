"""No data file can run code or make the loader allocate what its header merely declares.

CIFAR-10 batches are pickles: a crafted one is refused before its payload runs (each payload is
first shown to be live: plain ``pickle.loads`` does create the marker file).  ``.npy`` / ``.npz``
/ IDX headers declaring huge shapes are refused before allocation; object arrays (pickles inside
``.npy``) are never unpickled.  A source scan keeps unsafe loaders out of the package.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import os
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from cifar_format import REAL_GLOBALS, _Payload, crafted_batches, globals_of, py2_batch, write_batches
from helpers import tiny_spec
from plasticity_kit.cli import main
from plasticity_kit.datasets import cifar10
from plasticity_kit.datasets.base import NpzArrays, read_npy
from plasticity_kit.datasets.cifar10 import CIFAR10, read_batch
from plasticity_kit.datasets.mnist import read_idx
from plasticity_kit.errors import DataError

PACKAGE = Path(__file__).resolve().parents[1] / "plasticity_kit"


def cli(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in args])
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv(cifar10.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_real_format_batch_has_only_the_three_numpy_globals_and_reads(tmp_path):
    truth = write_batches(tmp_path, ["data_batch_1"], n=7)
    raw = (tmp_path / "data_batch_1").read_bytes()
    assert raw[:2] == b"\x80\x02" and globals_of(raw) == REAL_GLOBALS
    images, labels = read_batch(tmp_path / "data_batch_1")
    np.testing.assert_array_equal(images, truth["data_batch_1"][0])
    np.testing.assert_array_equal(labels, truth["data_batch_1"][1])


@pytest.mark.parametrize("trick", sorted(crafted_batches("m")))
def test_crafted_batch_is_refused_without_running_its_payload(tmp_path, no_env, trick):
    marker = tmp_path / "pwned"
    raw = crafted_batches(str(marker))[trick]
    pickle.loads(raw)  # the payload is live: plain unpickling runs it
    assert marker.exists()
    marker.unlink()

    folder = tmp_path / "cifar"
    write_batches(folder, cifar10.TRAIN[1:] + cifar10.TEST, n=2)
    (folder / "data_batch_1").write_bytes(raw)
    with pytest.raises(DataError, match=rf"^{re.escape(str(folder / 'data_batch_1'))}: not loaded, .*refused global"):
        CIFAR10(path=str(folder)).load(np.random.default_rng(0))
    assert not marker.exists()


def test_crafted_batch_through_the_cli_is_one_line_and_no_payload(tmp_path, no_env):
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar"
    write_batches(folder, cifar10.TRAIN + cifar10.TEST, n=2)
    (folder / "data_batch_3").write_bytes(crafted_batches(str(marker))["os.system as the batch"])
    spec = tiny_spec(tmp_path, data={"name": "cifar10", "params": {"path": str(folder)}})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    for command in ("validate", "run"):
        status, _, err = cli(command, path)
        assert status == 2, err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"error: {folder / 'data_batch_3'}: not loaded")
        assert not marker.exists()


def test_batch_with_wrong_content_types(tmp_path):
    bad = tmp_path / "data_batch_1"
    bad.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.float64), b"labels": [0, 1]}, protocol=2))
    with pytest.raises(DataError, match="expected data as a uint8 array, got a float64 array"):
        read_batch(bad)
    bad.write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(DataError, match="a pickled list, expected a dict"):
        read_batch(bad)
    bad.write_bytes(py2_batch(np.zeros((2, 3072), np.uint8), [0, 1])[:100])
    with pytest.raises(DataError, match=f"{bad}: not a CIFAR-10 python batch"):
        read_batch(bad)


def _npy_header(path: Path, shape, descr="<f8", payload=b"\0" * 64) -> None:
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": descr, "fortran_order": False, "shape": shape})
        fh.write(payload)


def test_npy_header_declaring_a_huge_shape_is_refused_before_allocating(tmp_path):
    path = tmp_path / "huge.npy"
    _npy_header(path, (10**6, 10**6))
    with pytest.raises(DataError, match=r"huge.npy: the header declares a float64 array of shape \(1000000, 1000000\) "
                                        r"\(7.3 TiB\), but the file holds 64 B of data"):
        read_npy(path)
    _npy_header(path, (3, 4), payload=np.arange(12.0).tobytes())
    np.testing.assert_array_equal(read_npy(path), np.arange(12.0).reshape(3, 4))


def test_object_arrays_are_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "objects.npy"
    np.save(path, np.array([_Payload(os.system, f"touch {marker}")], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="holds Python objects .*never pickles"):
        read_npy(path)
    npz = tmp_path / "objects.npz"
    with zipfile.ZipFile(npz, "w") as zf:
        zf.write(path, "images.npy")
    with NpzArrays(npz) as arrays, pytest.raises(DataError, match=r"objects.npz\[images\]: holds Python objects"):
        arrays["images"]
    assert not marker.exists()


def test_npz_member_declaring_a_huge_shape_is_refused(tmp_path):
    member = tmp_path / "m.npy"
    _npy_header(member, (10**5, 10**5, 3), descr="|u1")
    npz = tmp_path / "images.npz"
    with zipfile.ZipFile(npz, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(member, "images.npy")
    spec = tiny_spec(tmp_path, data={"name": "images", "params": {"path": str(npz)}})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    status, _, err = cli("validate", path)
    assert status == 2 and err.count("\n") == 1
    assert "images.npz[images]: the header declares a uint8 array of shape (100000, 100000, 3)" in err


def test_custom_interaction_npy_with_a_huge_header_names_the_key(tmp_path):
    matrix = tmp_path / "L.npy"
    _npy_header(matrix, (2**31, 2**31))
    spec = tiny_spec(tmp_path)
    spec["model"]["interaction"] = {"name": "custom", "params": {"path": str(matrix)}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    status, _, err = cli("validate", path)
    assert status == 2
    assert err.startswith(f"error: {path}: model.interaction.params.path: {matrix}: the header declares")


def test_idx_header_declaring_a_huge_shape_is_refused(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(bytes([0, 0, 0x08, 3]) + (10**6).to_bytes(4, "big") + (10**5).to_bytes(4, "big") * 2 + b"\0" * 16)
    with pytest.raises(DataError, match=r"the IDX header declares \(1000000, 100000, 100000\) .*more than the"):
        read_idx(path)


def _code(path: Path) -> str:
    """The source with comments removed (calls are matched in code)."""
    return "\n".join(line.split("#")[0] for line in path.read_text().splitlines())


UNSAFE = [
    (r"\bpickle\.loads?\(", "pickle.load/loads: use a restricted Unpickler"),
    (r"\bUnpickler\(", "an Unpickler other than cifar10.BatchUnpickler"),
    (r"allow_pickle\s*=\s*True", "np.load(allow_pickle=True)"),
    (r"\byaml\.(load|unsafe_load|full_load|load_all)\(", "a YAML loader that builds Python objects"),
    (r"Loader\s*=\s*yaml\.(Loader|UnsafeLoader|FullLoader)", "a YAML loader that builds Python objects"),
    (r"\b(marshal|shelve|dill|cloudpickle)\b\.", "another object deserialiser"),
]


def test_no_unsafe_deserialisation_in_the_package():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        code = _code(path)
        for pattern, what in UNSAFE:
            for match in re.finditer(pattern, code):
                line = code[:match.start()].count("\n") + 1
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {what}")
        for match in re.finditer(r"torch\.load\(([^)]*)\)", code):
            if "weights_only=True" not in match.group(1):
                problems.append(f"{path.relative_to(PACKAGE.parent)}: torch.load without weights_only=True")
    assert not problems, "\n".join(problems)


def test_metrics_on_a_run_whose_data_folder_was_swapped_runs_no_code(tmp_path, no_env):
    """``plasticity-kit metrics RUN.h5`` reloads the data the recorded spec names: a crafted batch
    put there afterwards is refused like any other."""
    folder = tmp_path / "cifar"
    write_batches(folder, cifar10.TRAIN + cifar10.TEST, n=4)
    spec = tiny_spec(tmp_path, data={"name": "cifar10", "params": {"path": str(folder), "split": "test"}},
                     **{"schedule.epochs": 1, "schedule.batch_size": 2, "model.interaction": "none"})
    spec["metrics"] = [{"name": "nearest"}]
    spec["exporters"] = []
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    status, out, err = cli("run", path, "-q")
    assert status == 0, err
    run_file = out.strip().splitlines()[-1]
    marker = tmp_path / "pwned"
    (folder / "test_batch").write_bytes(crafted_batches(str(marker))["builtins.exec inside the data"])
    status, _, err = cli("metrics", run_file, "--metric", "nearest")
    assert status == 2 and "Traceback" not in err, err
    assert f"{folder / 'test_batch'}: not loaded" in err
    assert not marker.exists()


def test_image_folder_too_big_for_memory_is_refused_before_reading(tmp_path, monkeypatch):
    from PIL import Image

    from plasticity_kit import memory
    from plasticity_kit.datasets.arrays import read_folder

    for i in range(3):
        Image.fromarray(np.full((16, 16), i * 50, np.uint8)).save(tmp_path / f"{i}.png")
    assert read_folder(tmp_path)[0].shape == (3, 16, 16)
    monkeypatch.setattr(memory, "available", lambda *a, **k: 4096)
    with pytest.raises(DataError, match=r"3 images of shape \(16, 16\) need about 13.5 KiB, more than the 4.0 KiB"):
        read_folder(tmp_path)
