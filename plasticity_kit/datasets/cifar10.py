"""CIFAR-10 (Krizhevsky 2009): 60,000 colour images 32×32 in 10 classes, the "python version".

The directory holds ``data_batch_1`` … ``data_batch_5`` (training, 10,000 images each) and
``test_batch``: pickled dicts with ``b"data"`` (10000 × 3072 uint8, each row the red, green and
blue 32×32 planes in row-major order) and ``b"labels"``.  It is looked up, in order, in
``data.params.path``, ``$PLASTICITY_KIT_CIFAR10``, or the cache ``~/.cache/plasticity_kit/cifar10``
(``$XDG_CACHE_HOME`` respected); a ``cifar-10-batches-py`` folder inside it is found too.  When no
copy is there and ``download`` is on, the official archive is fetched into that folder and its
MD5 (the checksum the distributor publishes) verified before it is unpacked; offline, the error
names the folder and how to provide the files.

Rows are images flattened in (y, x, channel) order with values in [0, 1], ``image_shape``
(32, 32, 3) — the layout of every image data set here.  The recorded checksum is the sha256 of
the batch files read, in order.

A batch is a pickle, and unpickling can run any code the file names.  Batches are therefore read
with :class:`BatchUnpickler`, which admits only what the python-version format is made of —
dicts, lists, strings, bytes, numbers and numpy arrays rebuilt by numpy's own reconstruct
functions — and refuses any other global (``os.system``, ``builtins.exec``, …) before it is
called, naming the file.
"""
from __future__ import annotations

import codecs
import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from ..errors import DataError, SpecError
from ..options import Option, Schema
from .base import Data, Dataset, md5_file

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ENV = "PLASTICITY_KIT_CIFAR10"
FOLDER = "cifar-10-batches-py"
TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST = ("test_batch",)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SIDE = 32
KEY = "data.params"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "plasticity_kit" / "cifar10"


def data_dir(path: str | None = None) -> Path:
    """The directory the spec, the environment or the cache names (it may not exist yet)."""
    if path:
        return Path(path)
    env = os.environ.get(ENV)
    return Path(env) if env else cache_dir()


def batch_folder(root: Path) -> Path | None:
    """``root`` or ``root/cifar-10-batches-py``, whichever holds ``data_batch_1``; else None."""
    for candidate in (root, root / FOLDER):
        if (candidate / TRAIN[0]).is_file() or (candidate / TEST[0]).is_file():
            return candidate
    return None


def download(root: Path, url: str | None = None, md5: str | None = None) -> Path:
    """Fetch the archive at ``url`` (default :data:`URL`) into ``root``, check its MD5 (default
    :data:`MD5`), unpack; returns the batch folder.

    Raises DataError naming ``root`` when the fetch fails (no network) or the checksum differs.
    """
    url, md5 = url or URL, md5 or MD5
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".tar.gz", dir=root)
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DataError(
                f"CIFAR-10 is not in {root} and downloading {url} failed ({reason}). Put the python-version "
                f"batches (data_batch_1 … data_batch_5, test_batch) in that folder, or point {ENV} or "
                f"{KEY}.path at a folder holding them") from None
        actual = md5_file(tmp)
        if actual != md5:
            raise DataError(f"{url}: the download's MD5 is {actual}, expected {md5}; not unpacked into {root}")
        with tarfile.open(tmp, "r:gz") as archive:
            members = [m for m in archive.getmembers()
                       if m.isfile() and Path(m.name).parent.name == FOLDER and not m.name.startswith("/")
                       and ".." not in Path(m.name).parts]
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(root, members=members, **safe)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    folder = batch_folder(root)
    if folder is None:
        raise DataError(f"{url}: the archive holds no {FOLDER}/{TRAIN[0]}; nothing usable in {root}")
    return folder


def _latin1(text, encoding="latin1"):
    """``_codecs.encode`` as Python 3's pickles of bytes use it, limited to latin-1 (no codec lookup)."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _allowed_globals() -> dict:
    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 moved numpy.core to numpy._core
    reconstruct = core.multiarray._reconstruct
    frombuffer = getattr(core.numeric, "_frombuffer", None)
    allowed = {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,  # the real batches (numpy 1, Python 2)
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,  # re-pickled under numpy 2
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1,  # bytes pickled by Python 3 at protocol 2
    }
    if frombuffer is not None:  # protocol 5 pickles of arrays
        allowed[("numpy.core.numeric", "_frombuffer")] = frombuffer
        allowed[("numpy._core.numeric", "_frombuffer")] = frombuffer
    return allowed


class BatchUnpickler(pickle.Unpickler):
    """An unpickler that admits only the globals a CIFAR python batch is made of.

    The genuine batches (pickled by Python 2's cPickle at protocol 2) reference exactly
    ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype``; copies
    re-pickled by Python 3 / numpy 2 may also use ``numpy._core…`` names, ``_codecs.encode`` (for
    bytes, latin-1 only) and ``numpy._core.numeric._frombuffer`` (protocol 5).  Anything else
    raises :class:`pickle.UnpicklingError` before it is looked up.
    """

    ALLOWED = _allowed_globals()

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: a CIFAR-10 batch holds only "
                                         "dicts, lists, bytes and numpy arrays") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused persistent id: a CIFAR-10 batch has none")


def load_batch_dict(path: Path) -> dict:
    """The dict pickled in a python-version batch, read with :class:`BatchUnpickler`.

    DataError naming the file for a missing, truncated or foreign file, and for one that names
    anything but the format's globals (whose code is then never run).
    """
    try:
        with open(path, "rb") as fh:
            batch = BatchUnpickler(fh, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"{path}: CIFAR-10 batch file not found") from None
    except pickle.UnpicklingError as exc:
        if str(exc).startswith("refused"):
            raise DataError(f"{path}: not loaded, not a CIFAR-10 python batch ({exc})") from None
        raise DataError(f"{path}: not a CIFAR-10 python batch ({exc})") from None
    except Exception as exc:  # a truncated or foreign file: say which
        raise DataError(f"{path}: not a CIFAR-10 python batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: not a CIFAR-10 python batch (a pickled {type(batch).__name__}, expected a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 32, 32, 3), labels int64 (n,)) from one python-version batch file."""
    batch = load_batch_dict(path)
    missing = [k for k in ("data", "labels") if k not in batch]
    if missing:
        raise DataError(f"{path}: not a CIFAR-10 python batch (no {' or '.join(missing)} entry)")
    data, labels = batch["data"], batch["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        what = f"a {data.dtype} array" if isinstance(data, np.ndarray) else f"a {type(data).__name__}"
        raise DataError(f"{path}: expected data as a uint8 array, got {what}")
    try:
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iu":
            raise TypeError(labels.dtype)
        labels = labels.astype(np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: expected labels as a list of integers 0–9") from None
    if data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE or labels.ndim != 1 or len(labels) != len(data):
        raise DataError(f"{path}: expected data of shape (n, 3072) and n labels, got {data.shape} and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise DataError(f"{path}: labels outside 0–9")
    return data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1), labels


class CIFAR10(Dataset):
    """CIFAR-10 python batches (Krizhevsky 2009), 32×32×3; from path, $PLASTICITY_KIT_CIFAR10 or a download cache.

    split: train (50,000) | test (10,000) | all; ``classes`` keeps those labels (0–9: airplane,
    automobile, bird, cat, deer, dog, frog, horse, ship, truck); ``k`` a random subset of that.
    """

    name = "cifar10"
    options = Schema(
        Option("path", "path", None, f"folder with the python batches (default: ${ENV}, else the download cache)",
               nullable=True),
        Option("split", "choice", "train", "which images", choices=("train", "test", "all")),
        Option("classes", "integers", None, "keep only these labels (0–9)", low=0, high=9, nullable=True),
        Option("k", "integer", None, "number of images kept (random subset)", low=1, nullable=True),
        Option("download", "bool", True, "fetch the official archive into the folder when it is missing"),
    )

    def files(self) -> tuple[str, ...]:
        return {"train": TRAIN, "test": TEST, "all": TRAIN + TEST}[self.split]

    def folder(self) -> Path:
        root = data_dir(self.path)
        folder = batch_folder(root)
        if folder is not None:
            return folder
        if self.download:
            return download(root)
        raise DataError(f"CIFAR-10 not found in {root}: expected the python-version batches "
                        f"(data_batch_1 … data_batch_5, test_batch) there or in {root / FOLDER}; "
                        f"set {KEY}.download: true to fetch them")

    def load(self, rng):
        folder = self.folder()
        images, labels, digest = [], [], hashlib.sha256()
        for name in self.files():
            path = folder / name
            if not path.is_file():
                raise DataError(f"{path}: CIFAR-10 batch file not found (split '{self.split}' needs {', '.join(self.files())})")
            x, y = read_batch(path)
            images.append(x)
            labels.append(y)
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        images, labels = np.concatenate(images), np.concatenate(labels)
        pool = np.arange(len(images))
        if self.classes:
            pool = pool[np.isin(labels, self.classes)]
            if len(pool) == 0:
                raise DataError(f"{folder}: no image of classes {self.classes} in split '{self.split}'")
        if self.k is not None:
            if self.k > len(pool):
                raise SpecError(f"{KEY}.k", f"expected at most {len(pool)} (images available), got {self.k}")
            pool = np.sort(rng.choice(pool, size=self.k, replace=False))
        X = images[pool].reshape(len(pool), -1).astype(np.float64) / 255.0
        return Data(X=X, name=self.name, indices=pool, image_shape=(SIDE, SIDE, 3), labels=labels[pool],
                    source=str(folder), checksum=digest.hexdigest(),
                    info={"files": list(self.files()), "classes": list(CLASSES)})
