"""What a new user reads: the run's output lines, ``run -q``, ``--help``, ``plugins``, a plugin
with a misspelt option kind, the FID install hint, ``replay --plot`` of a metric scored once,
the animation's colours and the default record cadence (issue 15's rough edges)."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import tiny_spec, write_spec
from plasticity_kit.cli import build_parser, main
from plasticity_kit.errors import PluginError
from plasticity_kit.exporters.animation import animate, colour_scale
from plasticity_kit.exporters.timeline import draw_timeline
from plasticity_kit.options import KINDS, Option
from plasticity_kit.plugins import build_registry, plugin_table, summary
from plasticity_kit.replay import Trajectory
from plasticity_kit.runner import SAMPLES_PER_FRAME, default_record_every, execute
from plasticity_kit.spec import resolve

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- run: its lines, and -q

def test_run_prints_one_clean_status_line(tmp_path, capsys):
    spec = write_spec(tmp_path, tiny_spec(tmp_path, exporters=["summary"]))
    code, out, err = run_cli(capsys, "run", spec)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"tiny: bcm rule, 5 neurons, 6 epochs, batch 8 → {tmp_path / 'runs' / 'tiny'}/"
    assert re.fullmatch(r"completed 6 epochs \(18 steps\) in \d+\.\d s", lines[1]), lines[1]
    assert "completed: completed" not in out
    assert lines[2] == f"trajectory: {tmp_path / 'runs' / 'tiny' / 'run.h5'}"
    assert lines[3].startswith("wrote: ") and lines[3].endswith("summary.json")


def test_run_quiet_prints_only_the_run_file(tmp_path, capsys):
    spec = write_spec(tmp_path, tiny_spec(tmp_path))
    code, out, err = run_cli(capsys, "run", spec, "-q")
    assert code == 0
    assert out == f"{tmp_path / 'runs' / 'tiny' / 'run.h5'}\n"
    assert err == ""


def test_run_quiet_reports_a_diverged_run_on_stderr(tmp_path, capsys):
    spec = write_spec(tmp_path, tiny_spec(tmp_path, **{"model.optimizer": {"name": "sgd", "params": {"lr": 1e30}},
                                                       "model.initializer": {"name": "normal", "params": {"std": 1e10}}}))
    code, out, err = run_cli(capsys, "run", spec, "-q")
    assert code == 1
    assert out == f"{tmp_path / 'runs' / 'tiny' / 'run.h5'}\n"
    assert err.startswith("diverged ") and "diverged: diverged" not in err


# ---------------------------------------------------------------- --help and plugins

def test_top_level_help_lists_every_command_without_rest_markup(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"run", "validate", "plugins", "metrics", "sweep", "show", "replay", "watch"} <= set(commands)
    for name in commands:
        assert re.search(rf"^\s+{name}\s+\S", out, re.M), f"{name} missing from --help"
    assert "``" not in out and ":class:" not in out


def test_summary_is_the_whole_first_sentence_without_markup():
    class Spread:
        """A rule whose first sentence runs over
        two lines of its docstring (``x`` in :class:`~a.B`).  The second sentence is not shown.

        Details.
        """

    assert summary(Spread) == "A rule whose first sentence runs over two lines of its docstring (x in a.B)."


def test_plugins_wraps_descriptions_instead_of_cutting_them(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = run_cli(capsys, "plugins")
    assert code == 0
    rows = plugin_table()
    header, *lines = out.splitlines()
    col = header.index("description")
    descriptions = []
    for line in lines:
        if line[:col].strip():
            descriptions.append([line[col:]])
        else:
            descriptions[-1].append(line[col:])
    assert len(descriptions) == len(rows)
    for (_, _, name, doc), parts in zip(rows, descriptions):
        assert " ".join(parts) == doc, name
    mnist = [d for _, _, n, d in rows if n == "mnist"][0]
    assert mnist.endswith("per class."), mnist  # a first sentence spanning two docstring lines, whole
    assert max(len(line) for line in lines) <= max(100, col + 40)


# ---------------------------------------------------------------- option kinds at plugin load

def test_an_unknown_option_kind_fails_where_it_is_declared():
    with pytest.raises(ValueError) as info:
        Option("lr", "int", 1)
    message = str(info.value)
    assert "Option 'lr': unknown kind 'int' (did you mean 'integer'?)" in message
    assert message.endswith("valid kinds: " + ", ".join(KINDS))


BAD_PLUGIN = '''
from plasticity_kit.hookspecs import hookimpl
from plasticity_kit.options import Option, Schema
from plasticity_kit.rules import Rule


class Bad(Rule):
    """A rule with a misspelt option kind."""
    name = "bad_kind"
    options = Schema(Option("lr", "int", 1))


@hookimpl
def register_rules(register):
    register(Bad)
'''


@pytest.fixture
def bad_plugin_dir(tmp_path):
    """A directory on which an installed distribution ``badkind`` declares a plasticity_kit entry point."""
    (tmp_path / "badkind.py").write_text(BAD_PLUGIN)
    info = tmp_path / "badkind-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: badkind\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[plasticity_kit]\nbadkind = badkind\n")
    return tmp_path


def test_a_plugin_with_an_unknown_option_kind_fails_when_it_loads(bad_plugin_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(bad_plugin_dir))
    with pytest.raises(PluginError) as info:
        build_registry()
    message = str(info.value)
    assert message.startswith("plugin 'badkind' (badkind) failed to load: ValueError: Option 'lr': unknown kind 'int'")
    assert "valid kinds: number, integer, bool" in message
    sys.modules.pop("badkind", None)


def test_the_cli_reports_the_broken_plugin_in_one_line(bad_plugin_dir):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(bad_plugin_dir), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "plasticity_kit", "plugins"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 2
    assert out.stderr.startswith("error: plugin 'badkind' (badkind) failed to load: ValueError: Option 'lr'")
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


# ---------------------------------------------------------------- the FID install hint

def test_the_fid_hint_is_the_readme_command():
    from plasticity_kit.metrics.inception import INSTALL_HINT

    command = 'pip install -e ".[fid]"'
    assert command in INSTALL_HINT
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        assert command in f.read()


# ---------------------------------------------------------------- replay --plot and the animation

@pytest.fixture(scope="module")
def positive_run(tmp_path_factory):
    """BCM on faces from small positive weights with a tiny SGD step: every weight stays positive."""
    tmp = tmp_path_factory.mktemp("positive")
    spec = tiny_spec(tmp, **{"model.optimizer": {"name": "sgd", "params": {"lr": 1e-6}},
                             "model.initializer": {"name": "uniform", "params": {"low": 0.01, "high": 0.02}},
                             "metrics": [{"name": "weight_norm", "every": 6}, "network"], "exporters": []})
    return execute(resolve(spec, "tiny.yaml"), progress=False, log=lambda *a: None)


def test_replay_plot_marks_a_metric_scored_once(positive_run):
    with Trajectory(positive_run.path) as t:
        assert len(t.metrics["network"]["step"]) == 1
        fig = draw_timeline(t)
    panels = {ax.get_title(): ax for ax in fig.axes}
    once = panels["network: overlap_index"]
    (line,) = once.get_lines()
    assert line.get_marker() == "o" and len(line.get_xdata()) == 1
    assert any("scored once" in text.get_text() for text in once.texts)
    theta = panels["θ of every neuron"]
    assert all(len(line.get_xdata()) == 10 for line in theta.get_lines())  # 18 steps every 2: 10 frames
    assert not any(text.get_text() for text in theta.texts)


def rgb_of_last_frame(path):
    with Image.open(path) as im:
        im.seek(im.n_frames - 1)
        return np.asarray(im.convert("RGB"), dtype=int)


def test_animation_of_positive_weights_is_grey_not_red(positive_run, tmp_path):
    with Trajectory(positive_run.path) as t:
        assert t["weights"][:].min() > 0
        assert colour_scale(t["weights"][-1]) == ("gray", "minmax", 0.0, 1.0)
        path, _ = animate(t, tmp_path / "rf.gif")
    rgb = rgb_of_last_frame(path)
    assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
    assert rgb.min() < 30 and rgb.max() > 225  # min–max per neuron: the full grey range


def test_animation_of_signed_weights_is_diverging_and_symmetric(tmp_path):
    spec = tiny_spec(tmp_path, exporters=[])
    run = execute(resolve(spec, "tiny.yaml"), progress=False, log=lambda *a: None)
    with Trajectory(run.path) as t:
        last = t["weights"][-1]
        assert last.min() < 0 < last.max()
        assert colour_scale(last) == ("bwr", "peak", -1.0, 1.0)
        path, _ = animate(t, tmp_path / "rf.gif")
    rgb = rgb_of_last_frame(path)
    red = (rgb[..., 0] > 200) & (rgb[..., 2] < 150)
    blue = (rgb[..., 2] > 200) & (rgb[..., 0] < 150)
    assert red.any() and blue.any()
    assert colour_scale(np.array([-2.0, -1.0]), "viridis") == ("viridis", "minmax", 0.0, 1.0)


# ---------------------------------------------------------------- the default record cadence

@pytest.mark.parametrize("total, batch", [(8, 100), (160, 100), (12000, 100), (600, 8), (5, 1), (10 ** 6, 10)])
def test_default_cadence_is_bounded_by_frames_and_by_samples(total, batch):
    every = default_record_every(total, batch)
    assert total // every <= 100                      # at most ~100 frames, plus the first and last
    assert every * batch >= min(SAMPLES_PER_FRAME, every * batch)
    assert every == max(1, -(-total // 100), -(-SAMPLES_PER_FRAME // batch))


def test_a_short_run_records_few_frames_by_default(tmp_path):
    spec = tiny_spec(tmp_path, **{"schedule.epochs": 200, "record": {}, "exporters": []})  # 600 steps of 8 samples
    run = execute(resolve(spec, "tiny.yaml"), progress=False, log=lambda *a: None)
    with Trajectory(run.path) as t:
        assert list(t.steps) == [0, 512, 600]            # every ⌈4096 / 8⌉ = 512 steps, and the last
        assert t.spec["record"]["every"] == 512


# ---------------------------------------------------------------- extras: ranges, CI pins

def test_extras_declare_ranges_and_ci_pins_them():
    import tomllib

    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    with open(os.path.join(REPO, ".ci", "constraints.txt"), encoding="utf-8") as f:
        pins = dict(line.split("==") for line in (raw.split("#")[0].strip() for raw in f) if line)
    for extra in ("fid", "docs"):
        for requirement in extras[extra]:
            name = re.split(r"[<>=!~ \[;]", requirement)[0]
            assert "==" not in requirement and re.search(r">=.*<", requirement), requirement  # a compatible range
            assert name.lower() in {p.lower() for p in pins}, f"{name} is not pinned in .ci/constraints.txt"
    with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
        ci = f.read()
    assert "-c .ci/constraints.txt" in ci and "sphinx -W" in ci
    assert ci.index("sphinx -W") < ci.index("python -m pytest")  # the docs exist when tests/test_docs.py runs
