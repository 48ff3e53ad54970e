"""Small-sample image metrics: KID with its standard error, PRDC, and the nearest training image
(PSNR, SSIM, correlation) — each against closed forms or a plain-loop recomputation."""
from __future__ import annotations

import numpy as np
import pytest

from plasticity_kit.metrics import features
from plasticity_kit.metrics.base import MetricContext, MetricUnavailable
from plasticity_kit.metrics.kid import KID, kernel_inception_distance
from plasticity_kit.metrics.nearest import (Nearest, correlation_matrix, gaussian_window, nearest_training,
                                            psnr_matrix, ssim_matrix)
from plasticity_kit.metrics.prdc import PRDC, prdc
from plasticity_kit.spec import resolve

from helpers import tiny_spec

# --- KID ------------------------------------------------------------------------------------------


def kid_loops(x, y):
    """The unbiased MMD² written out pair by pair."""
    k = lambda a, b: (a @ b / len(a) + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_of_point_masses_is_the_kernel_distance():
    a, b = 0.7, -0.4  # every sample equal: MMD² = k(a,a) + k(b,b) − 2k(a,b), exactly
    value, se = kernel_inception_distance(np.full((5, 1), a), np.full((8, 1), b))
    assert value == pytest.approx((a * a + 1) ** 3 + (b * b + 1) ** 3 - 2 * (a * b + 1) ** 3, rel=1e-12)
    assert se == pytest.approx(0.0, abs=1e-12)


def test_kid_and_jackknife_match_loops():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(0.5, 1.0, size=(9, 3))
    value, se = kernel_inception_distance(x, y)
    assert value == pytest.approx(kid_loops(x, y), rel=1e-10)
    drop_x = np.array([kid_loops(np.delete(x, i, 0), y) for i in range(7)])
    drop_y = np.array([kid_loops(x, np.delete(y, j, 0)) for j in range(9)])
    var = 6 / 7 * ((drop_x - drop_x.mean()) ** 2).sum() + 8 / 9 * ((drop_y - drop_y.mean()) ** 2).sum()
    assert se == pytest.approx(np.sqrt(var), rel=1e-9)


def test_kid_is_unbiased_and_its_standard_error_matches_the_spread():
    rng = np.random.default_rng(1)
    same, shifted, errors = [], [], []
    for _ in range(150):
        x = rng.normal(size=(20, 4))
        same.append(kernel_inception_distance(x, rng.normal(size=(60, 4)))[0])
        v, se = kernel_inception_distance(x, rng.normal(0.6, 1.0, size=(60, 4)))
        shifted.append(v)
        errors.append(se)
    same, shifted = np.array(same), np.array(shifted)
    assert abs(same.mean()) < 3 * same.std() / np.sqrt(len(same))  # no bias at n = 20
    assert shifted.mean() > 10 * shifted.std() / np.sqrt(len(shifted))
    assert 0.7 < np.mean(errors) / shifted.std() < 1.5


def test_kid_needs_three_samples():
    with pytest.raises(ValueError, match="at least 3"):
        kernel_inception_distance(np.zeros((2, 3)), np.zeros((5, 3)))


# --- PRDC -----------------------------------------------------------------------------------------


def prdc_loops(real, fake, k):
    dist = lambda a, b: np.sqrt(((a - b) ** 2).sum())  # noqa: E731
    def radius(x, i):
        return sorted(dist(x[i], x[j]) for j in range(len(x)) if j != i)[k - 1]
    rr = [radius(real, i) for i in range(len(real))]
    fr = [radius(fake, j) for j in range(len(fake))]
    inside = [[dist(real[i], fake[j]) < rr[i] for i in range(len(real))] for j in range(len(fake))]
    return {
        "precision": np.mean([any(row) for row in inside]),
        "recall": np.mean([any(dist(real[i], fake[j]) < fr[j] for j in range(len(fake))) for i in range(len(real))]),
        "density": np.mean([sum(row) for row in inside]) / k,
        "coverage": np.mean([min(dist(real[i], fake[j]) for j in range(len(fake))) < rr[i] for i in range(len(real))]),
    }


def test_prdc_matches_loops():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(25, 3)), rng.normal(0.4, 1.2, size=(15, 3))
    for k in (1, 3, 5):
        ours, loops = prdc(real, fake, k), prdc_loops(real, fake, k)
        for key in loops:
            assert ours[key] == pytest.approx(loops[key], abs=1e-12), (k, key)


def test_prdc_of_disjoint_clusters_is_zero_and_of_the_same_set_is_one():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(30, 5))
    assert prdc(real, real + 100.0, k=3) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    same = prdc(real, real.copy(), k=3)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    # real i's open ball holds itself and its k−1 nearest neighbours: Σ over fakes = N·k, so density = 1
    assert same["density"] == pytest.approx(1.0, abs=1e-12)


def test_prdc_k_must_leave_neighbours():
    with pytest.raises(ValueError, match="k = 5"):
        prdc(np.zeros((10, 2)), np.zeros((5, 2)), k=5)


# --- nearest training image: PSNR, SSIM, correlation -----------------------------------------------


def ssim_loops(x, y, size=11, sigma=1.5):
    """Wang et al. 2004, one window position at a time."""
    g = gaussian_window(size, sigma)
    w = np.outer(g, g)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    values = []
    for r in range(x.shape[0] - size + 1):
        for c in range(x.shape[1] - size + 1):
            a, b = x[r:r + size, c:c + size], y[r:r + size, c:c + size]
            ma, mb = (w * a).sum(), (w * b).sum()
            va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
            cov = (w * (a - ma) * (b - mb)).sum()
            values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return np.mean(values)


def test_ssim_matches_window_by_window_loops():
    rng = np.random.default_rng(4)
    a, b = rng.random((3, 16, 14)), rng.random((2, 16, 14))
    b[1] = np.clip(a[0] * 0.8 + 0.1 * rng.random((16, 14)), 0, 1)
    ours = ssim_matrix(a, b)
    for i in range(3):
        for j in range(2):
            assert ours[i, j] == pytest.approx(ssim_loops(a[i], b[j]), rel=1e-9)
    assert ours[0, 1] > 0.5 > ours[1, 1]


def test_ssim_closed_forms():
    rng = np.random.default_rng(5)
    x = rng.random((1, 20, 20))
    assert ssim_matrix(x, x)[0, 0] == pytest.approx(1.0, abs=1e-12)
    p, q = 0.2, 0.7  # constant images: no variance, SSIM = (2pq + C1) / (p² + q² + C1)
    c1 = 0.01 ** 2
    value = ssim_matrix(np.full((1, 12, 12), p), np.full((1, 12, 12), q))[0, 0]
    assert value == pytest.approx((2 * p * q + c1) / (p * p + q * q + c1), rel=1e-12)
    colour = rng.random((2, 12, 12, 3))  # channels are averaged
    per_channel = np.mean([ssim_matrix(colour[:1, ..., c], colour[1:, ..., c])[0, 0] for c in range(3)])
    assert ssim_matrix(colour[:1], colour[1:])[0, 0] == pytest.approx(per_channel, rel=1e-12)


def test_psnr_and_correlation_closed_forms():
    rng = np.random.default_rng(6)
    x = rng.random((1, 50))
    y = np.clip(x + 0.1, None, None)  # MSE = 0.01 → PSNR = 20 dB
    assert psnr_matrix(x, y)[0, 0] == pytest.approx(20.0, rel=1e-12)
    assert psnr_matrix(x, x)[0, 0] == np.inf
    assert correlation_matrix(x, 3 * x + 1)[0, 0] == pytest.approx(1.0, rel=1e-12)
    assert correlation_matrix(x, 1 - x)[0, 0] == pytest.approx(-1.0, rel=1e-12)
    assert correlation_matrix(x, np.ones((1, 50)))[0, 0] == 0.0


def test_nearest_finds_the_memorised_training_image():
    rng = np.random.default_rng(7)
    training = rng.random((10, 16, 16))
    synthetic = np.stack([training[6], np.clip(training[2] * 0.9 + 0.05, 0, 1), rng.random((16, 16))])
    out = nearest_training(synthetic, training)
    assert out["psnr"][0] == np.inf and out["ssim"][0] == pytest.approx(1.0) and out["correlation"][0] == pytest.approx(1.0)
    for key in ("psnr", "ssim", "correlation"):
        assert list(out[f"{key}_index"][:2]) == [6, 2]
    assert out["correlation"][2] < 0.3 and out["ssim"][2] < 0.3
    assert out["ssim_mean"] == pytest.approx(out["ssim"].mean())


# --- the metrics inside a run context ---------------------------------------------------------------


@pytest.fixture
def ctx(tmp_path):
    spec = resolve(tiny_spec(tmp_path))
    data = spec.dataset.load(np.random.default_rng(0))
    rule = spec.build_rule(data.X.shape[1])
    state = rule.init_state(np.random.default_rng(1))
    state["weights"][:2] = data.X[[3, 11]]  # two neurons memorised faces 3 and 11 of the training set
    return MetricContext(rule=rule, state=state, data=data, spec=spec, step=0, epoch=0)


def test_nearest_metric_reports_data_set_indices(ctx):
    out = Nearest(reference="training").compute(ctx)
    assert list(out["correlation_index"][:2]) == list(ctx.data.indices[[3, 11]])
    assert out["correlation"][:2] == pytest.approx([1.0, 1.0])
    whole = Nearest(reference="dataset").compute(ctx)
    assert list(whole["ssim_index"][:2]) == list(ctx.data.indices[[3, 11]])


def test_prdc_metric_on_pixels_against_training_data(ctx):
    images = ctx.rule.synthesize(ctx.state)
    expected = prdc(ctx.data.X, images, 2)
    assert PRDC(features="pixels", k=2, reference="training").compute(ctx) == expected
    with pytest.raises(MetricUnavailable, match="params.k"):
        PRDC(features="pixels", k=5, reference="training").compute(ctx)


def test_kid_metric_uses_the_shared_reference_features(ctx, monkeypatch, tmp_path):
    fake = lambda images, dims=2048, **_: np.asarray(images).reshape(len(images), -1)[:, :dims] * 10  # noqa: E731
    monkeypatch.setattr(features, "inception_features", fake)
    monkeypatch.setattr(features, "_FEATURES", {})
    out = KID(dims=64, reference="training", cache_dir=str(tmp_path / "cache")).compute(ctx)
    images = ctx.rule.synthesize(ctx.state)
    value, se = kernel_inception_distance(fake(images, 64), fake(ctx.data.X, 64))
    assert out == {"kid": pytest.approx(value), "kid_se": pytest.approx(se), "n_images": 5}
