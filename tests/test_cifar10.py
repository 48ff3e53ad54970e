"""CIFAR-10 (python batches) and the generic image data sets (``images``, ``white_noise``).

The tests write small CIFAR-format files themselves; the download is exercised from a local
``file://`` archive (and a refused fetch for the offline error), never from the network.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import urllib.error
from pathlib import Path

import h5py
import numpy as np
import pytest

from plasticity_kit.datasets import cifar10
from plasticity_kit.datasets.arrays import Images
from plasticity_kit.datasets.cifar10 import CIFAR10
from plasticity_kit.datasets.noise import WhiteNoise
from plasticity_kit.errors import DataError, SpecError
from plasticity_kit.runner import execute
from plasticity_kit.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(0)


def batch_bytes(n: int, first_label: int = 0) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A pickled python-version batch of n images; also the images (n, 32, 32, 3) and labels."""
    images = RNG.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = (np.arange(n) + first_label) % 10
    data = images.transpose(0, 3, 1, 2).reshape(n, 3072)  # R plane, G plane, B plane
    raw = pickle.dumps({b"batch_label": b"test", b"labels": labels.tolist(), b"data": data,
                        b"filenames": [b"x.png"] * n}, protocol=2)
    return raw, images, labels


def write_cifar(folder: Path, n: int = 4) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i, name in enumerate(cifar10.TRAIN + cifar10.TEST):
        raw, images, labels = batch_bytes(n, first_label=i)
        (folder / name).write_bytes(raw)
        truth[name] = (images, labels)
    return truth


def archive(tmp_path: Path, n: int = 3) -> tuple[Path, str]:
    """A cifar-10-python.tar.gz holding cifar-10-batches-py/…; its path and MD5."""
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name in cifar10.TRAIN + cifar10.TEST:
            raw = batch_bytes(n)[0]
            info = tarfile.TarInfo(f"{cifar10.FOLDER}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path, hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv(cifar10.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


# ----------------------------------------------------------------------------------- reading

def test_reads_python_batches_in_hwc_order(tmp_path, no_env):
    truth = write_cifar(tmp_path)
    data = CIFAR10(path=str(tmp_path), split="train").load(np.random.default_rng(0))
    assert data.X.shape == (20, 3072) and data.image_shape == (32, 32, 3)
    images = np.concatenate([truth[name][0] for name in cifar10.TRAIN])
    np.testing.assert_array_equal(data.X.reshape(20, 32, 32, 3), images / 255.0)
    np.testing.assert_array_equal(data.labels, np.concatenate([truth[name][1] for name in cifar10.TRAIN]))
    assert 0.0 <= data.X.min() and data.X.max() <= 1.0
    digest = hashlib.sha256(b"".join((tmp_path / n).read_bytes() for n in cifar10.TRAIN)).hexdigest()
    assert data.checksum == digest and data.source == str(tmp_path)

    test = CIFAR10(path=str(tmp_path), split="test").load(np.random.default_rng(0))
    np.testing.assert_array_equal(test.X.reshape(4, 32, 32, 3), truth["test_batch"][0] / 255.0)
    assert len(CIFAR10(path=str(tmp_path), split="all").load(np.random.default_rng(0)).X) == 24


def test_classes_and_random_subset(tmp_path, no_env):
    truth = write_cifar(tmp_path)
    labels = np.concatenate([truth[name][1] for name in cifar10.TRAIN])
    data = CIFAR10(path=str(tmp_path), classes=[1, 3]).load(np.random.default_rng(0))
    assert set(data.labels) == {1, 3} and list(data.indices) == list(np.flatnonzero(np.isin(labels, [1, 3])))
    a = CIFAR10(path=str(tmp_path), k=5).load(np.random.default_rng(1))
    b = CIFAR10(path=str(tmp_path), k=5).load(np.random.default_rng(1))
    assert len(a.X) == 5 and np.array_equal(a.indices, b.indices) and (np.diff(a.indices) > 0).all()
    with pytest.raises(SpecError, match=r"data\.params\.k: expected at most 20"):
        CIFAR10(path=str(tmp_path), k=21).load(np.random.default_rng(0))


def test_folder_from_environment_and_batches_subfolder(tmp_path, monkeypatch):
    write_cifar(tmp_path / "somewhere" / cifar10.FOLDER)
    monkeypatch.setenv(cifar10.ENV, str(tmp_path / "somewhere"))
    data = CIFAR10(download=False).load(np.random.default_rng(0))
    assert data.source == str(tmp_path / "somewhere" / cifar10.FOLDER) and len(data.X) == 20


def test_corrupt_or_missing_batch_names_the_file(tmp_path, no_env):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"data_batch_3: not a CIFAR-10 python batch"):
        CIFAR10(path=str(tmp_path)).load(np.random.default_rng(0))
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"data_batch_3: CIFAR-10 batch file not found"):
        CIFAR10(path=str(tmp_path)).load(np.random.default_rng(0))


# --------------------------------------------------------------------------------- download

def test_download_from_archive_checks_md5_and_caches(tmp_path, no_env, monkeypatch):
    path, md5 = archive(tmp_path)
    monkeypatch.setattr(cifar10, "URL", path.as_uri())
    monkeypatch.setattr(cifar10, "MD5", md5)
    data = CIFAR10().load(np.random.default_rng(0))
    cache = tmp_path / "cache" / "plasticity_kit" / "cifar10" / cifar10.FOLDER
    assert data.source == str(cache) and len(data.X) == 15
    assert sorted(p.name for p in cache.iterdir()) == sorted(cifar10.TRAIN + cifar10.TEST)
    assert not list(cache.parent.glob("*.tar.gz"))          # the archive is not kept
    path.unlink()                                            # second load: from the cache
    assert np.array_equal(CIFAR10().load(np.random.default_rng(0)).X, data.X)


def test_download_with_wrong_md5_unpacks_nothing(tmp_path, no_env, monkeypatch):
    path, _ = archive(tmp_path)
    monkeypatch.setattr(cifar10, "URL", path.as_uri())
    monkeypatch.setattr(cifar10, "MD5", "0" * 32)
    with pytest.raises(DataError, match=r"MD5 is [0-9a-f]{32}, expected 0{32}; not unpacked"):
        CIFAR10().load(np.random.default_rng(0))
    assert not list((tmp_path / "cache").rglob("data_batch_*"))


def test_offline_error_names_the_folder_and_the_way_out(tmp_path, no_env, monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(cifar10.urllib.request, "urlopen", refuse)
    target = tmp_path / "cifar"
    with pytest.raises(DataError) as info:
        CIFAR10(path=str(target)).load(np.random.default_rng(0))
    message = str(info.value)
    assert str(target) in message and "network is unreachable" in message
    assert cifar10.ENV in message and "data.params.path" in message
    with pytest.raises(DataError, match=r"CIFAR-10 not found in .*cifar.*data\.params\.download: true"):
        CIFAR10(path=str(target), download=False).load(np.random.default_rng(0))


# ------------------------------------------------------------------------- the CIFAR spec

def test_cifar_spec_runs_on_a_small_cifar_folder(tmp_path, monkeypatch):
    write_cifar(tmp_path / "cifar", n=6)
    monkeypatch.setenv(cifar10.ENV, str(tmp_path / "cifar"))
    spec = load_spec(REPO / "specs" / "cifar-weight-sharing.yaml",
                     [f"output.dir={tmp_path / 'runs'}", "schedule.batch_size=10", "schedule.epochs=1",
                      "model.rule.params.sleep_every=2", "model.rule.params.sleep_steps=30",
                      "model.n_neurons=2", "record.every=1", "metrics=[{name: weight_sharing_snr, every: 1}]"])
    result = execute(spec, progress=False, log=lambda *a: None)
    assert result.status == "completed"
    with h5py.File(result.path) as f:
        assert f["trajectory/weights"].shape == (4, 784, 2, 75)
        assert f["data"].attrs["name"] == "cifar10" and len(f["data/labels"]) == 30
        snr = f["metrics/weight_sharing_snr/snr"][()]
        assert snr[1] > 100 * snr[0]          # step 2 ends with a sleep phase
    assert (tmp_path / "runs" / "cifar-weight-sharing" / "snr.png").is_file()


# ----------------------------------------------------------------------- images, white noise

def test_images_from_npy_npz_and_flat_rows(tmp_path):
    grey = RNG.integers(0, 256, size=(5, 4, 6), dtype=np.uint8)
    np.save(tmp_path / "grey.npy", grey)
    data = Images(path=str(tmp_path / "grey.npy")).load(np.random.default_rng(0))
    assert data.image_shape == (4, 6) and np.array_equal(data.X, grey.reshape(5, -1) / 255.0)

    colour = RNG.random((3, 4, 4, 3))
    np.savez(tmp_path / "c.npz", images=colour, labels=np.array([2, 0, 1]))
    data = Images(path=str(tmp_path / "c.npz")).load(np.random.default_rng(0))
    assert data.image_shape == (4, 4, 3) and list(data.labels) == [2, 0, 1]
    grey_data = Images(path=str(tmp_path / "c.npz"), grayscale=True).load(np.random.default_rng(0))
    np.testing.assert_allclose(grey_data.X, (colour @ [0.299, 0.587, 0.114]).reshape(3, 16))

    np.save(tmp_path / "rows.npy", RNG.random((4, 12)))
    assert Images(path=str(tmp_path / "rows.npy"), image_shape=[2, 2, 3]).load(
        np.random.default_rng(0)).image_shape == (2, 2, 3)
    with pytest.raises(SpecError, match=r"data\.params\.image_shape: expected \[H, W\] or \[H, W, C\] with H·W·C = 12"):
        Images(path=str(tmp_path / "rows.npy"), image_shape=[5, 5]).load(np.random.default_rng(0))


def test_images_value_range(tmp_path):
    np.save(tmp_path / "wide.npy", np.linspace(-2, 6, 40).reshape(2, 4, 5))
    with pytest.raises(DataError, match=r"wide\.npy: float values in \[-2, 6\].*normalize: minmax"):
        Images(path=str(tmp_path / "wide.npy")).load(np.random.default_rng(0))
    X = Images(path=str(tmp_path / "wide.npy"), normalize="minmax").load(np.random.default_rng(0)).X
    assert X.min() == 0.0 and X.max() == 1.0
    np.save(tmp_path / "deep.npy", np.array([[[0, 65535]]], dtype=np.uint16))
    assert list(Images(path=str(tmp_path / "deep.npy")).load(np.random.default_rng(0)).X[0]) == [0.0, 1.0]


def test_image_folder_with_class_subfolders(tmp_path):
    from PIL import Image

    for cls, value in (("cats", 10), ("dogs", 200)):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(np.full((3, 5, 3), value + i, dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    data = Images(path=str(tmp_path)).load(np.random.default_rng(0))
    assert data.image_shape == (3, 5, 3) and list(data.labels) == [0, 0, 1, 1]
    assert list(data.X[:, 0] * 255) == pytest.approx([10, 11, 200, 201])
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "dogs" / "odd.png")
    with pytest.raises(DataError, match=r"odd\.png: image of shape \(4, 4, 3\).*one size"):
        Images(path=str(tmp_path)).load(np.random.default_rng(0))
    with pytest.raises(DataError, match=r"no such folder or file \(data\.params\.path\)"):
        Images(path=str(tmp_path / "missing")).load(np.random.default_rng(0))


def test_white_noise_is_seeded_and_in_range():
    a = WhiteNoise(image_shape=[4, 5, 3], n_samples=7).load(np.random.default_rng(2))
    b = WhiteNoise(image_shape=[4, 5, 3], n_samples=7).load(np.random.default_rng(2))
    assert a.X.shape == (7, 60) and a.image_shape == (4, 5, 3) and np.array_equal(a.X, b.X)
    assert 0 <= a.X.min() and a.X.max() < 1 and a.checksum == b.checksum
    with pytest.raises(SpecError, match=r"white_noise.image_shape: expected \[H, W\] or \[H, W, C\]"):
        WhiteNoise(image_shape=[4])
