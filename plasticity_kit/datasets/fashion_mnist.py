"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747): 28×28 grey images of Zalando
articles in 10 classes (0 T-shirt/top, 1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal, 6 shirt,
7 sneaker, 8 bag, 9 ankle boot), 60,000 for training and 10,000 for testing, in MNIST's IDX format
and file names.

Where the files are looked for, in order:

1. ``path`` in the spec (``data.params.path``): a directory holding the IDX files;
2. the environment variable ``PLASTICITY_KIT_FASHION_MNIST``: such a directory;
3. ``/usr/share/datasets/fashion-mnist`` (the Debian package ``dataset-fashion-mnist``);
4. a cache directory (``cache_dir``, else ``$PLASTICITY_KIT_CACHE/fashion-mnist``, else
   ``~/.cache/plasticity-kit/fashion-mnist``), where missing files are downloaded from ``mirrors``
   and kept only when their MD5 matches the original distribution.

The selectors are MNIST's (:class:`~plasticity_kit.datasets.mnist.MNIST`): ``split``, ``range``,
``classes``, ``per_class``; pixels are scaled to [0, 1], labels kept.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from ..options import Option, Schema
from .mnist import KEY, MNIST, download, find_file

ENV_DIR = "PLASTICITY_KIT_FASHION_MNIST"
ENV_CACHE = "PLASTICITY_KIT_CACHE"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

#: file stem → MD5 of the gzipped original (as published in zalandoresearch/fashion-mnist)
FILES = {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def default_cache_dir() -> Path:
    base = os.environ.get(ENV_CACHE)
    return (Path(base) if base else Path.home() / ".cache" / "plasticity-kit") / "fashion-mnist"


def _replace(schema: Schema, **new: Option) -> Schema:
    return Schema(*(new.get(o.name, o) for o in schema), checks=schema.checks)


class FashionMNIST(MNIST):
    """Fashion-MNIST (Xiao et al. 2017), 28×28 articles in 10 classes, from the IDX files:
    path / $PLASTICITY_KIT_FASHION_MNIST / /usr/share/datasets/fashion-mnist / download cache;
    the MNIST selectors (split, range, classes, per_class)."""

    name = "fashion_mnist"
    options = _replace(
        MNIST.options,
        path=Option("path", "path", None, f"directory holding the IDX files (else ${ENV_DIR}, else {SYSTEM_DIR}, "
                    "else the download cache)", nullable=True),
        classes=Option("classes", "integers", None, "classes kept (0 T-shirt/top … 9 ankle boot; default all ten)",
                       low=0, high=9, nullable=True),
        per_class=Option("per_class", "integer", None, "images drawn at random from each kept class", low=1,
                         nullable=True),
        cache_dir=Option("cache_dir", "path", None, f"download cache (default ${ENV_CACHE}/fashion-mnist or "
                         "~/.cache/plasticity-kit/fashion-mnist)", nullable=True),
        mirrors=Option("mirrors", "any", list(MIRRORS), "base URLs the files are downloaded from, tried in order"),
    )

    def directory(self) -> tuple[Path, str]:
        """Where the files are looked for, and why there (for messages)."""
        if self.path:
            return Path(self.path), f"{KEY}.path"
        env = os.environ.get(ENV_DIR)
        if env:
            return Path(env), f"${ENV_DIR}"
        if find_file(SYSTEM_DIR, "t10k-images-idx3-ubyte") is not None:
            return SYSTEM_DIR, "the dataset-fashion-mnist package"
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir(), "the download cache"

    def locate(self, stem: str) -> Path:
        directory, origin = self.directory()
        found = find_file(directory, stem)
        if found is not None:
            return found
        if origin != "the download cache":
            raise DataError(f"Fashion-MNIST file {stem}(.gz) not found in {directory} (from {origin})")
        advice = (f"set {KEY}.path or ${ENV_DIR} to a directory with the IDX files, or install the Debian "
                  f"package dataset-fashion-mnist")
        if not self.download:
            raise DataError(f"Fashion-MNIST file {stem}(.gz) not found in {directory} (the download cache) and "
                            f"download is off; {advice}")
        try:
            return download(stem, directory, self.mirrors, FILES)
        except DataError as exc:
            raise DataError(f"Fashion-MNIST file {stem}(.gz) not found in {directory} (the download cache) and "
                            f"{exc}; without network, {advice}") from None
