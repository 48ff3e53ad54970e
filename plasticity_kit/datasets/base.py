"""The data-set contract: a registered class whose ``load(rng)`` returns a :class:`Data`; and
safe readers of ``.npy`` / ``.npz`` files (never unpickling, headers checked before allocating)."""
from __future__ import annotations

import functools
import hashlib
import math
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ..component import Component
from ..errors import DataError, SpecError


@dataclass
class Data:
    """Training inputs and where they came from.

    ``X``: (n_samples, n_inputs) float64 in [0, 1]; ``indices``: rows of the full data set that
    were selected (recorded in the run file); ``image_shape``: how one row reshapes into an
    image ((H, W) or (H, W, C)), or None; ``checksum``: sha256 of the source file.
    """

    X: np.ndarray
    name: str
    indices: np.ndarray
    image_shape: tuple | None = None
    labels: np.ndarray | None = None
    source: str = ""
    checksum: str = ""
    info: dict = field(default_factory=dict)


class Dataset(Component):
    """Base class of data-set plugins: ``load(rng) -> Data`` (``rng`` draws any random subset).

    Every subclass's ``load`` is checked on return: it must give a :class:`Data` whose ``X`` is a
    non-empty 2-D array, with at least ``min_samples`` rows — set by the spec to
    ``schedule.batch_size``, so that a batch larger than the data set is refused when the data is
    loaded (SpecError at that key) instead of silently shrinking.
    """

    min_samples: int = 1

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "load" in cls.__dict__:
            original = cls.__dict__["load"]

            @functools.wraps(original)
            def load(self, rng, *args, **kw):
                return self.checked(original(self, rng, *args, **kw))

            cls.load = load

    def load(self, rng: np.random.Generator) -> Data:
        raise NotImplementedError

    def checked(self, data) -> Data:
        """``data`` if it is usable (see the class docstring), else DataError / SpecError."""
        if not isinstance(data, Data):
            raise DataError(f"data set '{self.name}' gave {type(data).__name__}, expected a Data")
        X = data.X
        if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
            shape = getattr(X, "shape", None)
            raise DataError(f"data set '{self.name}' gave no samples (X of shape {shape}, expected (n, D))")
        self.check_size(X.shape[0])
        return data

    def check_size(self, n_samples: int) -> None:
        """SpecError at ``schedule.batch_size`` when the data set has fewer than ``min_samples``."""
        if n_samples < self.min_samples:
            raise SpecError("schedule.batch_size", f"expected at most {n_samples} (the samples in data set "
                            f"'{self.name}'), got {self.min_samples}")


def file_digest(path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks (sha256 for run files, md5 for the mirrors' checksums)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path) -> str:
    return file_digest(path, "sha256")


def md5_file(path) -> str:
    return file_digest(path, "md5")


def _array_header(fh, source: str):
    """(shape, fortran_order, dtype) from the header of an ``.npy`` stream positioned at its start."""
    from numpy.lib import format as npformat

    version = npformat.read_magic(fh)
    if version == (1, 0):
        return npformat.read_array_header_1_0(fh)
    if version == (2, 0):
        return npformat.read_array_header_2_0(fh)
    impl = getattr(np.lib, "_format_impl", npformat)
    return impl._read_array_header(fh, version)  # 3.0: a UTF-8 header


def read_checked_array(fh, size: int, source: str) -> np.ndarray:
    """The array of the ``.npy`` stream ``fh`` holding ``size`` bytes, refused before anything is
    allocated when its header declares more data than the stream holds, more memory than is
    available, or Python objects (which only a pickle could carry)."""
    from ..memory import available, human

    try:
        shape, fortran, dtype = _array_header(fh, source)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, AttributeError) as exc:
        raise DataError(f"{source}: not a .npy array ({exc})") from None
    if any(d < 0 for d in shape):
        raise DataError(f"{source}: the header declares a negative shape {shape}")
    if dtype.hasobject:
        raise DataError(f"{source}: holds Python objects (dtype {dtype}); only numeric arrays are read, never pickles")
    nbytes = math.prod(shape) * dtype.itemsize
    left = size - fh.tell()
    if nbytes > left:
        raise DataError(f"{source}: the header declares a {dtype} array of shape {shape} ({human(nbytes)}), "
                        f"but the file holds {human(max(left, 0))} of data")
    free = available()
    if free is not None and nbytes > free:
        raise DataError(f"{source}: the {dtype} array of shape {shape} needs {human(nbytes)}, more than the "
                        f"{human(free)} of memory available")
    buffer = bytearray(nbytes)
    if fh.readinto(buffer) != nbytes:
        raise DataError(f"{source}: truncated .npy array")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def read_npy(path) -> np.ndarray:
    """The array in an ``.npy`` file (see :func:`read_checked_array`); DataError naming the file."""
    try:
        with open(path, "rb") as fh:
            return read_checked_array(fh, os.fstat(fh.fileno()).st_size, str(path))
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


class NpzArrays:
    """The arrays of an ``.npz`` file, each read on demand with :func:`read_checked_array`
    (the sizes come from the zip directory, so a member declaring a huge shape is refused)."""

    def __init__(self, path):
        self.path = str(path)
        try:
            self._zip = zipfile.ZipFile(path)
            self._members = {info.filename[:-4]: info for info in self._zip.infolist()
                             if info.filename.endswith(".npy")}
        except (OSError, zipfile.BadZipFile, ValueError) as exc:
            raise DataError(f"{path}: not an .npz archive ({exc})") from None

    @property
    def files(self) -> list[str]:
        return list(self._members)

    def __contains__(self, name) -> bool:
        return name in self._members

    def __getitem__(self, name: str) -> np.ndarray:
        info = self._members[name]
        source = f"{self.path}[{name}]"
        try:
            with self._zip.open(info) as fh:
                return read_checked_array(fh, info.file_size, source)
        except (OSError, zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
            raise DataError(f"{source}: cannot read ({type(exc).__name__}: {exc})") from None

    def close(self) -> None:
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
