"""White-noise images: i.i.d. uniform pixels in [0, 1], drawn from the run's data stream.

A stimulus for layers that need images of a given shape but no structure in them — e.g. the
weight-sharing toy of Pogodin et al. 2021 (Fig. 4), whose layer only sleeps, so its wake inputs
are never learned from — and the classic probe for receptive fields.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np

from ..errors import SpecError
from ..options import Option, Schema
from .base import Data, Dataset


class WhiteNoise(Dataset):
    """White-noise images, pixels i.i.d. uniform in [0, 1], of any shape (seeded by schedule.seed)."""

    name = "white_noise"
    options = Schema(
        Option("image_shape", "integers", doc="[H, W] or [H, W, C]", low=1),
        Option("n_samples", "integer", 100, "number of images", low=1),
        checks=(lambda p: ("image_shape", f"expected [H, W] or [H, W, C], got {p['image_shape']}")
                if len(p["image_shape"]) not in (2, 3) else None,),
    )

    def load(self, rng):
        from ..memory import available, human

        shape = tuple(self.image_shape)
        need = self.n_samples * math.prod(shape) * 8
        free = available()
        if free is not None and need > free:
            raise SpecError("data.params.n_samples", f"expected images that fit in the {human(free)} of memory "
                            f"available, got {self.n_samples} of {list(shape)} ({human(need)})")
        X = rng.random((self.n_samples, math.prod(shape)))
        return Data(X=X, name=self.name, indices=np.arange(self.n_samples), image_shape=shape,
                    source="generated", checksum=hashlib.sha256(X.tobytes()).hexdigest())
