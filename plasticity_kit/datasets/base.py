"""The data-set contract: a registered class whose ``load(rng)`` returns a :class:`Data`."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..component import Component


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
    """Base class of data-set plugins: ``load(rng) -> Data`` (``rng`` draws any random subset)."""

    def load(self, rng: np.random.Generator) -> Data:
        raise NotImplementedError


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
