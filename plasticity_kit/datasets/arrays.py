"""Any images as a data set: a folder of image files, or a ``.npy`` / ``.npz`` array.

* A folder: every image file in it (``.png .jpg .jpeg .bmp .gif .tif .tiff .ppm .pgm .webp``),
  in sorted name order, read with Pillow (installed with matplotlib).  If the folder holds
  sub-folders of images instead, each sub-folder is a class: labels are the sub-folders' indices in
  sorted order (the torchvision ``ImageFolder`` layout).  All images must have one size.
* An array: ``(n, H, W)`` grey, ``(n, H, W, C)`` channels-last, or ``(n, D)`` rows with
  ``image_shape`` saying how they reshape (or nothing, for non-image data).  In an ``.npz`` the
  array is ``key`` (default: the only array, else ``images``, else ``X``); an array ``labels`` of
  n entries becomes the labels.

Values: integers are scaled by their type's maximum (uint8 / 255, uint16 / 65535), booleans map to
0/1 and floats must already lie in [0, 1] — or ``normalize: minmax`` rescales the whole set by its
minimum and maximum.  ``grayscale`` converts colour to luma 0.299 R + 0.587 G + 0.114 B (ITU-R
BT.601).  Rows are flattened in (y, x, channel) order.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from ..errors import DataError, SpecError
from ..options import Option, Schema
from .base import Data, Dataset, NpzArrays, read_npy, sha256_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".webp")
LUMA = np.array([0.299, 0.587, 0.114])
KEY = "data.params"


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path: Path) -> np.ndarray:
    """One image as (H, W) grey or (H, W, 3) RGB, uint8 (uint16 for 16-bit grey)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "RGB", "I;16"):
                img = img.convert("L" if img.mode in ("1", "LA", "I", "F") else "RGB")
            return np.asarray(img)
    except Exception as exc:  # unreadable or not an image: name the file
        raise DataError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from None


def _check_room(folder: Path, n: int, first: np.ndarray) -> None:
    """DataError before reading a folder whose images, as read and then as float64 rows, would
    not fit in the available memory (n images of the first one's size)."""
    from ..memory import available, human

    need = n * first.nbytes * 2 + n * first.size * 8 * 2  # the images and their stack; float64 X and its subset
    free = available()
    if free is not None and need > free:
        raise DataError(f"{folder}: {n} images of shape {first.shape} need about {human(need)}, more than the "
                        f"{human(free)} of memory available; use fewer images")


def read_folder(folder: Path) -> tuple[np.ndarray, np.ndarray | None, list[Path]]:
    """(images (n, H, W[, C]), labels or None, files) of an image folder (see the module docstring)."""
    files, labels = _image_files(folder), None
    if not files:
        classes = sorted(p for p in folder.iterdir() if p.is_dir() and _image_files(p))
        if not classes:
            raise DataError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in it or in sub-folders")
        per_class = [_image_files(c) for c in classes]
        files = [f for group in per_class for f in group]
        labels = np.repeat(np.arange(len(classes)), [len(g) for g in per_class])
    images = [read_image(files[0])]
    _check_room(folder, len(files), images[0])
    for path in files[1:]:
        img = read_image(path)
        if img.shape != images[0].shape:
            raise DataError(f"{path}: image of shape {img.shape}, but {files[0].name} has {images[0].shape}; "
                            f"all images of a data set must have one size")
        images.append(img)
    return np.stack(images), labels, files


def read_array(path: Path, key: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(array, labels or None) from an ``.npy`` or ``.npz`` file."""
    try:
        if path.suffix == ".npz":
            with NpzArrays(path) as npz:
                names = list(npz.files)
                if key is None:
                    arrays = [n for n in names if n != "labels"]
                    key = arrays[0] if len(arrays) == 1 else next((n for n in ("images", "X") if n in names), None)
                    if key is None:
                        raise SpecError(f"{KEY}.key", f"{path} holds arrays {names}: say which one holds the images")
                if key not in names:
                    raise SpecError(f"{KEY}.key", f"{path} has no array {key!r}; it has {names}")
                return npz[key], (npz["labels"] if "labels" in names else None)
        return read_npy(path), None
    except (SpecError, DataError):
        raise
    except Exception as exc:
        raise DataError(f"{path}: cannot read array ({type(exc).__name__}: {exc})") from None


def to_unit_range(a: np.ndarray, normalize: str, source: str) -> np.ndarray:
    """Values as float64 in [0, 1] (see the module docstring)."""
    if normalize == "minmax":
        a = a.astype(np.float64)
        lo, hi = a.min(), a.max()
        return np.zeros_like(a) if hi == lo else (a - lo) / (hi - lo)
    if a.dtype == bool:
        return a.astype(np.float64)
    if a.dtype.kind in "ui":
        if a.min() < 0:
            raise DataError(f"{source}: negative integer pixels; use {KEY}.normalize: minmax")
        return a.astype(np.float64) / np.iinfo(a.dtype).max
    if a.dtype.kind != "f":
        raise DataError(f"{source}: expected numbers, got an array of dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise DataError(f"{source}: the array holds NaN or inf")
    if a.min() < 0 or a.max() > 1:
        raise DataError(f"{source}: float values in [{a.min():g}, {a.max():g}], expected [0, 1]; "
                        f"set {KEY}.normalize: minmax to rescale them")
    return a


class Images(Dataset):
    """Any images: a folder of image files (class sub-folders give labels) or an .npy/.npz array, scaled to [0, 1]."""

    name = "images"
    options = Schema(
        Option("path", "path", doc="an image folder, or an .npy / .npz file"),
        Option("key", "string", None, "array holding the images in an .npz (default: the only one, images or X)",
               nullable=True),
        Option("image_shape", "integers", None, "[H, W] or [H, W, C] of the rows of an (n, D) array", low=1,
               nullable=True),
        Option("grayscale", "bool", False, "convert colour images to grey (luma 0.299 R + 0.587 G + 0.114 B)"),
        Option("normalize", "choice", "auto", "auto: integers by their maximum, floats as they are; "
               "minmax: (x − min) / (max − min) over the set", choices=("auto", "minmax")),
        Option("k", "integer", None, "number of images kept (random subset)", low=1, nullable=True),
    )

    def load(self, rng):
        path = Path(self.path)
        if not path.exists():
            raise DataError(f"{path}: no such folder or file ({KEY}.path)")
        if path.is_dir():
            images, labels, files = read_folder(path)
            digest = hashlib.sha256()
            for f in files:
                digest.update(bytes.fromhex(sha256_file(f)))
            checksum = digest.hexdigest()
        elif path.suffix in (".npy", ".npz"):
            images, labels = read_array(path, self.key)
            checksum = sha256_file(path)
        else:
            raise DataError(f"{path}: expected an image folder or an .npy / .npz file")
        images = self._shaped(images, str(path))
        if labels is not None and len(labels) != len(images):
            raise DataError(f"{path}: {len(labels)} labels for {len(images)} images")
        X = to_unit_range(images, self.normalize, str(path))
        if self.grayscale and X.ndim == 4:
            X = X[..., :3] @ LUMA if X.shape[-1] >= 3 else X[..., 0]
        image_shape = tuple(X.shape[1:]) if X.ndim > 2 else None
        if image_shape and len(image_shape) == 3 and image_shape[-1] == 1:
            image_shape = image_shape[:2]
        pool = np.arange(len(X))
        if self.k is not None:
            if self.k > len(pool):
                raise SpecError(f"{KEY}.k", f"expected at most {len(pool)} (images available), got {self.k}")
            pool = np.sort(rng.choice(pool, size=self.k, replace=False))
        return Data(X=X[pool].reshape(len(pool), -1), name=self.name, indices=pool, image_shape=image_shape,
                    labels=None if labels is None else np.asarray(labels)[pool], source=str(path), checksum=checksum)

    def _shaped(self, a: np.ndarray, source: str) -> np.ndarray:
        """(n, H, W) or (n, H, W, C) (or (n, D) for non-image rows)."""
        if a.ndim == 2:
            if self.image_shape is None:
                return a
            shape = tuple(self.image_shape)
            if len(shape) not in (2, 3) or math.prod(shape) != a.shape[1]:
                raise SpecError(f"{KEY}.image_shape", f"expected [H, W] or [H, W, C] with H·W·C = {a.shape[1]} "
                                f"(the rows of {source}), got {list(shape)}")
            return a.reshape((len(a),) + shape)
        if a.ndim == 3 or (a.ndim == 4 and a.shape[-1] in (1, 2, 3, 4)):
            if self.image_shape is not None and tuple(self.image_shape) != a.shape[1:] and \
                    tuple(self.image_shape) != a.shape[1:3]:
                raise SpecError(f"{KEY}.image_shape", f"{source} holds images of shape {list(a.shape[1:])}, "
                                f"got {list(self.image_shape)}")
            return a
        raise DataError(f"{source}: expected an array (n, H, W), (n, H, W, C) with C ≤ 4 or (n, D), "
                        f"got shape {a.shape}")
