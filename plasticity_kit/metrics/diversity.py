"""Distinct identities among the synthetic images: whose face is each one closest to?

FID rewards a set whose feature statistics match the reference; it does not say how many
different real things the set shows (mode collapse: Salimans et al. 2016; Arora & Zhang 2017
count distinct modes the same way, by the nearest real sample's label).  Each synthetic image
x_j is assigned the label of its most correlated real image,

    ℓ(x_j) = label(argmax_i r(x_j, xᵢ)),   r = Pearson correlation of the pixels,

and the metric counts the distinct labels, |{ℓ(x_j)}|, out of the n synthetic images.  On
Olivetti the label is the person (image i shows person i // 10), so 21 images of 8 people give
``distinct_identities`` 8 of 21.  The correlation is unchanged by the per-image min–max scaling
of the synthetic images, so they are compared with the real images as stored.
"""
from __future__ import annotations

import numpy as np

from ..options import Option, Schema
from .base import MetricUnavailable
from .features import NEURONS_OPTION, REFERENCES, ImageMetric, reference_data
from .nearest import correlation_matrix


def nearest_labels(synthetic: np.ndarray, real: np.ndarray, labels: np.ndarray) -> dict:
    """For each synthetic row (n, D): the most correlated row of ``real`` (m, D), its label and the
    correlation; and the number of distinct labels reached."""
    r = correlation_matrix(np.asarray(synthetic).reshape(len(synthetic), -1), np.asarray(real).reshape(len(real), -1))
    best = r.argmax(axis=1)
    identity = np.asarray(labels)[best]
    return {"identity": identity, "nearest_row": best, "correlation": r[np.arange(len(best)), best],
            "distinct_identities": int(len(np.unique(identity)))}


class Identities(ImageMetric):
    """Distinct identities (labels of the nearest real images, Olivetti: people) among the synthetic images.

    Values: ``distinct_identities`` (count of distinct labels), ``n_images``, ``identity`` (label per
    image), ``nearest_index`` (data-set index of the nearest real image), ``correlation_mean``.
    """

    name = "identities"
    options = Schema(
        Option("reference", "choice", "dataset", "real images: the run's training data or the whole data set",
               choices=REFERENCES),
        NEURONS_OPTION,
    )

    def score(self, images, ctx):
        data = reference_data(ctx, self.reference)
        if data.labels is None:
            raise MetricUnavailable(f"data set '{data.name}' has no labels to count identities with")
        out = nearest_labels(images, data.X, data.labels)
        return {"distinct_identities": out["distinct_identities"], "n_images": len(images),
                "identity": np.asarray(out["identity"], dtype=np.int64),
                "nearest_index": np.asarray(data.indices, dtype=np.int64)[out["nearest_row"]],
                "correlation_mean": float(out["correlation"].mean())}
