"""The Fashion-MNIST data set plugin: where files are looked for (path, environment variable, the
Debian package's directory, the download cache), download with MD5 verification through a
monkeypatched urlopen (no network), MNIST's selectors, and the installed genuine files."""
import gzip
import hashlib
import io
import urllib.request

import numpy as np
import pytest

from plasticity_kit.datasets import fashion_mnist as fm
from plasticity_kit.datasets.fashion_mnist import FashionMNIST
from plasticity_kit.errors import DataError, SpecError
from plasticity_kit.plugins import registry

TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


def idx_gz(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return gzip.compress(header + array.tobytes(), mtime=0)


def fake_split(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def write(directory, images, labels, stems=(TEST_IMAGES, TEST_LABELS)):
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in zip(stems, (images, labels)):
        (directory / (stem + ".gz")).write_bytes(idx_gz(array))


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No $PLASTICITY_KIT_FASHION_MNIST, no system directory, a private empty cache."""
    monkeypatch.delenv(fm.ENV_DIR, raising=False)
    monkeypatch.setenv(fm.ENV_CACHE, str(tmp_path / "cache-root"))
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "no-system-dir")


def test_registered_under_its_name():
    assert registry().datasets.get("fashion_mnist", "data.name") is FashionMNIST


def test_lookup_order_path_env_system(tmp_path, monkeypatch, isolated):
    for i, where in enumerate(("path", "env", "system")):
        write(tmp_path / where, *fake_split(20, seed=i))
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setenv(fm.ENV_DIR, str(tmp_path / "env"))
    load = lambda **kw: FashionMNIST(split="test", **kw).load(np.random.default_rng(0))  # noqa: E731
    np.testing.assert_array_equal(load(path=str(tmp_path / "path")).X, fake_split(20, 0)[0].reshape(20, -1) / 255)
    np.testing.assert_array_equal(load().X, fake_split(20, 1)[0].reshape(20, -1) / 255)
    monkeypatch.delenv(fm.ENV_DIR)
    assert FashionMNIST().directory() == (tmp_path / "system", "the dataset-fashion-mnist package")
    np.testing.assert_array_equal(load().X, fake_split(20, 2)[0].reshape(20, -1) / 255)


def serve(monkeypatch, files: dict, seen: list):
    """urllib.request.urlopen answering from ``files`` (URL → bytes); other URLs fail like a dead host."""
    def urlopen(url, timeout=None):
        seen.append(url)
        if url not in files:
            raise urllib.error.URLError("connection refused")
        return io.BytesIO(files[url])
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


def test_download_verifies_md5_and_caches(tmp_path, monkeypatch, isolated):
    images, labels = fake_split(30, seed=7)
    blobs = {TEST_IMAGES: idx_gz(images), TEST_LABELS: idx_gz(labels)}
    for stem, blob in blobs.items():  # pretend these are the published files
        monkeypatch.setitem(fm.FILES, stem, hashlib.md5(blob).hexdigest())
    seen = []
    serve(monkeypatch, {f"http://mirror.test/{stem}.gz": blob for stem, blob in blobs.items()}, seen)
    cache = tmp_path / "cache"
    data = FashionMNIST(split="test", cache_dir=str(cache), mirrors=["http://dead.test/", "http://mirror.test"]
                        ).load(np.random.default_rng(0))
    np.testing.assert_array_equal(data.X, images.reshape(30, -1) / 255.0)
    np.testing.assert_array_equal(data.labels, labels)
    assert seen[:2] == ["http://dead.test/t10k-images-idx3-ubyte.gz", "http://mirror.test/t10k-images-idx3-ubyte.gz"]
    assert sorted(p.name for p in cache.iterdir()) == [TEST_IMAGES + ".gz", TEST_LABELS + ".gz"]
    seen.clear()
    FashionMNIST(split="test", cache_dir=str(cache)).load(np.random.default_rng(0))
    assert seen == []  # served from the cache


def test_checksum_mismatch_is_refused(tmp_path, monkeypatch, isolated):
    blob = idx_gz(fake_split()[0])
    serve(monkeypatch, {f"http://mirror.test/{TEST_IMAGES}.gz": blob}, [])
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        FashionMNIST(split="test", cache_dir=str(cache), mirrors=["http://mirror.test/"]).load(np.random.default_rng(0))
    message = str(info.value)
    assert f"checksum mismatch (MD5 {hashlib.md5(blob).hexdigest()}, expected {fm.FILES[TEST_IMAGES]})" in message
    assert "PLASTICITY_KIT_FASHION_MNIST" in message and "dataset-fashion-mnist" in message
    assert not any(cache.iterdir())
    with pytest.raises(DataError, match="download is off"):
        FashionMNIST(split="test", cache_dir=str(cache), download=False).load(np.random.default_rng(0))


def test_missing_path_is_named(tmp_path, isolated):
    with pytest.raises(DataError, match=f"Fashion-MNIST file {TEST_IMAGES}\\(.gz\\) not found in .*nowhere "
                                        "\\(from data.params.path\\)"):
        FashionMNIST(path=str(tmp_path / "nowhere"), split="test").load(np.random.default_rng(0))


def test_selectors_as_mnist(tmp_path):
    images, labels = fake_split(100)
    write(tmp_path, images, labels)
    base = dict(path=str(tmp_path), split="test")
    assert FashionMNIST(**base, range=[10, 30]).load(np.random.default_rng(0)).indices.tolist() == list(range(10, 30))
    only = FashionMNIST(**base, classes=[0, 9]).load(np.random.default_rng(0))
    assert set(only.labels) == {0, 9} and len(only.labels) == 20
    a = FashionMNIST(**base, per_class=3).load(np.random.default_rng(1))
    assert np.bincount(a.labels).tolist() == [3] * 10
    with pytest.raises(SpecError, match="data.params.classes\\[0\\]: expected an integer in \\[0, 9\\], got 10"):
        FashionMNIST(_key="data.params", classes=[10])


@pytest.mark.skipif(fm.find_file(fm.SYSTEM_DIR, TEST_IMAGES) is None, reason="dataset-fashion-mnist not installed")
def test_installed_test_set():
    data = FashionMNIST(path=str(fm.SYSTEM_DIR), split="test").load(np.random.default_rng(0))
    assert data.X.shape == (10000, 784) and data.image_shape == (28, 28)
    assert np.bincount(data.labels).tolist() == [1000] * 10
    assert 0.25 < data.X.mean() < 0.32  # Fashion-MNIST's mean grey level is 0.286 (MNIST's 0.13)
