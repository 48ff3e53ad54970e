"""Synthetic images of a run: each neuron's weights as an image (Rondini 2023, §1).

``rule.synthesize(state)`` maps every neuron's weight vector to grey levels in [0, 1] (BCM:
min–max per neuron); reshaped with the data set's ``image_shape`` each row is one synthetic
image.  With the binocular (B) interaction and an odd number of neurons N, the middle neuron
m = N // 2 is coupled to every other neuron; the reference study says it learns an "average" face
and scores that one image per training run (64 runs → 64 images), so it is exposed separately.
That claim does not hold for this toolkit's settings: in the study sweeps (10 faces, SGD) the
64 middle-neuron images are near-copies of a few training faces (SSIM 0.83 to them, correlation
−0.09 with the mean face), and in ``specs/olivetti.yaml`` (Adam, 400 faces) the middle neuron can
stay at its initial noise — score it with the ``identities`` and ``memorisation`` metrics and the
FID floor before reading it as an average face.
"""
from __future__ import annotations

import numpy as np

from .base import MetricUnavailable

NEURONS = ("all", "middle", "one_per_network")


def middle_index(interaction: str | None, n_neurons: int) -> int | None:
    """Index N // 2 of the middle neuron of the ``binocular`` interaction with odd N, else None."""
    return n_neurons // 2 if interaction == "binocular" and n_neurons % 2 == 1 else None


def middle_neuron(rule) -> int | None:
    """:func:`middle_index` of ``rule``'s interaction and number of neurons."""
    model = getattr(rule, "model", None)
    return middle_index(getattr(getattr(model, "interaction", None), "name", None), getattr(model, "n_neurons", 0))


def as_images(X: np.ndarray, image_shape) -> np.ndarray:
    """Rows of ``X`` (n, D) as images (n, *image_shape)."""
    if not image_shape:
        raise MetricUnavailable("the data set does not say how its rows reshape into images (no image_shape)")
    X = np.asarray(X)
    return X.reshape((X.shape[0],) + tuple(int(s) for s in image_shape))


def synthetic_images(rule, state: dict, image_shape, neurons: str = "all") -> np.ndarray:
    """The run's synthetic images (n, *image_shape) in [0, 1].

    ``neurons``: ``all`` — one image per neuron; ``middle`` — only the binocular middle neuron;
    ``one_per_network`` — the middle neuron where there is one, else neuron 0 (under the uniform
    L every neuron is alike): the study's one image per trained network, for any matrix.
    A replicated run (``model.replicas`` R) gives the images of every replica, replica after
    replica: R·N images, or R middle-neuron images.
    """
    from ..rules.replicas import replica_count

    weights_as_images = rule.synthesize(state)
    if weights_as_images is None:
        raise MetricUnavailable(f"rule '{rule.name}' does not map its weights to images (synthesize gives None)")
    rows = np.arange(weights_as_images.shape[0])
    if neurons in ("middle", "one_per_network"):
        m = middle_neuron(rule)
        if m is None and neurons == "one_per_network":
            m = 0
        elif m is None:
            raise MetricUnavailable("params.neurons: 'middle' needs the binocular interaction and an odd "
                                    "number of neurons")
        rows = m + rule.model.n_neurons * np.arange(replica_count(rule))
    elif neurons != "all":
        raise ValueError(f"neurons must be one of {NEURONS}, got {neurons!r}")
    return as_images(np.clip(weights_as_images[rows], 0.0, 1.0), image_shape)
