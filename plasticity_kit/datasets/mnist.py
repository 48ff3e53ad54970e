"""MNIST handwritten digits (LeCun, Cortes & Burges 1998): 28×28 grey images, 60,000 for training
and 10,000 for testing, read from the original IDX files (gzipped or not).

Where the files are looked for, in order:

1. ``path`` in the spec (``data.params.path``): a directory holding the IDX files;
2. the environment variable ``PLASTICITY_KIT_MNIST``: such a directory;
3. a cache directory (``cache_dir``, else ``$PLASTICITY_KIT_CACHE/mnist``, else
   ``~/.cache/plasticity-kit/mnist``), where missing files are downloaded from ``mirrors`` (tried
   in order) and kept only when their MD5 matches the original distribution.

Selection, in order: ``split`` (train, test, or all = train then test), ``range`` (rows
[start, stop) of that split), ``classes`` (digits kept), ``per_class`` (that many images of each
kept digit, drawn at random with the run's data seed; e.g. 60 per digit = the 600 images of
the Krotov–Hopfield slides).  Pixels are scaled to [0, 1]; labels are kept.
"""
from __future__ import annotations

import gzip
import math
import os
import shutil
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError, SpecError
from ..options import Option, Schema
from .base import Data, Dataset, md5_file, sha256_file

ENV_DIR = "PLASTICITY_KIT_MNIST"
ENV_CACHE = "PLASTICITY_KIT_CACHE"
KEY = "data.params"
SIDE = 28

#: file stem → MD5 of the gzipped original (the checksums torchvision and others verify)
FILES = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """The array in an IDX file (gzipped or raw, told apart by the gzip magic bytes).

    The header's shape is checked against the available memory before the data is read, so a
    crafted header (or a gzip bomb) is refused instead of allocated; DataError names the file.
    """
    from ..memory import available, human

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            gzipped = fh.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as fh:
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES:
                raise DataError(f"{path}: not an IDX file (bad magic number {head.hex() or 'empty'})")
            ndim = head[3]
            dims = fh.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataError(f"{path}: IDX header truncated")
            shape = tuple(int.from_bytes(dims[4 * i:4 * i + 4], "big") for i in range(ndim))
            dtype = np.dtype(_IDX_TYPES[head[2]])
            expected = math.prod(shape) * dtype.itemsize
            free = available()
            if free is not None and expected > free:
                raise DataError(f"{path}: the IDX header declares {shape} ({human(expected)}), more than the "
                                f"{human(free)} of memory available")
            raw = fh.read(expected + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) != expected:
        held = f"{len(raw)}" if len(raw) <= expected else "more than"
        raise DataError(f"{path}: IDX data holds {held} bytes, the header {shape} needs {expected}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def find_file(directory: Path, stem: str) -> Path | None:
    """``stem`` or ``stem.gz`` in ``directory`` (the gzipped original preferred)."""
    for name in (stem + ".gz", stem):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def default_cache_dir() -> Path:
    base = os.environ.get(ENV_CACHE)
    return (Path(base) if base else Path.home() / ".cache" / "plasticity-kit") / "mnist"


def download(stem: str, directory: Path, mirrors, checksums=None) -> Path:
    """Fetch ``stem.gz`` into ``directory`` from the first mirror that serves it with the right MD5
    (``checksums``: stem → MD5, default MNIST's :data:`FILES`).

    Raises DataError listing every mirror tried and why it failed.
    """
    checksums = FILES if checksums is None else checksums
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / (stem + ".gz")
    problems = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + stem + ".gz"
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=stem, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
                shutil.copyfileobj(response, out)
            got = md5_file(tmp)
            if got != checksums[stem]:
                problems.append(f"{url}: checksum mismatch (MD5 {got}, expected {checksums[stem]})")
                continue
            os.replace(tmp, target)
            return target
        except (OSError, ValueError) as exc:  # URLError is an OSError; ValueError: malformed URL
            problems.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    raise DataError(f"could not download {stem}.gz into {directory}: " + "; ".join(problems))


def _check_mirrors(params):
    mirrors = params["mirrors"]
    if not isinstance(mirrors, list) or not mirrors or not all(isinstance(m, str) and m for m in mirrors):
        return "mirrors", f"expected a non-empty list of base URLs, got {mirrors!r}"
    return None


def _check_range(params):
    r = params["range"]
    if r is not None and (len(r) != 2 or r[0] >= r[1]):
        return "range", f"expected [start, stop] with start < stop, got {r}"
    return None


class MNIST(Dataset):
    """MNIST digits (LeCun et al. 1998), 28×28, from the IDX files: path/env/cache with download;
    split train|test|all, a row range, digit classes and n images per class."""

    name = "mnist"
    options = Schema(
        Option("path", "path", None, f"directory holding the IDX files (else ${ENV_DIR}, else the download cache)",
               nullable=True),
        Option("split", "choice", "train", "train (60,000), test (10,000) or all (train then test)",
               choices=("train", "test", "all")),
        Option("range", "integers", None, "[start, stop): rows of the split kept (before classes/per_class)",
               low=0, nullable=True),
        Option("classes", "integers", None, "digits kept (default: all ten)", low=0, high=9, nullable=True),
        Option("per_class", "integer", None, "images drawn at random from each kept digit", low=1, nullable=True),
        Option("download", "bool", True, "download missing files into the cache directory"),
        Option("cache_dir", "path", None, f"download cache (default ${ENV_CACHE}/mnist or ~/.cache/plasticity-kit/mnist)",
               nullable=True),
        Option("mirrors", "any", list(MIRRORS), "base URLs the files are downloaded from, tried in order"),
        checks=(_check_mirrors, _check_range),
    )

    def directory(self) -> tuple[Path, str]:
        """Where the files are looked for, and why there (for messages)."""
        if self.path:
            return Path(self.path), f"{KEY}.path"
        env = os.environ.get(ENV_DIR)
        if env:
            return Path(env), f"${ENV_DIR}"
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir(), "the download cache"

    def locate(self, stem: str) -> Path:
        directory, origin = self.directory()
        found = find_file(directory, stem)
        if found is not None:
            return found
        hint = ("; only the test set is there: use split: test" if stem.startswith("train")
                and find_file(directory, "t10k-images-idx3-ubyte") else "")
        if origin != "the download cache":
            raise DataError(f"MNIST file {stem}(.gz) not found in {directory} (from {origin}){hint}")
        if not self.download:
            raise DataError(f"MNIST file {stem}(.gz) not found in {directory} (the download cache) and "
                            f"download is off; set {KEY}.path or ${ENV_DIR} to a directory with the IDX files")
        try:
            return download(stem, directory, self.mirrors)
        except DataError as exc:
            raise DataError(f"MNIST file {stem}(.gz) not found in {directory} (the download cache) and {exc}; "
                            f"without network, set {KEY}.path or ${ENV_DIR} to a directory with the IDX files") from None

    def read_split(self, split: str) -> tuple[np.ndarray, np.ndarray, Path]:
        images_path, labels_path = (self.locate(stem) for stem in SPLIT_FILES[split])
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE) or images.dtype != np.uint8:
            raise DataError(f"{images_path}: expected uint8 images of 28x28, got {images.dtype} {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{labels_path}: expected {len(images)} labels for {images_path.name}, got shape {labels.shape}")
        return images, labels, images_path

    def load(self, rng):
        splits = ("train", "test") if self.split == "all" else (self.split,)
        parts = [self.read_split(s) for s in splits]
        images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        pool = np.arange(len(images))
        if self.range is not None:
            start, stop = self.range
            if stop > len(images):
                raise SpecError(f"{KEY}.range", f"expected stop <= {len(images)} (images in split {self.split}), got {stop}")
            pool = pool[start:stop]
        if self.classes is not None:
            pool = pool[np.isin(labels[pool], self.classes)]
        if self.per_class is not None:
            chosen = []
            for digit in (sorted(set(self.classes)) if self.classes is not None else range(10)):
                mine = pool[labels[pool] == digit]
                if len(mine) < self.per_class:
                    raise SpecError(f"{KEY}.per_class",
                                    f"expected at most {len(mine)} (images of digit {digit} selected), got {self.per_class}")
                chosen.append(rng.choice(mine, size=self.per_class, replace=False))
            pool = np.sort(np.concatenate(chosen))
        if len(pool) == 0:
            raise DataError(f"MNIST selection is empty (split {self.split}, range {self.range}, classes {self.classes})")
        X = images[pool].reshape(len(pool), -1).astype(np.float64) / 255.0
        sources = [str(p[2]) for p in parts]
        return Data(
            X=X, name=self.name, indices=pool, image_shape=(SIDE, SIDE), labels=labels[pool].astype(np.int64),
            source=", ".join(sources), checksum=",".join(sha256_file(s) for s in sources),
            info={"split": self.split},
        )
