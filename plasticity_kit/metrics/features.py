"""What the image metrics share: their options, the reference set, and cached reference features.

Reference sets (``params.reference``):

* ``training`` — the run's own training images (``ctx.data``);
* ``dataset`` — the whole data set the run drew from: the spec's data set rebuilt with only its
  file options (kind ``path``) kept, every other option at its default (Olivetti: all 400 faces);
* ``npz`` — (FID only) precomputed statistics ``mu``/``sigma`` in pytorch-fid's ``.npz`` format.

Inception features of a reference set are cached on disk, keyed by the data set's identity
(name, file checksum, selected indices, image shape), the scaling of its images (``stored``, or
``minmax`` per image as the synthetic images are scaled), the feature dims and the weights file, in
``params.cache_dir`` (default ``$PLASTICITY_KIT_CACHE``, else ``$XDG_CACHE_HOME/plasticity-kit``,
else ``~/.cache/plasticity-kit``), under ``fid/``.  Each cache file is a pytorch-fid statistics
``.npz`` (``mu``, ``sigma``) that also holds the ``features``, so it can serve as ``reference: npz``.
A subset of a data set whose whole set is cached (a run's training faces) takes its rows from there.

The synthetic images' features are kept in memory for the last few image stacks, so the image
metrics of one run (``fid`` with its KID, ``kid``, ``prdc``, ``authenticity``) share one Inception pass.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .base import Metric, MetricContext, MetricUnavailable
from .inception import DIMS, WEIGHTS_FILE, inception_features
from .synthetic import NEURONS, as_images, synthetic_images
from ..options import Option

REFERENCES = ("training", "dataset")

NEURONS_OPTION = Option("neurons", "choice", "all", "which neurons' weights are the synthetic images: all, "
                        "the binocular middle neuron, or one per network (the middle neuron, else neuron 0)",
                        choices=NEURONS)
INCEPTION_OPTIONS = (
    Option("dims", "choice", 2048, "Inception feature dims (64, 192, 768 or 2048; small sets need 64)", choices=DIMS),
    Option("weights", "path", None, "FID Inception weights file (default: torch hub's cache)", nullable=True),
    Option("device", "choice", "auto", "torch device for the Inception network", choices=("auto", "cpu", "cuda")),
    Option("batch_size", "integer", 50, "images per Inception forward pass", low=1),
    Option("cache_dir", "string", None, "where reference features are cached", nullable=True),
)

_WHOLE: dict = {}
_FEATURES: dict = {}
_RECENT: dict = {}
RECENT_SIZE = 4
SCALINGS = ("stored", "minmax")


def default_cache_dir() -> Path:
    env = os.environ.get("PLASTICITY_KIT_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "plasticity-kit"


def whole_dataset(spec):
    """The spec's data set with every sample: only its file options (kind ``path``) kept."""
    ds = spec.dataset
    keep = {o.name: ds.params[o.name] for o in ds.options if o.kind == "path" and ds.params.get(o.name) is not None}
    key = (type(ds), tuple(sorted(keep.items())))
    if key not in _WHOLE:
        _WHOLE[key] = type(ds)(_key="data.params", **keep).load(np.random.default_rng(0))
    return _WHOLE[key]


def reference_data(ctx: MetricContext, which: str):
    """The :class:`~plasticity_kit.datasets.base.Data` of the reference set ``training`` or ``dataset``."""
    if which == "training":
        return ctx.data
    if which == "dataset":
        if ctx.spec is None:
            raise MetricUnavailable("reference: dataset needs the run's spec to rebuild its data set")
        return whole_dataset(ctx.spec)
    raise ValueError(f"reference must be one of {REFERENCES}, got {which!r}")


def data_identity(data) -> dict:
    """Name, file checksum, a digest of the selected indices, count and image shape of ``data``."""
    indices = np.ascontiguousarray(np.asarray(data.indices, dtype=np.int64))
    return {
        "dataset": data.name, "checksum": data.checksum,
        "indices_sha256": hashlib.sha256(indices.tobytes()).hexdigest(), "n": int(len(indices)),
        "image_shape": [int(s) for s in (data.image_shape or ())],
    }


def _weights_identity(weights: str | None) -> str:
    """The standard file is named by its hash prefix; another file by its name and size."""
    if weights is None:
        return WEIGHTS_FILE
    size = os.path.getsize(weights) if os.path.isfile(weights) else -1
    return f"{os.path.basename(weights)}:{size}"


def cache_file(identity: dict, dims: int, weights: str | None, cache_dir=None, scaling: str = "stored",
               suffix: str = ".npz") -> Path:
    """Path of the cached features of the reference set ``identity`` at ``dims`` and ``scaling``."""
    key = {**identity, "dims": dims, "weights": _weights_identity(weights)}
    if scaling != "stored":  # stored-scaling keys stay those of earlier versions (their caches stay valid)
        key["scaling"] = scaling
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    tag = "" if scaling == "stored" else f"-{scaling}"
    return Path(cache_dir or default_cache_dir()) / "fid" / f"{identity['dataset']}-d{dims}{tag}-{digest}{suffix}"


def minmax_images(images: np.ndarray) -> np.ndarray:
    """Each image rescaled to [0, 1] by its own min and max — how ``rule.synthesize`` scales weights
    (a constant image maps to 0.5)."""
    from ..rules.base import minmax_rows

    x = np.asarray(images, dtype=np.float64)
    return minmax_rows(x.reshape(len(x), -1)).reshape(x.shape)


def scaled(images: np.ndarray, scaling: str) -> np.ndarray:
    """``images`` as stored, or min–max scaled per image."""
    if scaling == "stored":
        return np.asarray(images)
    if scaling == "minmax":
        return minmax_images(images)
    raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")


def save_features(path: Path, features: np.ndarray, identity: dict) -> None:
    """Write ``mu``, ``sigma`` (pytorch-fid's format) and ``features`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    os.close(fd)
    os.chmod(tmp, 0o644)
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, mu=features.mean(axis=0), sigma=np.cov(features, rowvar=False), features=features,
                     identity=json.dumps(identity))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _from_cached_whole(data, dims, weights, cache_dir, scaling) -> np.ndarray | None:
    """Rows of ``data`` from the in-memory features of a cached superset (same file), else None."""
    for (path, sc), (identity, indices, feats) in list(_WHOLE_FEATURES.items()):
        if sc != (dims, _weights_identity(weights), str(cache_dir), scaling, inception_features) \
                or path not in _FEATURES or identity["checksum"] != data.checksum \
                or identity["dataset"] != data.name or not data.checksum:
            continue
        pos = {int(i): k for k, i in enumerate(indices)}
        try:
            rows = [pos[int(i)] for i in np.asarray(data.indices)]
        except KeyError:
            continue
        return feats[rows]
    return None


_WHOLE_FEATURES: dict = {}


def reference_features(data, *, dims: int, weights=None, device="auto", batch_size=50, cache_dir=None,
                       scaling: str = "stored") -> np.ndarray:
    """Inception features of every image of ``data`` (as stored, or min–max scaled per image), read
    from the disk cache or computed once and cached; a subset of an already loaded set is sliced from it."""
    identity = data_identity(data)
    path = cache_file(identity, dims, weights, cache_dir, scaling)
    if path in _FEATURES:
        return _FEATURES[path]
    sub = _from_cached_whole(data, dims, weights, cache_dir, scaling)
    if sub is not None:
        return sub
    features = None
    if path.exists():
        try:
            with np.load(path) as npz:
                features = npz["features"]
        except (OSError, ValueError, KeyError):
            features = None  # a damaged cache entry is recomputed
    if features is None:
        images = scaled(as_images(data.X, data.image_shape), scaling)
        features = inception_features(images, dims, weights=weights, device=device, batch_size=batch_size)
        save_features(path, features, {**identity, "scaling": scaling})
    _FEATURES[path] = features
    _WHOLE_FEATURES[(path, (dims, _weights_identity(weights), str(cache_dir), scaling, inception_features))] = (
        identity, np.asarray(data.indices), features)
    return features


def image_features(images: np.ndarray, *, dims: int, weights=None, device="auto", batch_size=50) -> np.ndarray:
    """Inception features of ``images``; the last few stacks are remembered (keyed by their bytes)."""
    x = np.ascontiguousarray(images)
    key = (hashlib.sha256(x.tobytes()).hexdigest(), x.shape, str(x.dtype), dims, _weights_identity(weights), device,
           inception_features)
    if key not in _RECENT:
        while len(_RECENT) >= RECENT_SIZE:
            _RECENT.pop(next(iter(_RECENT)))
        _RECENT[key] = inception_features(x, dims, weights=weights, device=device, batch_size=batch_size)
    return _RECENT[key]


class ImageMetric(Metric):
    """Base of metrics that score the run's synthetic images: ``compute(ctx)`` = ``score(images, ctx)``.

    ``score`` takes any stack of images in [0, 1], so images pooled from several runs (the
    reference study's 64 seeds) are scored the same way; a replicated run's images are scored
    together (``pools_replicas``).
    """

    pools_replicas = True

    def synthetic(self, ctx: MetricContext) -> np.ndarray:
        return synthetic_images(ctx.rule, ctx.state, ctx.data.image_shape, self.params.get("neurons", "all"))

    def compute(self, ctx: MetricContext) -> dict:
        return self.score(self.synthetic(ctx), ctx)

    def score(self, images: np.ndarray, ctx: MetricContext) -> dict:
        raise NotImplementedError


class InceptionMetric(ImageMetric):
    """An image metric on Inception features of the synthetic and the reference images."""

    def inception(self, images: np.ndarray) -> np.ndarray:
        p = self.params
        return image_features(images, dims=p["dims"], weights=p["weights"], device=p["device"],
                              batch_size=p["batch_size"])

    def reference_inception(self, ctx: MetricContext, scaling: str = "stored", which: str | None = None) -> np.ndarray:
        p = self.params
        return reference_features(reference_data(ctx, which or p["reference"]), dims=p["dims"], weights=p["weights"],
                                  device=p["device"], batch_size=p["batch_size"], cache_dir=p["cache_dir"],
                                  scaling=scaling)
