"""Bad specs are rejected with exit status 2 and a message naming the file, the key path and what was expected."""
import pytest
import yaml

from helpers import cli, tiny_spec, write_spec
from plasticity_kit.errors import SpecError
from plasticity_kit.spec import apply_overrides, load_spec, resolve


def error_of(tmp_path, spec, *extra):
    path = write_spec(tmp_path, spec)
    out = cli("validate", path, *extra)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    return out.stderr.strip(), str(path)


def test_the_issue_example_message(tmp_path):
    spec = tiny_spec(tmp_path)
    spec["model"]["rule"]["params"]["memory_factor"] = "abc"
    message, path = error_of(tmp_path, spec)
    assert message == f"error: {path}: model.rule.params.memory_factor: expected a number in [0, 1), got 'abc'"


@pytest.mark.parametrize("value", [1.0, -0.1, True, [0.5]])
def test_memory_factor_out_of_range_or_wrong_type(tmp_path, value):
    spec = tiny_spec(tmp_path)
    spec["model"]["rule"]["params"]["memory_factor"] = value
    message, _ = error_of(tmp_path, spec)
    assert "model.rule.params.memory_factor: expected a number in [0, 1)" in message


@pytest.mark.parametrize("where, key, suggestion", [
    ("top", "schedul", "schedule"),
    ("schedule", "epoch", "epochs"),
    ("model", "n_neuron", "n_neurons"),
    ("params", "memory_factr", "memory_factor"),
])
def test_unknown_keys_get_a_did_you_mean(tmp_path, where, key, suggestion):
    spec = tiny_spec(tmp_path)
    target = {"top": spec, "schedule": spec["schedule"], "model": spec["model"],
              "params": spec["model"]["rule"]["params"]}[where]
    target[key] = 1
    message, _ = error_of(tmp_path, spec)
    assert f"unknown key '{key}' (did you mean '{suggestion}'?)" in message


def test_unknown_plugin_names_list_the_installed_ones(tmp_path):
    spec = tiny_spec(tmp_path)
    spec["model"]["optimizer"] = {"name": "adamw", "params": {}}
    message, _ = error_of(tmp_path, spec)
    assert "model.optimizer.name: unknown optimizer 'adamw' (did you mean 'adam'?)" in message
    assert "sgd" in message


def test_missing_required_values(tmp_path):
    spec = tiny_spec(tmp_path)
    del spec["schedule"]["epochs"]
    message, _ = error_of(tmp_path, spec)
    assert "schedule.epochs: missing; expected an integer >= 1" in message


def test_wrong_types_are_named(tmp_path):
    spec = tiny_spec(tmp_path)
    spec["schedule"]["batch_size"] = 0
    message, _ = error_of(tmp_path, spec)
    assert "schedule.batch_size: expected an integer >= 1, got 0" in message
    spec["schedule"]["batch_size"] = 8
    spec["model"]["dtype"] = "float16"
    message, _ = error_of(tmp_path, spec)
    assert "model.dtype: expected one of 'float32', 'float64', got 'float16'" in message


def test_component_params_are_checked_against_the_plugin_schema(tmp_path):
    spec = tiny_spec(tmp_path)
    spec["model"]["optimizer"]["params"]["lr"] = -1
    message, _ = error_of(tmp_path, spec)
    assert "model.optimizer.params.lr: expected a number > 0, got -1" in message


def test_unknown_record_field(tmp_path):
    spec = tiny_spec(tmp_path)
    spec["record"]["fields"] = ["weights", "thetas"]
    message, _ = error_of(tmp_path, spec)
    assert "record.fields[1]: rule 'bcm' has no field 'thetas' (did you mean 'theta'?)" in message


def test_dataset_selection_errors_name_the_key(tmp_path):
    spec = tiny_spec(tmp_path)
    spec["data"]["params"] = {"select": "persons", "persons": [0], "k": 11}
    path = write_spec(tmp_path, spec)
    out = cli("run", path)
    assert out.returncode == 2
    assert f"{path}: data.params.k: expected at most 10" in out.stderr
    spec["data"]["params"] = {"select": "persons", "persons": [40]}
    message, _ = error_of(tmp_path, spec)
    assert "data.params.persons[0]: expected an integer in [0, 39], got 40" in message


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nmodel: {rule: bcm\n")
    out = cli("validate", path)
    assert out.returncode == 2
    assert f"{path}: invalid YAML: line" in out.stderr


def test_missing_file(tmp_path):
    out = cli("run", tmp_path / "nope.yaml")
    assert out.returncode == 2
    assert "nope.yaml: spec file not found" in out.stderr


def test_singular_interaction_is_rejected(tmp_path):
    spec = tiny_spec(tmp_path)
    spec["model"]["interaction"] = {"name": "uniform", "params": {"strength": 0.25}}  # I-L singular for N = 5
    path = write_spec(tmp_path, spec)
    out = cli("run", path)
    assert out.returncode == 2
    assert "model.interaction: I−L is singular or ill-conditioned" in out.stderr


def test_set_overrides_any_key(tmp_path):
    path = write_spec(tmp_path, tiny_spec(tmp_path))
    spec = load_spec(path, ["model.n_neurons=9", "model.rule.params.threshold=batch", "model.optimizer=sgd",
                            "schedule.shuffle=false"])
    assert spec.model.n_neurons == 9
    assert spec.model.params["threshold"] == "batch"
    assert spec.model.optimizer.name == "sgd"
    assert spec.schedule["shuffle"] is False
    out = cli("validate", path, "--set", "model.rule.params.memory_factor=abc")
    assert out.returncode == 2 and "model.rule.params.memory_factor: expected a number in [0, 1), got 'abc'" in out.stderr
    out = cli("validate", path, "--set", "nonsense")
    assert out.returncode == 2 and "--set: expected key.path=value, got 'nonsense'" in out.stderr


def test_set_expands_a_shorthand_plugin_name():
    raw = {"model": {"activation": "relu"}}
    assert apply_overrides(raw, ["model.activation.params.x=1"]) == {"model": {"activation": {"name": "relu", "params": {"x": 1}}}}
    assert raw == {"model": {"activation": "relu"}}  # the input is not modified


def test_resolved_spec_round_trips(tmp_path):
    path = write_spec(tmp_path, tiny_spec(tmp_path))
    out = cli("validate", path, "--print")
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    from plasticity_kit.rules.bcm import BCM

    assert resolved["model"]["rule"]["params"] == {**BCM.options.defaults(), "memory_factor": 0.5}
    assert resolved["model"]["rule"]["params"]["threshold"] == "moving_average"
    again = resolve(resolved, "resolved.yaml")
    assert again.resolved["model"] == resolved["model"]


def test_python_api_raises_spec_error_with_source(tmp_path):
    spec = tiny_spec(tmp_path)
    spec["model"]["n_neurons"] = "five"
    with pytest.raises(SpecError) as info:
        resolve(spec, "mine.yaml")
    assert str(info.value) == "mine.yaml: model.n_neurons: expected an integer >= 1, got 'five'"
