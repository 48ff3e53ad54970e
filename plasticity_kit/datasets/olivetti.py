"""The Olivetti faces (AT&T Laboratories Cambridge, 1992–94): 40 people × 10 images, 64×64 grey.

A copy ships inside the package (``datasets/data/olivetti_faces.npz``, converted from Sam
Roweis's ``olivettifaces.mat``), so runs work offline.  ``path`` reads another copy instead:
Roweis's ``.mat`` (variable ``faces``, uint8 (4096, 400), one column-major image per column — the
file scikit-learn's ``fetch_olivetti_faces`` downloads) or an ``.npz`` with ``faces`` (400, 64, 64).
Image i belongs to person i // 10.  Pixels are scaled to [0, 1].
"""
from __future__ import annotations

import os
from importlib import resources

import numpy as np

from ..errors import DataError, SpecError
from ..options import Option, Schema
from .base import Data, Dataset, NpzArrays, sha256_file

N_PERSONS, PER_PERSON, SIDE = 40, 10, 64
KEY = "data.params"


def bundled_path() -> str:
    return str(resources.files("plasticity_kit.datasets") / "data" / "olivetti_faces.npz")


def read_faces(path: str) -> np.ndarray:
    """All 400 faces as uint8 (400, 64, 64), upright, from a ``.npz`` or Roweis ``.mat`` file."""
    if not os.path.exists(path):
        raise DataError(f"{path}: Olivetti file not found")
    try:
        if path.endswith(".mat"):
            from scipy.io import loadmat, whosmat

            shapes = {name: tuple(shape) for name, shape, _ in whosmat(path)}  # headers only: nothing allocated
            if shapes.get("faces") != (SIDE * SIDE, N_PERSONS * PER_PERSON):
                raise DataError(f"{path}: expected 'faces' of shape (4096, 400), got "
                                f"{shapes['faces'] if 'faces' in shapes else f'variables {sorted(shapes)}'}")
            raw = loadmat(path, variable_names=["faces"])["faces"]
            if raw.shape != (SIDE * SIDE, N_PERSONS * PER_PERSON):
                raise DataError(f"{path}: expected 'faces' of shape (4096, 400), got {raw.shape}")
            faces = raw.T.reshape(-1, SIDE, SIDE).transpose(0, 2, 1)
        else:
            with NpzArrays(path) as npz:
                if "faces" not in npz:
                    raise DataError(f"{path}: cannot read Olivetti faces (no array 'faces'; it has {npz.files})")
                faces = npz["faces"]
    except DataError as exc:
        text = str(exc)
        if text.startswith(f"{path}: expected") or "cannot read Olivetti faces" in text:
            raise
        raise DataError(f"{path}: cannot read Olivetti faces ({text.removeprefix(f'{path}: ')})") from None
    except Exception as exc:  # a corrupt or foreign file: say which and why
        raise DataError(f"{path}: cannot read Olivetti faces ({type(exc).__name__}: {exc})") from None
    if faces.shape != (N_PERSONS * PER_PERSON, SIDE, SIDE):
        raise DataError(f"{path}: expected 400 faces of 64x64, got shape {faces.shape}")
    return np.ascontiguousarray(faces)


class Olivetti(Dataset):
    """Olivetti faces (AT&T Cambridge), 400 images 64×64 of 40 people; bundled, works offline.

    select: all | persons (every image of ``persons``) | random_persons (``n_persons`` people
    drawn at random) | random (``k`` images drawn from all 400).  With persons/random_persons,
    ``k`` keeps k random images of the selected people (e.g. 5 images of one person).
    """

    name = "olivetti"
    options = Schema(
        Option("select", "choice", "all", "which images", choices=("all", "persons", "random_persons", "random")),
        Option("persons", "integers", None, "person indices (0–39) for select: persons", low=0, high=39, nullable=True),
        Option("n_persons", "integer", 1, "number of people drawn for select: random_persons", low=1, high=40),
        Option("k", "integer", None, "number of images kept (random subset of the selection)", low=1, nullable=True),
        Option("path", "path", None, "read this .mat/.npz copy instead of the bundled one", nullable=True),
        checks=(
            lambda p: ("persons", "missing; select: persons needs a list of person indices (0–39)")
            if p["select"] == "persons" and not p["persons"] else None,
            lambda p: ("k", "missing; select: random needs the number of images k")
            if p["select"] == "random" and p["k"] is None else None,
        ),
    )

    def load(self, rng):
        path = self.path or bundled_path()
        faces = read_faces(path)
        everyone = np.arange(len(faces))
        select = self.select
        if select == "all":
            pool = everyone
        elif select == "persons":
            pool = np.concatenate([everyone[p * PER_PERSON:(p + 1) * PER_PERSON] for p in self.persons])
        elif select == "random_persons":
            people = np.sort(rng.choice(N_PERSONS, size=self.n_persons, replace=False))
            pool = np.concatenate([everyone[p * PER_PERSON:(p + 1) * PER_PERSON] for p in people])
        else:
            pool = everyone
        if self.k is not None and select != "all":
            if self.k > len(pool):
                raise SpecError(f"{KEY}.k", f"expected at most {len(pool)} (images available for select: {select}), got {self.k}")
            pool = np.sort(rng.choice(pool, size=self.k, replace=False))
        elif self.k is not None:
            raise SpecError(f"{KEY}.k", "k is only used with select: persons, random_persons or random")
        X = faces[pool].reshape(len(pool), -1).astype(np.float64) / 255.0
        return Data(
            X=X, name=self.name, indices=pool, image_shape=(SIDE, SIDE), labels=pool // PER_PERSON,
            source=path if self.path else "bundled:olivetti_faces.npz", checksum=sha256_file(path),
            info={"attribution": "Olivetti faces, AT&T Laboratories Cambridge"},
        )
