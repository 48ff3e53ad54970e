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


# -- validate refuses exactly what run cannot do (issue 12) ---------------------------------------
# In-process CLI: the same main() as the command, its output captured (no interpreter start-up).

def run_cli(*args) -> tuple[int, str, str]:
    import contextlib
    import io

    from plasticity_kit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in args])
    return status, out.getvalue(), err.getvalue()


def refused(path, *extra, command="validate") -> str:
    """The one error line of ``command`` on ``path`` (exit 2), without the 'error: file: ' prefix."""
    status, _, err = run_cli(command, path, *extra)
    assert status == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    prefix = f"error: {path}: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix):]


@pytest.fixture
def gib_free(monkeypatch):
    """1 GiB of available memory, whatever the machine has."""
    from plasticity_kit import memory

    monkeypatch.setattr(memory, "available", lambda *a, **k: 1 << 30)


@pytest.mark.parametrize("change, expected", [
    ({"schedule.seed": 2**64}, "schedule.seed: expected an integer >= 0 and at most 18446744073709551615, "
                               "got 18446744073709551616"),
    ({"schedule.seed": -1}, "schedule.seed: expected an integer >= 0, got -1"),
    ({"model.n_neurons": 10**12}, "model.n_neurons: expected an integer >= 1 and at most 2147483647, "
                                  "got 1000000000000"),
    ({"schedule.epochs": 2**31}, "schedule.epochs: expected an integer >= 1 and at most 2147483647, got 2147483648"),
    ({"schedule.batch_size": 10**400}, "schedule.batch_size: expected an integer >= 1 and at most 2147483647, "
                                       "got an integer of 401 digits"),
    ({"name": "x" * 300}, "name: expected a run name that is a file name (it names the output folder), got 'xxxxx"),
    ({"name": "é" * 128}, "(256 bytes, a file name has at most 255)"),
    ({"name": ".."}, "name: expected a run name that is a file name (it names the output folder), got '..' "
                     "('..' is not a file name)"),
    ({"name": "a/b"}, "(a file name cannot contain '/' or '\\')"),
    ({"name": "a\0b"}, "name: expected text, got 'a\\x00b' (it contains a NUL character)"),
    ({"output.dir": "runs/" + "d" * 256}, "output.dir: expected a folder path, got 'runs/ddd"),
    ({"model.rule.params": {1: 2}}, "model.rule.params.1: expected a text key, got the key 1; quote it"),
    ({"data.params": {None: 2}}, "data.params.null: expected a text key, got the key null; quote it"),
    ({"schedule.batch_size": 21}, "schedule.batch_size: expected at most 20 (the samples in data set 'olivetti'), "
                                  "got 21"),
    ({"model.replicas": 10**6}, "model.replicas: expected a run that fits in the 1.0 GiB of memory available, "
                                "got one that needs about 457.8 GiB (state 228.9 GiB"),
    ({"model.n_neurons": 2**20}, "model.n_neurons: expected a run that fits in the 1.0 GiB of memory available"),
    ({"model.interaction": {"name": "custom", "params": {"values": [[0, 1], [0]]}}},
     "model.interaction.params.values[1]: expected 2 numbers (a square matrix of 2 rows), got 1"),
    ({"model.interaction": {"name": "custom", "params": {"values": [[0, 10**400], [0, 0]]}}},
     "model.interaction.params.values[0][1]: expected a finite number"),
    ({"model.interaction": {"name": "custom", "params": {"values": [[0, 0], [0, 0]]}}},
     "model.interaction.params.values: expected an 5x5 matrix (model.n_neurons = 5), got shape (2, 2)"),
])
def test_what_run_cannot_do_is_refused_by_validate_and_run(tmp_path, gib_free, change, expected):
    path = write_spec(tmp_path, tiny_spec(tmp_path, **change))
    assert expected in refused(path)
    assert expected in refused(path, command="run")
    assert not list(tmp_path.rglob("*.h5"))  # refused before a run file is written


def test_largest_seed_is_accepted(tmp_path):
    path = write_spec(tmp_path, tiny_spec(tmp_path, **{"schedule.seed": 2**64 - 1}))
    status, out, err = run_cli("validate", path)
    assert status == 0, err


def test_validate_prints_the_data_size_and_the_memory_estimate(tmp_path, gib_free):
    path = write_spec(tmp_path, tiny_spec(tmp_path))
    status, out, err = run_cli("validate", path)
    assert status == 0, err
    # 20 faces of 64×64: data 20·4096·8 B = 640 KiB; state 5·4096·4 B × (1 + Adam's 2 moments) = 240 KiB
    assert "data 'olivetti' 20x4096" in out
    assert "memory about" in out and "data 640.0 KiB" in out and "state 240.0 KiB" in out
    assert out.rstrip().endswith("of 1.0 GiB available)")


@pytest.mark.parametrize("text, expected", [
    ("name: " + "[" * 5000 + "]" * 5000, "invalid YAML: line 1, column 56: nested more than 50 levels deep"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("abcdef", "bcdefg")),
     "expands to more than 1,000,000 values (YAML aliases repeating an anchor?)"),
    ("name: &a [*a]\n", "name[0]: contains itself (a YAML alias inside its own anchor)"),
    ("schedule: {seed: 1" + "0" * 5000 + "}\n", "invalid YAML: Exceeds the limit (4300 digits)"),
    ("schedule: {seed: 2001-12-14}\n", "schedule.seed: expected a plain YAML value"),
    ("data: !!binary aGVsbG8=\n", "data: expected a plain YAML value (text, number, true/false, null, list or "
                                  "mapping), got binary data b'hello'"),
    ("data: !!python/object/apply:os.system [touch pwned]\n", "invalid YAML: "),
    ("1: 2\n", "1: expected a text key, got the key 1; quote it"),
    ("\"a\\nb\": 2\n", "unknown key 'a\\nb'"),  # a line break in a key stays escaped: one line
    ("[1, 2]\n", "expected a mapping of sections"),
], ids=["deep", "billion-laughs", "recursive", "5000-digits", "date", "binary", "python-tag", "int-key",
        "newline-key", "list"])
def test_hostile_yaml_is_one_clear_line(tmp_path, text, expected):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    assert expected in refused(path)
    assert not (tmp_path / "pwned").exists()


def test_huge_and_binary_spec_files(tmp_path):
    from plasticity_kit.spec import MAX_SPEC_BYTES

    path = tmp_path / "huge.yaml"
    path.write_text("description: '" + "x" * MAX_SPEC_BYTES + "'\n")
    assert refused(path) == f"the spec file is {path.stat().st_size:,} bytes; a spec has at most {MAX_SPEC_BYTES:,}"
    path.write_bytes(b"name: \xff\xfe\n")
    assert refused(path) == "the spec is not UTF-8 text (byte 6)"


@pytest.mark.parametrize("override, expected", [
    ("model.rule.params={1: 2}", "model.rule.params.1: expected a text key, got the key 1; quote it"),
    ("schedule.seed=18446744073709551616", "schedule.seed: expected an integer >= 0 and at most 1844674407370955"),
    ("model.n_neurons=1.0e+999", "model.n_neurons: expected an integer >= 1, got inf"),
    ("name=" + "n" * 256, "(256 bytes, a file name has at most 255)"),
    ("model=" + "[" * 60 + "]" * 60, "model: expected a mapping, got '[[[["),  # too deep for YAML: text
], ids=["int-key", "seed", "inf", "long-name", "deep"])
def test_set_overrides_are_checked_like_the_file(tmp_path, override, expected):
    path = write_spec(tmp_path, tiny_spec(tmp_path))
    assert expected in refused(path, f"--set={override}")


LAYERED = {"layers": [{"stage": "batch_norm"}, {"rule": "softhebb", "n_neurons": 4, "conv": {"kernel": 5}},
                      {"stage": "max_pool"}]}


def test_set_indexes_into_a_list_of_layers(tmp_path):
    path = write_spec(tmp_path, tiny_spec(tmp_path, model=LAYERED))
    spec = load_spec(path, ["model.layers.1.n_neurons=6", "model.layers.1.rule.params.inverse_temperature=5",
                            "model.layers.2.stage=avg_pool", "model.layers.2.params.size=4"])
    layers = spec.resolved["model"]["layers"]
    assert layers[1]["n_neurons"] == 6 and spec.model.n_neurons == 6
    assert layers[1]["rule"] == {"name": "softhebb", "params": {**layers[1]["rule"]["params"], "inverse_temperature": 5}}
    assert layers[2] == {"stage": "avg_pool", "params": {"size": 4, "stride": None, "padding": 0}}
    assert refused(path, "--set", "model.layers.1.n_neurons=0") == "model.layers[1].n_neurons: expected an integer >= 1, got 0"


@pytest.mark.parametrize("override, expected", [
    ("model.layers.3.n_neurons=6", "model.layers.3: index 3 out of range: model.layers has 3 items (0 to 2)"),
    ("model.layers.-1.n_neurons=6", "model.layers.-1: index -1 out of range: model.layers has 3 items (0 to 2)"),
    ("model.layers.one.n_neurons=6", "model.layers.one: expected a list index: model.layers is a list of 3 items "
                                     "(0 to 2), got 'one'"),
    ("model.layers.1.n_neurons.x=6", "model.layers.1.n_neurons: --set model.layers.1.n_neurons.x: cannot set a key "
                                     "inside 4"),
], ids=["past-the-end", "negative", "not-an-integer", "inside-a-number"])
def test_set_into_a_list_names_the_key_and_the_length(tmp_path, override, expected):
    path = write_spec(tmp_path, tiny_spec(tmp_path, model=LAYERED))
    assert refused(path, "--set", override) == expected


def test_sweep_sections_are_validated_run_by_run(tmp_path, gib_free):
    spec = tiny_spec(tmp_path)
    spec["sweep"] = {"grid": {"model.n_neurons": [5, 0]}}
    path = write_spec(tmp_path, spec)
    assert refused(path) == "sweep.grid.model.n_neurons: expected an integer >= 1, got 0 (run n_neurons=0)"
    spec["sweep"] = {"grid": {"schedule.batch_size": [8, 50]}}
    path = write_spec(tmp_path, spec)
    assert refused(path) == ("sweep.grid.schedule.batch_size: expected at most 20 (the samples in data set "
                             "'olivetti'), got 50 (run batch_size=50)")
    spec["sweep"] = {"replicas": 10**6}
    assert refused(write_spec(tmp_path, spec)).startswith("model.replicas: expected a run that fits in the 1.0 GiB")
    spec["sweep"] = {"seed": 2**64, "grid": {"model.n_neurons": [5]}}
    assert refused(write_spec(tmp_path, spec)).startswith("sweep.seed: expected an integer >= 0 and at most 18446")
    spec["sweep"] = {"grid": {"model.n_neurons": list(range(1, 400)), "schedule.epochs": list(range(1, 400))}}
    assert refused(write_spec(tmp_path, spec)) == "sweep: expected at most 100,000 runs, got 159,201 (grid × zip × repeats)"
    spec["sweep"] = {"grid": {"description": ["x"]}}
    assert refused(write_spec(tmp_path, spec)).startswith("sweep.grid.description: unknown key 'description'")
    spec["sweep"] = {"grid": {"schedule": [1]}}
    assert refused(write_spec(tmp_path, spec)) == "sweep.grid.schedule: expected a mapping, got 1 (run schedule=1)"
    spec["sweep"] = {"grid": {"model.n_neurons": [2, 3]}}
    status, out, err = run_cli("validate", write_spec(tmp_path, spec))
    assert status == 0 and "valid sweep of 2 runs" in out, err


def test_exit_status_table(tmp_path, monkeypatch):
    """0 valid, 2 bad input, 70 an unexpected exception (a bug: with its traceback) — never 1, the
    status of a diverged run."""
    from plasticity_kit import spec as spec_module

    path = write_spec(tmp_path, tiny_spec(tmp_path))
    assert run_cli("validate", path)[0] == 0
    assert run_cli("validate", tmp_path / "missing.yaml")[0] == 2

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(spec_module, "preflight", broken)
    status, _, err = run_cli("validate", path)
    assert status == 70
    assert "Traceback" in err and "ZeroDivisionError: a bug" in err and "this is a bug in plasticity-kit" in err
