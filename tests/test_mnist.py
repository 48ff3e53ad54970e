"""The MNIST data set: IDX reading (gzipped and raw), where files are looked for, download with
checksum verification (served from a local directory, no network), selection, the real test set."""
import gzip
import hashlib
import shutil

import numpy as np
import pytest

from plasticity_kit.datasets import mnist as mnist_module
from plasticity_kit.datasets.mnist import MNIST, read_idx
from plasticity_kit.errors import DataError, SpecError

TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
# sha256 of the genuine files, from the shared data README
SHA256 = {TEST_IMAGES + ".gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
          TEST_LABELS + ".gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file written from the format's definition: 0, 0, type code, ndim, big-endian dims, data."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


def write_split(directory, images, labels, gz=True, stems=(TEST_IMAGES, TEST_LABELS)):
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in zip(stems, (images, labels)):
        data = idx_bytes(array)
        if gz:
            with gzip.open(directory / (stem + ".gz"), "wb") as fh:
                fh.write(data)
        else:
            (directory / stem).write_bytes(data)


def fake_digits(n=50, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    """No $PLASTICITY_KIT_MNIST and an empty private cache."""
    monkeypatch.delenv(mnist_module.ENV_DIR, raising=False)
    monkeypatch.setenv(mnist_module.ENV_CACHE, str(tmp_path / "cache-root"))


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_idx_round_trip(tmp_path, gz):
    images, labels = fake_digits()
    write_split(tmp_path, images, labels, gz=gz)
    suffix = ".gz" if gz else ""
    np.testing.assert_array_equal(read_idx(tmp_path / (TEST_IMAGES + suffix)), images)
    np.testing.assert_array_equal(read_idx(tmp_path / (TEST_LABELS + suffix)), labels)
    data = MNIST(path=str(tmp_path), split="test").load(np.random.default_rng(0))
    np.testing.assert_array_equal(data.X, images.reshape(len(images), -1) / 255.0)
    np.testing.assert_array_equal(data.labels, labels)
    assert data.image_shape == (28, 28) and data.X.min() >= 0 and data.X.max() <= 1


def test_idx_other_types_round_trip(tmp_path):
    values = (np.arange(24).reshape(2, 3, 4) - 7).astype(">i4")
    (tmp_path / "ints").write_bytes(idx_bytes(values))
    np.testing.assert_array_equal(read_idx(tmp_path / "ints"), values)


def test_idx_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad-magic"
    bad.write_bytes(b"\x08\x03\x00\x00" + b"\x00" * 20)
    with pytest.raises(DataError, match="bad-magic: not an IDX file"):
        read_idx(bad)
    short = tmp_path / "truncated"
    short.write_bytes(idx_bytes(np.zeros((3, 28, 28), np.uint8))[:-5])
    with pytest.raises(DataError, match="truncated: IDX data holds"):
        read_idx(short)


def test_labels_must_match_images(tmp_path):
    images, labels = fake_digits(20)
    write_split(tmp_path, images, labels[:15])
    with pytest.raises(DataError, match="expected 20 labels"):
        MNIST(path=str(tmp_path), split="test").load(np.random.default_rng(0))


def test_missing_directory_is_named(tmp_path, no_env):
    where = tmp_path / "nowhere"
    with pytest.raises(DataError, match=f"not found in {where} \\(from data.params.path\\)"):
        MNIST(path=str(where), split="test").load(np.random.default_rng(0))


def test_only_test_set_hint(tmp_path, no_env):
    write_split(tmp_path, *fake_digits())
    with pytest.raises(DataError, match="only the test set is there: use split: test"):
        MNIST(path=str(tmp_path), split="train").load(np.random.default_rng(0))


def test_environment_variable(tmp_path, monkeypatch):
    images, labels = fake_digits(30, seed=4)
    write_split(tmp_path / "env", images, labels)
    monkeypatch.setenv(mnist_module.ENV_DIR, str(tmp_path / "env"))
    data = MNIST(split="test").load(np.random.default_rng(0))
    np.testing.assert_array_equal(data.labels, labels)


def test_offline_error_names_the_cache_directory(tmp_path, no_env):
    cache = tmp_path / "cache"
    mirror = (tmp_path / "empty-mirror").as_uri() + "/"
    with pytest.raises(DataError) as info:
        MNIST(split="test", cache_dir=str(cache), mirrors=[mirror]).load(np.random.default_rng(0))
    message = str(info.value)
    assert f"not found in {cache} (the download cache)" in message
    assert "empty-mirror/t10k-images-idx3-ubyte.gz" in message  # the URL tried and why it failed
    assert "PLASTICITY_KIT_MNIST" in message and "data.params.path" in message
    with pytest.raises(DataError, match="download is off"):
        MNIST(split="test", cache_dir=str(cache), download=False).load(np.random.default_rng(0))


def test_download_from_a_mirror_verifies_and_caches(tmp_path, no_env, mnist_dir):
    """The genuine files served from a local directory (a file:// mirror): the MD5 check passes,
    the files land in the cache, and the second load needs no mirror at all."""
    served = tmp_path / "served"
    served.mkdir()
    for stem in (TEST_IMAGES, TEST_LABELS):
        shutil.copy(mnist_dir / (stem + ".gz"), served / (stem + ".gz"))
    dead = (tmp_path / "dead").as_uri()
    cache = tmp_path / "cache"
    data = MNIST(split="test", range=[0, 100], cache_dir=str(cache),
                 mirrors=[dead, served.as_uri()]).load(np.random.default_rng(0))
    assert data.X.shape == (100, 784)
    assert sorted(p.name for p in cache.iterdir()) == [TEST_IMAGES + ".gz", TEST_LABELS + ".gz"]
    shutil.rmtree(served)
    again = MNIST(split="test", range=[0, 100], cache_dir=str(cache), mirrors=[dead]).load(np.random.default_rng(0))
    np.testing.assert_array_equal(again.X, data.X)


def test_checksum_mismatch_is_refused(tmp_path, no_env):
    served = tmp_path / "served"
    write_split(served, *fake_digits())  # valid IDX files, but not the original distribution
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        MNIST(split="test", cache_dir=str(cache), mirrors=[served.as_uri()]).load(np.random.default_rng(0))
    got = hashlib.md5((served / (TEST_IMAGES + ".gz")).read_bytes()).hexdigest()
    assert f"checksum mismatch (MD5 {got}, expected {mnist_module.FILES[TEST_IMAGES]})" in str(info.value)
    assert not any(cache.iterdir())  # nothing unverified is kept


def test_selection_range_classes_per_class(tmp_path):
    images, labels = fake_digits(200)
    write_split(tmp_path, images, labels)
    base = dict(path=str(tmp_path), split="test")
    ranged = MNIST(**base, range=[20, 60]).load(np.random.default_rng(0))
    np.testing.assert_array_equal(ranged.indices, np.arange(20, 60))
    only = MNIST(**base, classes=[3, 7]).load(np.random.default_rng(0))
    assert set(only.labels) == {3, 7} and len(only.labels) == 40
    np.testing.assert_array_equal(only.X, images[only.indices].reshape(-1, 784) / 255.0)
    a = MNIST(**base, per_class=6).load(np.random.default_rng(5))
    b = MNIST(**base, per_class=6).load(np.random.default_rng(5))
    c = MNIST(**base, per_class=6).load(np.random.default_rng(6))
    assert np.bincount(a.labels).tolist() == [6] * 10
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)
    np.testing.assert_array_equal(a.labels, labels[a.indices])
    with pytest.raises(SpecError, match="data.params.per_class: expected at most 20"):
        MNIST(**base, per_class=21).load(np.random.default_rng(0))
    with pytest.raises(SpecError, match="data.params.range: expected stop <= 200"):
        MNIST(**base, range=[0, 201]).load(np.random.default_rng(0))


def test_split_all_is_train_then_test(tmp_path):
    train = fake_digits(30, seed=1)
    test = fake_digits(20, seed=2)
    write_split(tmp_path, *train, stems=("train-images-idx3-ubyte", "train-labels-idx1-ubyte"))
    write_split(tmp_path, *test)
    data = MNIST(path=str(tmp_path), split="all").load(np.random.default_rng(0))
    np.testing.assert_array_equal(data.X, np.concatenate([train[0], test[0]]).reshape(50, -1) / 255.0)


def test_bad_params_are_spec_errors():
    with pytest.raises(SpecError, match="data.params.range: expected \\[start, stop\\] with start < stop"):
        MNIST(_key="data.params", range=[5, 5])
    with pytest.raises(SpecError, match="data.params.classes\\[1\\]: expected an integer in \\[0, 9\\], got 12"):
        MNIST(_key="data.params", classes=[1, 12])
    with pytest.raises(SpecError, match="data.params.mirrors: expected a non-empty list of base URLs"):
        MNIST(_key="data.params", mirrors="https://example.org/")


def test_genuine_test_set(mnist_dir):
    for name, digest in SHA256.items():
        assert hashlib.sha256((mnist_dir / name).read_bytes()).hexdigest() == digest
    data = MNIST(path=str(mnist_dir), split="test").load(np.random.default_rng(0))
    assert data.X.shape == (10000, 784) and data.labels.shape == (10000,)
    assert np.bincount(data.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert data.checksum == SHA256[TEST_IMAGES + ".gz"]
    slides = MNIST(path=str(mnist_dir), split="test", per_class=60).load(np.random.default_rng(0))
    assert slides.X.shape == (600, 784) and np.bincount(slides.labels).tolist() == [60] * 10
