"""FID cost on the reference study's problem: 64 synthetic 64×64 grey images against all 400 Olivetti faces.

    python benchmarks/bench_fid.py --weights PATH/pt_inception-2015-12-05-6726825d.pth
    python benchmarks/bench_fid.py --dims 64            # only dims 64 (skips the slow 2048 reference)

Needs the [fid] extra.  Weights: ``--weights``, else ``$PLASTICITY_KIT_FID_WEIGHTS``, else torch hub's
cache.  The 64 "synthetic" images are Olivetti faces with noise added (the content does not change
the cost).  Rows, per dims:

  reference once   Inception features of the 400 faces, written to a fresh on-disk cache
  reference cached the same call answered from the cache in a new process (in-process memo cleared)
  score 64         what a run's metric costs once the reference is cached: 64 images through
                   Inception (batches of 50) + the Fréchet distance from the features
  features b=1     the 64 images one at a time (the baseline for batching)
  distance (ours)  Fréchet distance: n×n SVD of the centred cross-features (feature path) and
                   the d×d eigh path from mu/sigma
  distance (pytorch-fid)  its ``calculate_frechet_distance`` (scipy ``sqrtm``) on the same mu/sigma:
                   the baseline; the ratio column is baseline / row; the relative difference
                   |ours − pytorch-fid| / pytorch-fid of both our paths is printed below the table
  floor            FID + KID of 10 random subsets of 64 real faces (min-max scaled, their features
                   computed once) against the 400: the real floor the ``fid`` metric reports

Timings are medians over ``--repeats`` (except the once-only rows).  torch uses its default thread
count (printed).
"""
from __future__ import annotations

import argparse
import inspect
import os
import statistics
import sys
import tempfile
import time

import numpy as np


def timed(fn, repeats=1):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=os.environ.get("PLASTICITY_KIT_FID_WEIGHTS"))
    ap.add_argument("--dims", default="64,2048")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    from plasticity_kit.datasets.olivetti import Olivetti
    from plasticity_kit.metrics import features, inception
    from plasticity_kit.metrics.fid import frechet_distance, frechet_distance_features

    t0 = time.perf_counter()
    torch, _ = inception.load_pytorch_fid()
    import_s = time.perf_counter() - t0
    from pytorch_fid.fid_score import calculate_frechet_distance
    from scipy import linalg

    if "disp" not in inspect.signature(linalg.sqrtm).parameters:  # scipy ≥ 1.18 dropped it
        sqrtm = linalg.sqrtm
        linalg.sqrtm = lambda A, disp=True: (sqrtm(A), 0.0) if not disp else sqrtm(A)

    data = Olivetti().load(np.random.default_rng(0))
    rng = np.random.default_rng(1)
    synthetic = np.clip(data.X[rng.choice(400, 64, replace=False)] + rng.normal(0, 0.05, (64, 4096)), 0, 1)
    synthetic = synthetic.reshape(64, 64, 64)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; import torch + pytorch-fid {import_s:.1f} s; "
          f"weights: {args.weights or 'torch hub cache'}")
    rows, rel = [], []
    with tempfile.TemporaryDirectory() as cache:
        for dims in (int(d) for d in args.dims.split(",")):
            t = time.perf_counter()
            inception.inception_model(dims, args.weights)
            rows.append((dims, "load network", time.perf_counter() - t, None))
            kw = dict(dims=dims, weights=args.weights, cache_dir=cache)
            once, ref = timed(lambda: features.reference_features(data, **kw))
            rows.append((dims, "reference once (400 images)", once, None))
            features._FEATURES.clear()
            cached, _ = timed(lambda: (features._FEATURES.clear(), features.reference_features(data, **kw))[1],
                              args.repeats)
            rows.append((dims, "reference cached (disk)", cached, None))

            def score():
                f = inception.inception_features(synthetic, dims, weights=args.weights)
                return frechet_distance_features(f, ref)

            score_s, value = timed(score, args.repeats)
            rows.append((dims, f"score 64 images (FID {value:.4g})", score_s, None))
            b1, _ = timed(lambda: inception.inception_features(synthetic, dims, weights=args.weights, batch_size=1))
            rows.append((dims, "features of 64, batch 1", b1, None))

            f = inception.inception_features(synthetic, dims, weights=args.weights)
            mu1, s1, mu2, s2 = f.mean(0), np.cov(f, rowvar=False), ref.mean(0), np.cov(ref, rowvar=False)
            base, theirs = timed(lambda: calculate_frechet_distance(mu1, s1, mu2, s2), args.repeats)
            feat, ours_f = timed(lambda: frechet_distance_features(f, ref), args.repeats)
            eig, ours_s = timed(lambda: frechet_distance(mu1, s1, mu2, s2), args.repeats)
            rows.append((dims, f"distance, pytorch-fid sqrtm ({theirs:.6g})", base, base))
            rows.append((dims, f"distance, ours feature path ({ours_f:.6g})", feat, base))
            rows.append((dims, f"distance, ours eigh path ({ours_s:.6g})", eig, base))
            rel.append((dims, abs(ours_f - theirs) / abs(theirs), abs(ours_s - theirs) / abs(theirs)))
            from plasticity_kit.metrics.floor import real_floor

            minmax = features.reference_features(data, scaling="minmax", **kw)
            fl_s, fl = timed(lambda: real_floor(minmax, ref, 64, 10, 0), args.repeats)
            rows.append((dims, f"floor, 10 draws of 64 ({fl['fid_mean']:.4g} ± {fl['fid_sd']:.2g})", fl_s, None))

    print(f"\n{'dims':>5}  {'what':<52} {'seconds':>10} {'ratio':>8}")
    for dims, what, sec, base in rows:
        ratio = f"{base / sec:8.1f}" if base else ""
        print(f"{dims:>5}  {what:<52} {sec:10.4f} {ratio:>8}")
    for dims, feat_rel, eig_rel in rel:
        print(f"dims {dims}: |ours − pytorch-fid| / pytorch-fid: feature path {feat_rel:.2e}, eigh path {eig_rel:.2e}")
    print(f"load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
