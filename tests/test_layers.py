"""Layered models (plasticity_kit.model): the spec's model.layers, the stages against their
definitions, a convolutional layer against the numpy reference of its rule on patches, greedy and
simultaneous schedules, the run file's layers/<i>/… state, determinism, and the linear probe's
untrained twin."""
import os
import re

import h5py
import numpy as np
import pytest

from plasticity_kit.errors import SpecError
from plasticity_kit.metrics.base import MetricContext
from plasticity_kit.metrics.linear_probe import LinearProbe
from plasticity_kit.model.conv import Geometry, im2col_reference
from plasticity_kit.model.stages import STAGES, AvgPool, BatchNorm, LocalResponseNorm, MaxPool
from plasticity_kit.plugins import build_registry
from plasticity_kit.rules.softhebb import reference_step
from plasticity_kit.runner import execute
from plasticity_kit.spec import resolve
from plasticity_kit.testing import array_dataset

X = np.random.default_rng(0).random((24, 100))
LABELS = np.arange(24) % 3
REG = build_registry(extra_plugins=[array_dataset(X, name="tiny", image_shape=(10, 10), labels=LABELS)])
SOFTHEBB = {"rule": {"name": "softhebb", "params": {"learning_rate": 0.05}}, "n_neurons": 6,
            "conv": {"kernel": 3, "padding": 1}}
TWO_LAYERS = [
    {"stage": "batch_norm"},
    SOFTHEBB,
    {"stage": "activation", "params": {"function": "triangle", "power": 0.7}},
    {"stage": "max_pool", "params": {"size": 4, "stride": 2, "padding": 1}},
    {"rule": {"name": "krotov_hopfield", "params": {"k": 2}}, "n_neurons": 4, "conv": {"kernel": 3, "stride": 2}},
    {"stage": "avg_pool", "params": {"size": 2}},
]


def spec_dict(layers, tmp_path=None, epochs=2, training="greedy", **model):
    raw = {"name": "stack", "data": {"name": "tiny"}, "exporters": [],
           "model": {"layers": layers, "training": training, **model},
           "schedule": {"epochs": epochs, "batch_size": 8, "seed": 3}}
    if tmp_path is not None:
        raw["output"] = {"dir": str(tmp_path)}
    return raw


def build(layers, **kw):
    spec = resolve(spec_dict(layers, **kw), reg=REG)
    return spec, spec.build_rule(100)


def test_resolved_spec_round_trips_and_names_layer_fields():
    spec, rule = build(TWO_LAYERS)
    again = resolve({**spec.resolved, "output": spec.resolved["output"]}, reg=REG)
    assert again.resolved == spec.resolved
    assert spec.resolved["model"]["rule"] == {"name": "stack", "params": {}}
    assert spec.resolved["model"]["n_neurons"] == 4
    assert spec.record["fields"] == ["layers/1/weights", "layers/4/weights"]
    assert rule.output_shape == (1, 1, 4) and rule.transform(rule.init_state(np.random.default_rng(0)), X).shape == (24, 4)
    state = rule.init_state(np.random.default_rng(0))
    assert state["layers/1/weights"].shape == (6, 9) and state["layers/4/weights"].shape == (4, 54)
    assert set(state) == {"epoch", "layers/0/mean", "layers/0/var", "layers/0/count", "layers/1/weights",
                          "layers/4/weights", "layers/4/epoch"}


@pytest.mark.parametrize("change,key,message", [
    (lambda m: m["layers"].append({"stage": "max_pol"}), "model.layers[6].stage", "expected one of max_pool"),
    (lambda m: m.update(rule="bcm"), "model.rule", "not allowed beside model.layers"),
    (lambda m: m.update(training="greedyy"), "model.training",
     "expected one of 'greedy', 'simultaneous', got 'greedyy' (did you mean 'greedy'?)"),
    (lambda m: m["layers"][1]["conv"].update(kernel=0), "model.layers[1].conv.kernel", "expected an integer"),
    (lambda m: m["layers"][1].update(optimizer="adam"), "model.layers[1].optimizer", "does not use an optimizer"),
    (lambda m: m.update(layers=[{"stage": "batch_norm"}]), "model.layers", "at least one learned layer"),
    (lambda m: m["layers"][1].pop("n_neurons"), "model.layers[1].n_neurons", ""),
])
def test_spec_errors_name_the_key(change, key, message):
    raw = spec_dict([dict(entry, **({"conv": dict(entry["conv"])} if "conv" in entry else {})) for entry in TWO_LAYERS])
    change(raw["model"])
    with pytest.raises(SpecError) as info:
        resolve(raw, reg=REG)
    assert info.value.key == key and message in str(info.value)


def test_errors_known_once_sizes_are():
    with pytest.raises(SpecError, match="does not fit the 10×10 maps"):
        build([{**SOFTHEBB, "conv": {"kernel": 11}}])
    with pytest.raises(SpecError) as info:
        build(TWO_LAYERS, epochs=3)
    assert info.value.key == "schedule.epochs" and "multiple of the 2 learned layers" in str(info.value)
    with pytest.raises(SpecError, match="expected 100 values"):
        build([SOFTHEBB], input_shape=[5, 5, 1])


def test_conv_layer_steps_its_rule_on_patches():
    """One step of a SoftHebb conv layer = the numpy reference step on the batch's patches."""
    _, rule = build([SOFTHEBB], epochs=1)
    state = rule.init_state(np.random.default_rng(1))
    W = state["layers/0/weights"].astype(np.float64)
    batch = X[:8].astype(np.float32)
    rule.step(state, batch)
    reference_step(W, im2col_reference(batch.astype(np.float64), Geometry(10, 10, 1, 3, 1, 1)), 0.05, 1.0, 0.5)
    np.testing.assert_allclose(state["layers/0/weights"], W, rtol=1e-4, atol=1e-5)


def test_greedy_trains_one_layer_per_epoch_block_and_simultaneous_all():
    _, rule = build(TWO_LAYERS, epochs=2)
    state = rule.init_state(np.random.default_rng(0))
    w1, w4 = state["layers/1/weights"].copy(), state["layers/4/weights"].copy()
    rule.step(state, X[:8])
    assert not np.array_equal(state["layers/1/weights"], w1) and np.array_equal(state["layers/4/weights"], w4)
    rule.end_epoch(state, 1)
    w1 = state["layers/1/weights"].copy()
    rule.step(state, X[8:16])
    assert np.array_equal(state["layers/1/weights"], w1) and not np.array_equal(state["layers/4/weights"], w4)
    _, both = build(TWO_LAYERS, training="simultaneous")
    state = both.init_state(np.random.default_rng(0))
    w1, w4 = state["layers/1/weights"].copy(), state["layers/4/weights"].copy()
    both.step(state, X[:8])
    assert not np.array_equal(state["layers/1/weights"], w1) and not np.array_equal(state["layers/4/weights"], w4)


def stage(cls, shape, **params):
    return cls(cls.options.validate(params, "p"), shape, "model.layers[0]")


def test_pooling_by_definition():
    x = np.random.default_rng(2).normal(size=(2, 7, 7, 3))
    m = stage(MaxPool, (7, 7, 3), size=3, stride=2, padding=1)
    a = stage(AvgPool, (7, 7, 3), size=3, stride=2, padding=1)
    assert m.out_shape((7, 7, 3)) == (4, 4, 3)
    ym, ya = m.forward({}, x, False), a.forward({}, x, False)
    for i in range(4):
        for j in range(4):
            window = x[:, max(2 * i - 1, 0):2 * i + 2, max(2 * j - 1, 0):2 * j + 2]
            np.testing.assert_allclose(ym[:, i, j], window.max(axis=(1, 2)))
            np.testing.assert_allclose(ya[:, i, j], window.mean(axis=(1, 2)))


def test_activation_batch_norm_and_lrn():
    x = np.random.default_rng(3).normal(size=(4, 3, 3, 5))
    tri = stage(STAGES["activation"], (3, 3, 5), function="triangle", power=2.0).forward({}, x, False)
    np.testing.assert_allclose(tri, np.maximum(x - x.mean(axis=3, keepdims=True), 0) ** 2)
    bn = stage(BatchNorm, (3, 3, 5), momentum=0.5)
    state = bn.init_state(np.float64)
    y = bn.forward(state, x, True)
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(state["mean"], x.mean(axis=(0, 1, 2)))  # the first batch sets the statistics
    bn.forward(state, x + 2, True)
    np.testing.assert_allclose(state["mean"], x.mean(axis=(0, 1, 2)) + 1)  # then m = 0.5 of each batch
    lrn = stage(LocalResponseNorm, (3, 3, 5), size=3, alpha=0.3, beta=0.75, k=1.0).forward({}, x, False)
    for c in range(5):
        around = (x[..., max(c - 1, 0):c + 2] ** 2).sum(axis=3)
        np.testing.assert_allclose(lrn[..., c], x[..., c] / (1 + 0.1 * around) ** 0.75)


def test_run_file_holds_every_layer_and_runs_are_deterministic(tmp_path):
    finals = []
    for run in ("a", "b"):
        raw = spec_dict(TWO_LAYERS, tmp_path / run)
        raw["exporters"] = ["layer_fields"] if run == "a" else []
        spec = resolve(raw, reg=REG)
        result = execute(spec, progress=False, log=lambda *a: None)
        path = os.path.join(tmp_path, run, "stack", "run.h5")
        with h5py.File(path, "r") as f:
            assert f.attrs["status"] == "completed"
            assert f["final/layers/1/weights"].shape == (6, 9) and f["final/layers/0/mean"].shape == (1,)
            assert f["trajectory/layers/4/weights"].shape[1:] == (4, 54)
            assert f["final/synthetic_images"].shape == (6, 100)
            finals.append({k: f["final/layers/" + k][()] for k in ("1/weights", "4/weights", "0/var")})
        np.testing.assert_array_equal(result.state["layers/4/weights"], finals[-1]["4/weights"])
        if run == "a":
            assert sorted(p.name for p in result.outputs if p.suffix == ".png") == ["layer1_fields.png",
                                                                                   "layer4_fields.png"]
    for k in finals[0]:
        np.testing.assert_array_equal(finals[0][k], finals[1][k])


def test_synthesize_draws_first_layer_filters_at_the_centre():
    _, rule = build(TWO_LAYERS)
    state = rule.init_state(np.random.default_rng(0))
    images = rule.synthesize(state).reshape(6, 10, 10)
    W = state["layers/1/weights"]
    expected = 0.5 + 0.5 * W / np.abs(W).max(axis=1, keepdims=True)
    np.testing.assert_allclose(images[:, 3:6, 3:6].reshape(6, 9), expected, rtol=1e-6)
    assert (np.delete(images.reshape(6, -1), [33, 34, 35, 43, 44, 45, 53, 54, 55], axis=1) == 0.5).all()
    assert rule.synthesized == "layer 1's 6 3×3 filters"  # the title of synthetic.png (not the top layer's 4)


def test_linear_probe_untrained_twin_is_the_initial_state(tmp_path):
    """At the initial state (statistics fitted as the twin's are), the twin's read-out is the probe's own."""
    np.savez(tmp_path / "tiny.npz", images=X.reshape(24, 10, 10), labels=LABELS)
    test = {"name": "images", "params": {"path": str(tmp_path / "tiny.npz")}}
    spec, rule = build(TWO_LAYERS)
    from plasticity_kit.runner import seed_streams

    state = rule.init_state(seed_streams(3)["init"])
    rule.calibrate(state, X)
    probe = LinearProbe(test=test, readouts=["softmax"], untrained=True, n=1, max_iter=30)
    data = spec.dataset.load(np.random.default_rng(0))
    out = probe.compute(MetricContext(rule=rule, state=state, data=data, spec=spec, step=0, epoch=0))
    assert out["softmax_untrained_accuracy"] == out["softmax_accuracy"]
    assert "softmax_untrained_accuracy" not in LinearProbe(test=test, readouts=["softmax"], n=1, max_iter=30).compute(
        MetricContext(rule=rule, state=state, data=data, spec=spec, step=0, epoch=0))


def test_receptive_fields_compose_the_layers_below():
    """A second layer whose unit takes one input channel at the centre tap has that channel's
    field; one tap away it is the same field shifted by the stride between the layers."""
    layers = [{"rule": "softhebb", "n_neurons": 2, "conv": {"kernel": 3, "padding": 1}},
              {"stage": "max_pool", "params": {"size": 2}},
              {"rule": "softhebb", "n_neurons": 2, "conv": {"kernel": 3, "padding": 1}}]
    _, rule = build(layers)
    state = rule.init_state(np.random.default_rng(0))
    W2 = np.zeros((2, 3, 3, 2))
    W2[0, 1, 1, 1] = 1.0  # unit 0: channel 1 at the centre
    W2[1, 1, 2, 0] = -2.0  # unit 1: channel 0, one tap to the right (2 pixels: the pooling stride)
    state["layers/2/weights"][...] = W2.reshape(2, -1)
    first = rule._raw_fields(state, 0, None).reshape(2, 10, 10)
    second = rule._raw_fields(state, 2, None).reshape(2, 10, 10)
    np.testing.assert_allclose(second[0], first[1])
    np.testing.assert_allclose(second[1][:, 2:], -2 * first[0][:, :-2])
    images = rule.receptive_fields(state, 2, strongest=1)
    assert images.shape == (2, 100) and images.min() >= 0 and images.max() <= 1
    with pytest.raises(ValueError, match="layer 1 is not a learned layer"):
        rule.receptive_fields(state, 1)


def test_replay_and_show_read_every_layer(tmp_path):
    from helpers import cli

    from plasticity_kit.replay import Trajectory

    np.savez(tmp_path / "tiny.npz", images=X.reshape(24, 10, 10), labels=LABELS)
    raw = spec_dict(TWO_LAYERS, tmp_path)
    raw["data"] = {"name": "images", "params": {"path": str(tmp_path / "tiny.npz")}}
    result = execute(resolve(raw), progress=False, log=lambda *a: None)
    path = tmp_path / "stack" / "run.h5"
    with Trajectory(path) as t:
        assert t.fields == ["layers/1/weights", "layers/4/weights"]
        last = t.at(int(t.steps[-1]))
        np.testing.assert_array_equal(last["layers/4/weights"], result.state["layers/4/weights"])
        np.testing.assert_array_equal(last.synthesize(), result.rule.synthesize(result.state))
    shown = cli("show", str(path))
    assert shown.returncode == 0 and "layers/1/weights  (6, 9)" in shown.stdout
    assert "layers:   6, training greedy, input 10×10×1" in shown.stdout
    assert re.search(r"1 +softhebb, 6 filters 3×3 \(stride 1, padding 1\) +10×10×1 → 10×10×6 +weights", shown.stdout)
    assert re.search(r"3 +max_pool \(size 4, stride 2, padding 1\) +10×10×6 → 5×5×6 +-", shown.stdout)
    drawn = cli("replay", str(path), "--frame", str(result.outcome.steps), "--out", str(tmp_path / "frame.png"),
                "--layer", "4")
    assert drawn.returncode == 0 and (tmp_path / "frame.png").exists(), drawn.stderr
    assert "layer 4: 4 fields of 7×7" in drawn.stdout  # 3×3 taps 2 pixels apart over 3×3 filters


def gif_last_frame(path):
    from PIL import Image

    with Image.open(path) as im:
        im.seek(im.n_frames - 1)
        return np.asarray(im.convert("RGB"))


def test_replay_draws_a_layer_as_image_patches(tmp_path, capsys):
    """--animate and --frame draw a conv layer's filters as k×k tiles (a deeper layer over the part of
    the image it sees); a layer that does not exist or is a stage is one line naming it."""
    from plasticity_kit.cli import main
    from plasticity_kit.exporters.animation import MIN_TILE
    from plasticity_kit.replay import Trajectory

    np.savez(tmp_path / "tiny.npz", images=X.reshape(24, 10, 10), labels=LABELS)
    raw = spec_dict(TWO_LAYERS, tmp_path)
    raw["data"] = {"name": "images", "params": {"path": str(tmp_path / "tiny.npz")}}
    raw["record"], raw["exporters"] = {"every": 1}, ["animation"]
    execute(resolve(raw), progress=False, log=lambda *a: None)
    path = tmp_path / "stack" / "run.h5"
    with Trajectory(path) as t:
        W = t["layers/1/weights"][-1]
        np.testing.assert_allclose(t.layer_patches(1, -1)[..., 0].reshape(6, 9),
                                   0.5 + 0.5 * W / np.abs(W).max(axis=1, keepdims=True), rtol=1e-6)
        assert t.layer_patches(4, -1).shape == (4, 7, 7, 1)
    for args, (units, side) in ((["--animate", tmp_path / "a.gif"], (6, 3)),  # default: the first learned layer
                                (["--animate", tmp_path / "b.gif", "--layer", "4"], (4, 7)),
                                (["--animate", tmp_path / "c.gif", "--field", "layers/4/weights"], (4, 7))):
        assert main(["replay", str(path)] + [str(a) for a in args]) == 0
        columns = int(np.ceil(np.sqrt(units)))
        rows = int(np.ceil(units / columns))
        scale = MIN_TILE / side
        frame = gif_last_frame(args[1])
        width, height = (2 * int(np.ceil((n * (side + 1) - 1) * scale / 2)) for n in (columns, rows))
        assert frame.shape == (height + 30, width, 3)  # 30: the title band
        for c in range(columns):  # white gaps between the tiles, drawn weights inside them
            gap, middle = int((c * (side + 1) + side + 0.5) * scale), int((c * (side + 1) + side / 2) * scale)
            assert c == columns - 1 or (frame[30:, gap] == 255).all()
            assert not (frame[30:30 + int(side * scale), middle] == 255).all()
    out, _ = capsys.readouterr()
    assert "a.gif (7 frames of layers/1/weights, 10 fps)" in out
    assert gif_last_frame(path.parent / "receptive_fields.gif").shape == gif_last_frame(tmp_path / "a.gif").shape
    for args, message in ((["--layer", "2"], "--layer: layer 2 of {} is a stage (activation), not a learned layer; "
                                             "learned layers: 1, 4"),
                          (["--layer", "6"], "--layer: {} has no layer 6: its model has 6 layers (0 to 5); "
                                             "learned layers: 1, 4"),
                          (["--field", "layers/3/weights"], "--field: layer 3 of {} is a stage (max_pool)")):
        assert main(["replay", str(path), "--animate", str(tmp_path / "x.gif")] + args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: " + message.format(path)) and len(err.splitlines()) == 1, err
    assert main(["replay", str(path), "--frame", "last", "--out", str(tmp_path / "x.png"), "--layer", "0"]) == 2
    assert "layer 0 of" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def test_field_box_is_the_support_of_the_composed_fields():
    _, rule = build(TWO_LAYERS)
    ones = {k: np.ones_like(v) for k, v in rule.init_state(np.random.default_rng(0)).items()}
    for layer, expected in ((1, (3, 6, 3, 6)), (4, (1, 8, 1, 8))):
        support = np.abs(rule._raw_fields(ones, layer, None)).reshape(-1, 10, 10).sum(axis=0) > 0
        rows, cols = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
        assert rule.field_box(layer) == (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == expected
    _, dense = build([{"rule": "softhebb", "n_neurons": 3}], epochs=1)
    assert dense.field_box(0) == (0, 10, 0, 10)


def test_locally_connected_layer_with_sleep_inside_a_stack():
    """hebbian_weight_sharing (untied filters, Pogodin et al.'s sleep) on a conv layer's pooled maps."""
    layers = [SOFTHEBB, {"stage": "max_pool", "params": {"size": 2}},
              {"rule": {"name": "hebbian_weight_sharing",
                        "params": {"input_shape": [5, 5, 6], "kernel_size": 3, "sleep_every": 2, "sleep_steps": 2}},
               "n_neurons": 2}]
    _, rule = build(layers, training="simultaneous")
    assert rule.output_shape == (3, 3, 2)
    state = rule.init_state(np.random.default_rng(0))
    assert state["layers/2/weights"].shape == (9, 2, 54)
    before = state["layers/2/weights"].copy()
    for start in (0, 8, 16):
        rule.step(state, X[start:start + 8])
    assert not np.array_equal(state["layers/2/weights"], before)
    assert rule.transform(state, X).shape == (24, 18)
    assert rule.drawable(0) and not rule.drawable(2)  # filters that differ by position: no receptive field drawn
    with pytest.raises(ValueError, match="layer 2's receptive fields are not drawn: a locally connected layer"):
        rule.field_patches(state, 2)


WHITENED = {**SOFTHEBB, "conv": {"kernel": 3, "padding": 1, "whiten": 1e-3}}


def test_whitened_conv_layer_learns_and_responds_on_zca_patches():
    """conv.whiten: after 1, 2, 4 steps Z is the ZCA matrix of every patch seen so far (numpy
    closed form from the patches themselves); the rule steps on Z(p − m); the responses are
    W·Z(p − m); the fields drawn are the effective filters W·Z."""
    _, rule = build([WHITENED], epochs=1, dtype="float64")
    state = rule.init_state(np.random.default_rng(1))
    g = Geometry(10, 10, 1, 3, 1, 1)
    seen = []
    for step in range(4):
        batch = X[step * 6:(step + 1) * 6]
        W = state["layers/0/weights"].copy()
        rule.step(state, batch)
        P = im2col_reference(batch, g)
        seen.append(P)
        if step in (0, 1, 3):  # steps 1, 2, 4: Z recomputed from all the patches so far
            allp = np.concatenate(seen)
            lam, U = np.linalg.eigh(np.cov(allp, rowvar=False, bias=True))
            Z = (U / np.sqrt(lam + 1e-3)) @ U.T
            np.testing.assert_allclose(state["layers/0/zca"], Z, rtol=1e-8, atol=1e-8)
            np.testing.assert_allclose(state["layers/0/patch_mean"], allp.mean(axis=0), atol=1e-12)
            white = (allp - allp.mean(axis=0)) @ Z
            np.testing.assert_allclose(np.cov(white, rowvar=False, bias=True), (U * (lam / (lam + 1e-3))) @ U.T,
                                       atol=1e-8)  # whitened: the identity on the data's span
        reference_step(W, (P - state["layers/0/patch_mean"]) @ state["layers/0/zca"], 0.05, 1.0, 0.5)
        np.testing.assert_allclose(state["layers/0/weights"], W, rtol=1e-10, atol=1e-12)
    assert state["layers/0/patch_count"].tolist() == [4 * 6 * 100, 4]
    Z, m, W = state["layers/0/zca"], state["layers/0/patch_mean"], state["layers/0/weights"]
    expected = ((im2col_reference(X, g) - m) @ Z @ W.T).reshape(24, -1)
    np.testing.assert_allclose(rule.transform(state, X), expected, rtol=1e-9, atol=1e-9)
    fields = rule.receptive_fields(state, 0)
    A = W @ Z
    centre = fields.reshape(6, 10, 10)[:, 3:6, 3:6].reshape(6, 9)
    np.testing.assert_allclose(centre, 0.5 + 0.5 * A / np.abs(A).max(axis=1, keepdims=True), atol=1e-12)


def test_whitening_of_the_untrained_twin_is_fitted_by_calibrate():
    """The random-filter twin gets the same whitening (fitted to the data), not Z = I."""
    _, rule = build([WHITENED], epochs=1, dtype="float64")
    state = rule.init_state(np.random.default_rng(1))
    np.testing.assert_array_equal(state["layers/0/zca"], np.eye(9))
    rule.calibrate(state, X, batch_size=8)
    allp = im2col_reference(X, Geometry(10, 10, 1, 3, 1, 1))
    lam, U = np.linalg.eigh(np.cov(allp, rowvar=False, bias=True))
    np.testing.assert_allclose(state["layers/0/zca"], (U / np.sqrt(lam + 1e-3)) @ U.T, rtol=1e-8, atol=1e-8)


def test_whiten_must_be_positive():
    with pytest.raises(SpecError) as info:
        build([{**SOFTHEBB, "conv": {"kernel": 3, "whiten": 0}}])
    assert info.value.key == "model.layers[0].conv.whiten"


def test_linear_probe_holds_one_networks_features_at_a_time(tmp_path):
    """The features of 60,000 images through a deep stack take gigabytes: the trained network's
    must be gone before the untrained twin's are computed."""
    import gc
    import weakref

    np.savez(tmp_path / "tiny.npz", images=X.reshape(24, 10, 10), labels=LABELS)
    test = {"name": "images", "params": {"path": str(tmp_path / "tiny.npz")}}
    spec, rule = build(TWO_LAYERS)
    state = rule.init_state(np.random.default_rng(0))
    rule.calibrate(state, X)
    probe = LinearProbe(test=test, readouts=["softmax", "paper"], untrained=True, n=1, max_iter=5)
    trained, alive_at_twin = [], []
    features = probe.features

    def tracked(ctx, X, state=None):
        if state is not None:  # the twin's
            gc.collect()
            alive_at_twin.append(sum(ref() is not None for ref in trained))
        F = features(ctx, X, state)
        if state is None:
            trained.append(weakref.ref(F))
        return F

    probe.features = tracked
    data = spec.dataset.load(np.random.default_rng(0))
    out = probe.compute(MetricContext(rule=rule, state=state, data=data, spec=spec, step=0, epoch=0))
    assert len(trained) == 2 and alive_at_twin == [0, 0]
    assert {"softmax_untrained_accuracy", "paper_untrained_accuracy", "paper_accuracy"} <= set(out)
