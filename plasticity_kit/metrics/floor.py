"""The real-image floor of an image score: what real images get under the same protocol.

FID and KID are biased for small sets and depend on how the images are scaled, so a score alone
cannot say whether synthetic images are good.  The floor is the same score for *real* images of
the same count and the same scaling: ``count`` images drawn at random without replacement from
the reference set, min–max scaled per image as the synthetic images are (``rule.synthesize``),
scored against the whole reference set exactly as the synthetic images are.  Over ``draws``
subsets (seeded) it gives

    floor_mean = mean_k score(real subset k),  floor_sd = sd_k (ddof 1),  ratio = score / floor_mean

A ratio near 1 means the synthetic images are as close to the reference as real images of that
number are; real images scored at their stored scaling at dims 64 can sit far below the
min–max-scaled floor (Olivetti: 64 faces 0.010 vs 0.72), which is why the floor uses the scaling
of the synthetic images.  The floors depend only on the reference set, its scaling, the feature
dims, the count and the draws, so they are cached on disk next to the reference features
(``<cache>/fid/*-floor-*.json``).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .fid import frechet_distance_features
from .kid import kernel_inception_distance


def draw_subsets(n_reference: int, count: int, draws: int, seed: int) -> list[np.ndarray]:
    """``draws`` sorted index sets of ``count`` distinct rows of ``n_reference`` (seeded)."""
    if count > n_reference:
        raise ValueError(f"a floor of {count} images needs at least {count} reference images, got {n_reference}")
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(n_reference, size=count, replace=False)) for _ in range(draws)]


def real_floor(candidates: np.ndarray, reference: np.ndarray, count: int, draws: int = 10, seed: int = 0,
               kid: bool = True) -> dict:
    """FID (and KID) of ``draws`` random ``count``-subsets of ``candidates`` (the reference images'
    features at the synthetic images' scaling) against ``reference``: means, sds and the values."""
    fids, kids = [], []
    for rows in draw_subsets(len(candidates), count, draws, seed):
        fids.append(frechet_distance_features(candidates[rows], reference))
        if kid:
            kids.append(kernel_inception_distance(candidates[rows], reference)[0])
    out = {"fid": fids, "fid_mean": float(np.mean(fids)), "fid_sd": float(np.std(fids, ddof=1)) if draws > 1 else 0.0}
    if kid:
        out.update({"kid": kids, "kid_mean": float(np.mean(kids)),
                    "kid_sd": float(np.std(kids, ddof=1)) if draws > 1 else 0.0})
    return out


def floor_file(features_file: Path, count: int, draws: int, seed: int, scaling: str) -> Path:
    """Where the floor of ``count`` images over the reference set cached at ``features_file`` is kept."""
    return features_file.with_name(f"{features_file.stem}-floor-{scaling}-n{count}-k{draws}-s{seed}.json")


def cached_floor(path: Path, compute) -> dict:
    """The floor stored at ``path``, or ``compute()`` written there atomically."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".json.tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(value, fh)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return value
