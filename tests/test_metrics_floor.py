"""Image scores with their real floor, and the diversity / memorisation metrics: the low-rank FID
against pytorch-fid at Inception size, the floor against a plain recomputation and its disk cache,
one Inception pass per run, and distinct identities, memorisation ratio and authenticity against
loops and constructed cases (copies of training faces)."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from plasticity_kit.metrics import features, inception
from plasticity_kit.metrics.authenticity import Authenticity, alpha_beta_authenticity
from plasticity_kit.metrics.base import MetricContext, MetricUnavailable
from plasticity_kit.metrics.diversity import Identities, nearest_labels
from plasticity_kit.metrics.fid import FID, frechet_distance, frechet_distance_features
from plasticity_kit.metrics.floor import cached_floor, draw_subsets, real_floor
from plasticity_kit.metrics.kid import KID, kernel_inception_distance
from plasticity_kit.metrics.memorisation import Memorisation, memorisation, nearest, nearest_other, similarity
from plasticity_kit.rules.base import minmax_rows
from plasticity_kit.spec import resolve

from helpers import tiny_spec


# --- low-rank FID against pytorch-fid at Inception size --------------------------------------------

@pytest.fixture
def pytorch_fid_distance(monkeypatch):
    try:
        inception.load_pytorch_fid()  # torch, and torchvision's ops declared where they cannot load
    except MetricUnavailable as exc:  # the [fid] extra is optional
        pytest.skip(f"the [fid] extra is not usable here: {exc}")
    from pytorch_fid import fid_score
    from scipy import linalg

    if "disp" not in inspect.signature(linalg.sqrtm).parameters:  # scipy ≥ 1.18 dropped `disp`
        sqrtm = linalg.sqrtm
        monkeypatch.setattr(linalg, "sqrtm", lambda A, disp=True, **kw: (sqrtm(A, **kw), 0.0) if not disp else sqrtm(A, **kw))
    return fid_score.calculate_frechet_distance


def relu_features(rng, n, d, rank, scale=1.0, shift=0.0):
    """ReLU-like features with a spectrum that decays as Inception's does (effective rank ``rank``)."""
    basis = rng.normal(size=(rank, d)) / np.sqrt(rank)
    return np.abs(rng.normal(size=(n, rank)) * np.linspace(2.0, 0.1, rank) @ basis * scale + shift)


@pytest.mark.parametrize("n1,n2", [(64, 400), (400, 21)])
def test_low_rank_fid_equals_pytorch_fid(pytorch_fid_distance, n1, n2):
    # n1 < n2 (Gram matrix of the synthetic side) and n1 > n2 (of the reference side), both below d.
    # d = 768 keeps scipy's sqrtm to seconds; benchmarks/bench_fid.py repeats the check at d = 2048.
    rng = np.random.default_rng(n1)
    f1, f2 = relu_features(rng, n1, 768, 300), relu_features(rng, n2, 768, 300, 1.3, 0.1)
    expected = pytorch_fid_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))
    assert frechet_distance_features(f1, f2) == pytest.approx(expected, rel=1e-6)


def test_low_rank_fid_equals_the_dense_form_at_2048_dims():
    rng = np.random.default_rng(9)
    f1, f2 = relu_features(rng, 21, 2048, 400), relu_features(rng, 400, 2048, 400, 1.3, 0.1)
    dense = frechet_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))
    assert frechet_distance_features(f1, f2) == pytest.approx(dense, rel=1e-6)


# --- the floor ---------------------------------------------------------------------------------------

def test_floor_is_the_score_of_random_real_subsets():
    rng = np.random.default_rng(0)
    reference, candidates = rng.random((40, 16)), rng.random((40, 16)) * 1.1
    floor = real_floor(candidates, reference, count=12, draws=5, seed=3)
    subsets = draw_subsets(40, 12, 5, 3)
    assert all(len(set(s)) == 12 for s in subsets)  # without replacement
    fids = [frechet_distance_features(candidates[s], reference) for s in subsets]
    kids = [kernel_inception_distance(candidates[s], reference)[0] for s in subsets]
    assert floor["fid"] == pytest.approx(fids) and floor["kid"] == pytest.approx(kids)
    assert floor["fid_mean"] == pytest.approx(np.mean(fids)) and floor["fid_sd"] == pytest.approx(np.std(fids, ddof=1))
    assert real_floor(candidates, reference, 12, 5, 3) == floor  # seeded
    assert real_floor(candidates, reference, 12, 5, 4)["fid"] != floor["fid"]
    with pytest.raises(ValueError, match="at least 41 reference images"):
        real_floor(candidates, reference, 41)


def test_cached_floor_is_computed_once(tmp_path):
    calls = []
    compute = lambda: calls.append(1) or {"fid_mean": 1.5}  # noqa: E731
    path = tmp_path / "f" / "floor.json"
    assert cached_floor(path, compute) == {"fid_mean": 1.5}
    assert cached_floor(path, compute) == {"fid_mean": 1.5} and len(calls) == 1


def test_minmax_images_scale_as_the_synthetic_images():
    rng = np.random.default_rng(1)
    x = rng.random((3, 4, 5)) * 0.6 + 0.2
    x[2] = 0.3  # a constant image maps to mid-grey, as a constant weight vector
    assert np.array_equal(features.minmax_images(x), minmax_rows(x.reshape(3, -1)).reshape(x.shape))
    assert features.minmax_images(x)[0].min() == 0 and features.minmax_images(x)[0].max() == 1


class CountingInception:
    """A cheap deterministic stand-in for Inception (a fixed projection) that counts the images it sees."""

    def __init__(self):
        self.images = 0

    def __call__(self, images, dims=2048, **_):
        self.images += len(images)
        flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
        return np.abs(flat @ np.random.default_rng(dims).normal(size=(flat.shape[1], dims))) / 30


@pytest.fixture
def counting(monkeypatch, tmp_path):
    fake = CountingInception()
    monkeypatch.setattr(features, "inception_features", fake)
    monkeypatch.setattr(features, "_FEATURES", {})
    monkeypatch.setattr(features, "_RECENT", {})
    monkeypatch.setenv("PLASTICITY_KIT_CACHE", str(tmp_path / "cache"))
    return fake


@pytest.fixture
def ctx(tmp_path):
    spec = resolve(tiny_spec(tmp_path, **{"model.n_neurons": 7}))
    data = spec.dataset.load(np.random.default_rng(0))
    rule = spec.build_rule(data.X.shape[1])
    return MetricContext(rule=rule, state=rule.init_state(np.random.default_rng(1)), data=data, spec=spec, step=0, epoch=0)


def test_fid_reports_kid_and_the_real_floor_with_one_inception_pass(counting, ctx, tmp_path):
    out = FID(dims=64, reference="training", floor_draws=4).compute(ctx)
    images = ctx.rule.synthesize(ctx.state).reshape(-1, 64, 64)
    real = ctx.data.X.reshape(-1, 64, 64)
    fake, ref = counting(images, 64), counting(real, 64)
    minmax = counting(features.minmax_images(real), 64)
    assert out["fid"] == pytest.approx(frechet_distance_features(fake, ref), rel=1e-9)
    assert out["kid"] == pytest.approx(kernel_inception_distance(fake, ref)[0], rel=1e-9)
    floor = [frechet_distance_features(minmax[s], ref) for s in draw_subsets(20, 7, 4, 0)]
    assert out["floor_mean"] == pytest.approx(np.mean(floor)) and out["floor_sd"] == pytest.approx(np.std(floor, ddof=1))
    assert out["ratio"] == pytest.approx(out["fid"] / out["floor_mean"])
    kid_floor = [kernel_inception_distance(minmax[s], ref)[0] for s in draw_subsets(20, 7, 4, 0)]
    assert out["kid_floor_mean"] == pytest.approx(np.mean(kid_floor)) and out["n_images"] == 7

    counting.images = 0
    again = FID(dims=64, reference="training", floor_draws=4).compute(ctx)
    KID(dims=64, reference="training").compute(ctx)
    assert counting.images == 0 and again == out  # synthetic features remembered; reference and floor cached
    assert len(list((tmp_path / "cache" / "fid").glob("*-floor-minmax-n7-k4-s0.json"))) == 1
    assert "floor_mean" not in FID(dims=64, reference="training", floor_draws=0).compute(ctx)


def test_training_features_are_sliced_from_the_cached_whole_set(counting, ctx):
    whole = features.reference_features(features.whole_dataset(ctx.spec), dims=64)
    counting.images = 0
    sub = features.reference_features(ctx.data, dims=64)
    assert counting.images == 0
    assert np.allclose(sub, counting(ctx.data.X.reshape(-1, 64, 64), 64), rtol=1e-12)
    assert len(whole) == 400


# --- distinct identities ----------------------------------------------------------------------------

def test_identities_count_the_people_of_the_nearest_real_faces(ctx):
    whole = features.whole_dataset(ctx.spec)
    copies = whole.X[[0, 5, 13, 31, 37]].reshape(-1, 64, 64)  # people 0, 0, 1, 3, 3
    out = nearest_labels(features.minmax_images(copies), whole.X, whole.labels)
    assert out["distinct_identities"] == 3 and list(out["identity"]) == [0, 0, 1, 3, 3]
    assert list(out["nearest_row"]) == [0, 5, 13, 31, 37] and np.allclose(out["correlation"], 1.0)
    metric = Identities(reference="dataset").compute(ctx)
    assert metric["n_images"] == 7 and 1 <= metric["distinct_identities"] <= 7
    ctx.data.labels = None
    with pytest.raises(MetricUnavailable, match="no labels"):
        Identities(reference="training").compute(ctx)


# --- memorisation ratio -----------------------------------------------------------------------------

def test_nearest_other_excludes_the_image_itself():
    rng = np.random.default_rng(2)
    images = rng.random((9, 12, 12))
    for kind in ("ssim", "correlation"):
        sim = similarity(kind, images, images)
        expected = [max(sim[i, j] for j in range(9) if j != i) for i in range(9)]
        assert nearest_other(kind, images) == pytest.approx(expected)
        assert nearest_other(kind, images, candidates=8) == pytest.approx(expected)  # 8 others: all of them


def test_ssim_nearest_among_the_most_correlated_candidates():
    rng = np.random.default_rng(6)
    training = features.minmax_images(rng.random((30, 16, 16)))
    images = np.clip(training[[3, 17]] + 0.05 * rng.random((2, 16, 16)), 0, 1)
    exact = similarity("ssim", images, training).max(axis=1)
    assert nearest("ssim", images, training, candidates=3) == pytest.approx(exact)  # the source is the most correlated
    noise = rng.random((5, 16, 16))  # no source: the candidates' max can only fall short of the exact max
    assert np.all(nearest("ssim", noise, training, candidates=2) <= similarity("ssim", noise, training).max(axis=1))


def test_copies_of_training_images_are_memorised_and_noise_is_not():
    rng = np.random.default_rng(3)
    base = rng.random((1, 16, 16))
    training = features.minmax_images(np.clip(base + 0.4 * rng.random((6, 16, 16)), 0, 1))
    copied = memorisation(training[[0, 2, 2]], training)
    assert copied["synthetic_mean"] == pytest.approx(1.0) and copied["ratio"] > 1 and copied["above_real"] == 1.0
    noise = memorisation(rng.random((4, 16, 16)), training)
    assert noise["ratio"] < 1
    with pytest.raises(ValueError, match="at least 2 training images"):
        memorisation(training[:1], training[:1])


def test_memorisation_metric_on_a_run(ctx):
    out = Memorisation(candidates=0).compute(ctx)
    training = features.minmax_images(ctx.data.X.reshape(-1, 64, 64))
    direct = memorisation(ctx.rule.synthesize(ctx.state).reshape(-1, 64, 64), training)
    assert out["ssim_ratio"] == pytest.approx(direct["ratio"]) and out["n_images"] == 7
    assert out["correlation_real"] == pytest.approx(nearest_other("correlation", training).mean())


# --- α-precision, β-recall, authenticity ------------------------------------------------------------

def test_authenticity_matches_its_definition_loop():
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(30, 5)), rng.normal(size=(20, 5)) * 1.3
    out = alpha_beta_authenticity(real, fake)
    d = lambda a, b: np.sqrt(((a - b) ** 2).sum())  # noqa: E731
    nn = [min(d(real[i], real[k]) for k in range(30) if k != i) for i in range(30)]
    authentic = []
    for y in fake:
        i = int(np.argmin([d(y, x) for x in real]))
        authentic.append(d(y, real[i]) > nn[i])
    assert out["authenticity"] == pytest.approx(np.mean(authentic))
    radii = np.quantile([d(x, real.mean(0)) for x in real], out["alphas"])
    assert out["alpha_precision_curve"] == pytest.approx([np.mean([d(y, real.mean(0)) <= r for y in fake]) for r in radii])


def test_copies_are_not_authentic_and_a_faithful_sample_is_precise():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(200, 4))
    copies = alpha_beta_authenticity(real, real[:50])
    assert copies["authenticity"] == 0.0
    fresh = alpha_beta_authenticity(real, rng.normal(size=(200, 4)))
    assert fresh["alpha_precision"] > 0.85 and fresh["beta_recall"] > 0.3 and fresh["authenticity"] > 0.3
    far = alpha_beta_authenticity(real, rng.normal(size=(50, 4)) + 100)
    assert far["alpha_precision"] == pytest.approx(0.0, abs=1e-12) and far["authenticity"] == 1.0


def test_authenticity_metric_shares_the_inception_pass(counting, ctx):
    FID(dims=64, reference="dataset", floor_draws=0).compute(ctx)
    counting.images = 0
    out = Authenticity(dims=64).compute(ctx)
    assert counting.images == 0 and 0.0 <= out["authenticity"] <= 1.0 and out["n_images"] == 7


# --- the run prints its final scores ----------------------------------------------------------------

def test_run_prints_the_final_scores_beside_their_floor(counting, tmp_path, capsys):
    import re

    import yaml

    from plasticity_kit.cli import main

    raw = tiny_spec(tmp_path, metrics=[
        {"name": "fid", "params": {"dims": 64, "reference": "training", "floor_draws": 3}},
        "identities", "memorisation", {"name": "authenticity", "params": {"dims": 64}}, "network"])
    raw["exporters"] = ["summary"]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--set", "schedule.epochs=2"]) == 0
    out = capsys.readouterr().out
    summary = yaml.safe_load((tmp_path / "runs" / "tiny" / "summary.json").read_text())
    fid = re.search(r"^fid \(dims 64, 5 images\): (\S+)  real floor (\S+) ± (\S+)  ratio (\S+)$", out, re.M)
    assert fid, out
    assert float(fid[1]) == pytest.approx(summary["fid.fid"], rel=1e-3)
    assert float(fid[2]) == pytest.approx(summary["fid.floor_mean"], rel=1e-3)
    assert float(fid[4]) == pytest.approx(summary["fid.ratio"], abs=0.006)
    assert re.search(r"^kid: \S+ ± \S+  real floor \S+ ± \S+$", out, re.M)
    assert f"distinct identities: {summary['identities.distinct_identities']}/5" in out
    assert re.search(r"^memorisation: nearest-training SSIM [\d.]+ vs real nearest-other [\d.]+ \(ratio", out, re.M)
    assert re.search(r"^α-precision \S+  β-recall \S+  authenticity \S+ \(5 images\)$", out, re.M)
    assert re.search(r"^network: .*overlap_index = ", out, re.M)
