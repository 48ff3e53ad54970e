"""FID: the Fréchet distance against closed forms and pytorch-fid, the reference cache, the metric in
runs with and without the [fid] extra, the offline weights error, and the whole path with real weights."""
from __future__ import annotations

import inspect
import sys
import types

import numpy as np
import pytest

from plasticity_kit.datasets.base import Data
from plasticity_kit.metrics import features, inception
from plasticity_kit.metrics.base import MetricContext, MetricUnavailable
from plasticity_kit.metrics.fid import FID, frechet_distance, frechet_distance_features, read_statistics
from plasticity_kit.runner import execute
from plasticity_kit.spec import resolve

from helpers import tiny_spec



@pytest.fixture(scope="module")
def torch_fid():
    """(torch, pytorch_fid.inception), or skip: the [fid] extra is optional."""
    try:
        return inception.load_pytorch_fid()
    except MetricUnavailable as exc:
        pytest.skip(f"the [fid] extra is not usable here: {exc}")


def correlated(rng, n, d, scale=1.0, shift=0.0):
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * scale / np.sqrt(d) + shift


# --- the distance -------------------------------------------------------------------------------

def test_frechet_distance_of_diagonal_gaussians_has_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=7), rng.normal(size=7)
    a, b = rng.uniform(0.1, 3, 7), rng.uniform(0.1, 3, 7)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    # rotating both Gaussians by the same orthogonal matrix leaves the distance unchanged
    Q, _ = np.linalg.qr(rng.normal(size=(7, 7)))
    rotated = frechet_distance(Q @ mu1, Q @ np.diag(a) @ Q.T, Q @ mu2, Q @ np.diag(b) @ Q.T)
    assert rotated == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n1,n2,d", [(300, 400, 32), (21, 400, 64), (64, 64, 64)])
def test_feature_path_equals_statistics_path(n1, n2, d):
    rng = np.random.default_rng(n1)
    f1, f2 = correlated(rng, n1, d), correlated(rng, n2, d, 1.5, 0.3)
    stats = frechet_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))
    # rank-deficient Σ (n < d): the d×d path carries ~√ε noise from its zero eigenvalues
    assert frechet_distance_features(f1, f2) == pytest.approx(stats, rel=1e-9 if min(n1, n2) > d else 1e-7)


def test_identical_sets_give_zero():
    f = correlated(np.random.default_rng(1), 50, 64)
    assert abs(frechet_distance_features(f, f)) < 1e-9 * np.trace(np.cov(f, rowvar=False))
    mu, sigma = f.mean(0), np.cov(f, rowvar=False)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9 * np.trace(sigma)


def test_distance_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="2 samples"):
        frechet_distance_features(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


@pytest.fixture
def pytorch_fid_distance(torch_fid, monkeypatch):
    """pytorch-fid's calculate_frechet_distance, with scipy ≥ 1.18's sqrtm (no `disp`) shimmed."""
    from pytorch_fid import fid_score
    from scipy import linalg

    if "disp" not in inspect.signature(linalg.sqrtm).parameters:
        sqrtm = linalg.sqrtm
        monkeypatch.setattr(linalg, "sqrtm", lambda A, disp=True, **kw: (sqrtm(A, **kw), 0.0) if not disp else sqrtm(A, **kw))
    return fid_score.calculate_frechet_distance


@pytest.mark.parametrize("n1,n2,d", [(300, 400, 32), (21, 400, 64), (64, 400, 64), (40, 60, 192)])
def test_equals_pytorch_fid(pytorch_fid_distance, n1, n2, d):
    rng = np.random.default_rng(d + n1)
    f1, f2 = np.abs(correlated(rng, n1, d)), np.abs(correlated(rng, n2, d, 1.2, 0.2))  # ReLU-like features
    mu1, s1, mu2, s2 = f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False)
    expected = pytorch_fid_distance(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance_features(f1, f2) == pytest.approx(expected, rel=1e-6)


# --- reference set and cache (Inception replaced by a cheap deterministic map) -------------------

class FakeInception:
    """Stands in for the Inception network: features = fixed projection of the pixels; counts images."""

    def __init__(self):
        self.images = 0

    def __call__(self, images, dims=2048, **_):
        self.images += len(images)
        flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
        proj = np.random.default_rng(dims).normal(size=(flat.shape[1], dims))
        return np.abs(flat @ proj)


@pytest.fixture
def fake_inception(monkeypatch, tmp_path):
    fake = FakeInception()
    monkeypatch.setattr(features, "inception_features", fake)
    monkeypatch.setattr(features, "_FEATURES", {})
    monkeypatch.setenv("PLASTICITY_KIT_CACHE", str(tmp_path / "cache"))
    return fake


def small_data(indices, checksum="abc"):
    rng = np.random.default_rng(7)
    full = rng.random((30, 8 * 8))
    idx = np.asarray(indices)
    return Data(X=full[idx], name="toy", indices=idx, image_shape=(8, 8), checksum=checksum)


def test_reference_features_cached_on_disk_by_identity_and_dims(fake_inception, tmp_path):
    data = small_data(range(12))
    first = features.reference_features(data, dims=64)
    assert fake_inception.images == 12
    features._FEATURES.clear()  # a new process: only the disk cache is left
    again = features.reference_features(data, dims=64)
    assert fake_inception.images == 12 and np.array_equal(first, again)
    files = sorted((tmp_path / "cache" / "fid").glob("*.npz"))
    assert len(files) == 1
    mu, sigma = read_statistics(str(files[0]), 64)  # the cache file is a pytorch-fid statistics file
    assert np.allclose(mu, first.mean(0)) and np.allclose(sigma, np.cov(first, rowvar=False))

    features.reference_features(small_data(range(1, 13)), dims=64)      # other indices
    features.reference_features(small_data(range(12), "other"), dims=64)  # other file contents
    features.reference_features(data, dims=192)                         # other dims
    assert fake_inception.images == 48
    assert len(list((tmp_path / "cache" / "fid").glob("*.npz"))) == 4


def run_context(tmp_path, reference="training", **params):
    spec = resolve(tiny_spec(tmp_path))
    data = spec.dataset.load(np.random.default_rng(0))
    rule = spec.build_rule(data.X.shape[1])
    state = rule.init_state(np.random.default_rng(1))
    return MetricContext(rule=rule, state=state, data=data, spec=spec, step=0, epoch=0), FID(dims=64, reference=reference, **params)


def test_fid_metric_scores_synthetic_images_against_the_reference(fake_inception, tmp_path):
    ctx, metric = run_context(tmp_path, "training")
    images = ctx.rule.synthesize(ctx.state).reshape(-1, 64, 64)
    expected = frechet_distance_features(fake_inception(images, 64), fake_inception(ctx.data.X.reshape(-1, 64, 64), 64))
    values = metric.compute(ctx)
    assert values["fid"] == pytest.approx(expected, rel=1e-9) and values["n_images"] == 5

    whole = FID(dims=64, reference="dataset").compute(ctx)  # all 400 faces, not the 20 trained on
    ref400 = fake_inception(features.whole_dataset(ctx.spec).X.reshape(-1, 64, 64), 64)
    assert whole["fid"] == pytest.approx(frechet_distance_features(fake_inception(images, 64), ref400), rel=1e-9)

    stats = tmp_path / "stats.npz"
    ref = fake_inception(ctx.data.X.reshape(-1, 64, 64), 64)
    np.savez(stats, mu=ref.mean(0), sigma=np.cov(ref, rowvar=False))
    from_npz = FID(dims=64, reference="npz", reference_stats=str(stats)).compute(ctx)
    assert from_npz["fid"] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(MetricUnavailable, match="expected dims 192"):
        FID(dims=192, reference="npz", reference_stats=str(stats)).compute(ctx)


def test_fid_options_are_checked():
    from plasticity_kit.errors import SpecError

    with pytest.raises(SpecError, match="fid.dims: expected one of 64, 192, 768, 2048, got 100"):
        FID(_key="fid", dims=100)
    with pytest.raises(SpecError, match="reference_stats: missing"):
        FID(reference="npz")


def test_middle_neuron_alone_cannot_give_a_fid(fake_inception, tmp_path):
    ctx, _ = run_context(tmp_path)
    with pytest.raises(MetricUnavailable, match="at least 2 synthetic images.*--pool"):
        FID(dims=64, neurons="middle", reference="training").compute(ctx)


# --- runs with and without the extra -----------------------------------------------------------

def test_run_without_the_extra_completes_and_says_so_once(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails as if not installed
    raw = tiny_spec(tmp_path, metrics=[{"name": "fid", "params": {"dims": 64}, "every": 3}, "network"])
    lines = []
    result = execute(resolve(raw), progress=False, log=lines.append)
    assert result.status == "completed"
    skipped = [line for line in lines if "skipped" in line]
    assert len(skipped) == 1
    assert "'fid'" in skipped[0] and 'pip install -e ".[fid]"' in skipped[0]
    assert "fid" not in result.metrics and "overlap_index" in result.metrics["network"]


def test_torchvision_fallback_only_when_its_ops_cannot_load(tmp_path, monkeypatch):
    (tmp_path / "_C.so").write_bytes(b"")
    monkeypatch.setattr(inception.importlib.util, "find_spec",
                        lambda name: types.SimpleNamespace(submodule_search_locations=[str(tmp_path)]))
    declared = []

    class Library:
        def __init__(self, ns, kind):
            declared.append((ns, kind))

        def define(self, schema):
            declared.append(schema)

    def fake_torch(load):
        return types.SimpleNamespace(ops=types.SimpleNamespace(load_library=load),
                                     library=types.SimpleNamespace(Library=Library))

    declare = inception._declare_torchvision_ops_if_unloadable
    real = declare.__dict__.pop("library", None)  # a declaration this process may have made for real
    try:
        declare(fake_torch(lambda path: None))
        assert declared == []  # matching builds: nothing is touched

        def broken(path):
            raise OSError(f"Could not load this library: {path}")

        declare(fake_torch(broken))
        assert declared[0] == ("torchvision", "DEF")
        assert declared[1:] == [f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
                                for op in ("nms", "qnms")]
        declare(fake_torch(broken))  # declared once per process only
        assert len(declared) == 3
    finally:
        declare.__dict__.pop("library", None)
        if real is not None:
            declare.library = real


def test_offline_without_weights_says_where_to_put_them(torch_fid, tmp_path, monkeypatch):
    torch, module = torch_fid
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(inception, "_MODELS", {})

    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(module, "load_state_dict_from_url", offline)
    expected = str(tmp_path / "torch" / "hub" / "checkpoints" / inception.WEIGHTS_FILE)
    with pytest.raises(MetricUnavailable) as info:
        inception.inception_model(64)
    message = str(info.value)
    assert expected in message and inception.WEIGHTS_URL in message and "'weights'" in message
    with pytest.raises(MetricUnavailable, match="params.weights: FID Inception weights file not found"):
        inception.inception_model(64, weights=str(tmp_path / "missing.pth"))


# --- the whole path with the real weights ------------------------------------------------------

@pytest.fixture(scope="module")
def fid_weights(torch_fid, shared_data):
    path = shared_data / "fid" / inception.WEIGHTS_FILE
    if not path.exists():
        pytest.skip(f"FID Inception weights not found: {path}")
    return path


def test_real_weights_match_pytorch_fid_on_image_files(fid_weights, tmp_path, monkeypatch, pytorch_fid_distance):
    """pytorch-fid's own pipeline (PNG files → its InceptionV3 via torch hub's cache → its FID)
    against ours (arrays in [0, 1] → grey replicated to RGB → features → our distance)."""
    from PIL import Image
    from pytorch_fid.fid_score import calculate_fid_given_paths

    from plasticity_kit.datasets.olivetti import bundled_path, read_faces

    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / inception.WEIGHTS_FILE).symlink_to(fid_weights)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(inception, "_MODELS", {})

    faces = read_faces(bundled_path())
    sets = {"a": faces[0:40:4], "b": faces[200:240:3]}  # 10 and 14 faces of different people
    for name, imgs in sets.items():
        (tmp_path / name).mkdir()
        for i, img in enumerate(imgs):
            Image.fromarray(img).save(tmp_path / name / f"{i:03d}.png")
    theirs = calculate_fid_given_paths([str(tmp_path / "a"), str(tmp_path / "b")], batch_size=50,
                                       device="cpu", dims=64, num_workers=0)
    fa = inception.inception_features(sets["a"] / 255.0, 64, device="cpu")  # weights from torch hub's cache
    fb = inception.inception_features(sets["b"] / 255.0, 64, device="cpu", batch_size=5)
    assert fa.shape == (10, 64) and np.all(fa >= 0)
    assert frechet_distance_features(fa, fb) == pytest.approx(theirs, rel=1e-5)
    assert frechet_distance_features(fa, fa) == pytest.approx(0.0, abs=1e-6 * theirs)

    # the same weights given as a path, through the metric in a run
    raw = tiny_spec(tmp_path, metrics=[{"name": "fid", "params": {
        "dims": 64, "reference": "training", "weights": str(fid_weights), "cache_dir": str(tmp_path / "cache")}}])
    raw["schedule"]["epochs"] = 2
    result = execute(resolve(raw), progress=False, log=lambda *a: None)
    assert result.status == "completed"
    images = result.rule.synthesize(result.state).reshape(-1, 64, 64)
    ours = frechet_distance_features(inception.inception_features(images, 64, weights=str(fid_weights)),
                                     inception.inception_features(result.data.X.reshape(-1, 64, 64), 64,
                                                                  weights=str(fid_weights)))
    assert result.metrics["fid"]["fid"] == pytest.approx(ours, rel=1e-9)
    assert len(list((tmp_path / "cache" / "fid").glob("olivetti-d64-[0-9a-f]*.npz"))) == 1  # stored scaling; not -minmax-
