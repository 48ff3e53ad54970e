"""Sweeps: expansion, names and seeds, executors, failed runs, resume, the aggregate table and plot."""
import csv
import json

import h5py
import numpy as np
import pytest
import yaml

from plasticity_kit.aggregate import curves, example_image, plot_examples, plot_metric, read_table
from plasticity_kit.cli import main
from plasticity_kit.errors import SpecError
from plasticity_kit.executors import InProcess, Local
from plasticity_kit.spec import resolve
from plasticity_kit.sweep import derived_seeds, expand, load_sweep, run_sweep


def tiny(tmp_path, **sweep):
    """A 2×2 sweep (n_neurons × interaction, k zipped with it) of 2-epoch BCM runs on 10 faces."""
    return {
        "name": "tiny",
        "data": {"name": "olivetti", "params": {"select": "random", "k": 10}},
        "model": {"rule": "bcm", "n_neurons": 3, "interaction": "uniform"},
        "schedule": {"epochs": 2, "batch_size": 5},
        "output": {"dir": str(tmp_path / "out")},
        "exporters": [],
        "metrics": ["network"],
        "sweep": sweep or {
            "seed": 3, "repeats": 2,
            "grid": {"model.n_neurons": [2, 3]},
            "zip": {"model.interaction": ["uniform", "binocular"], "data.params.k": [10, 8]},
        },
    }


def test_expansion_names_seeds_deterministic(tmp_path):
    raw = tiny(tmp_path)
    a, b = expand(raw), expand(raw)
    assert [r.name for r in a.runs] == [r.name for r in b.runs]
    assert len(a.runs) == 2 * 2 * 2
    assert len({r.name for r in a.runs}) == 8
    assert a.runs[0].name == "n_neurons=2,interaction=uniform,k=10,rep=0"
    # cartesian over the grid, zip lists walked in step
    combos = {(r.params["model.n_neurons"], r.params["model.interaction"], r.params["data.params.k"]) for r in a.runs}
    assert combos == {(2, "uniform", 10), (2, "binocular", 8), (3, "uniform", 10), (3, "binocular", 8)}
    # seeds: derived from the sweep seed, one per repeat, shared across configurations
    seeds = derived_seeds(3, 2)
    assert seeds == [int(c.generate_state(1)[0]) for c in np.random.SeedSequence(3).spawn(2)]
    assert seeds[0] != seeds[1]
    assert [r.seed for r in a.runs] == [seeds[r.repeat] for r in a.runs]
    assert {r.seed for r in expand(tiny(tmp_path, seed=4, repeats=2)).runs}.isdisjoint(seeds)
    # every run is a valid spec with its values, seed, name and output folder set
    spec = resolve(a.runs[3].raw)
    assert spec.model.n_neurons == 2 and spec.resolved["model"]["interaction"]["name"] == "binocular"
    assert spec.schedule["seed"] == a.runs[3].seed and spec.name == a.runs[3].name
    assert spec.output_dir == tmp_path / "out" / "tiny" / a.runs[3].name
    assert "sweep" not in spec.resolved
    # the base spec is untouched and resolves with the sweep section ignored
    assert raw["model"]["n_neurons"] == 3 and resolve(raw).model.n_neurons == 3


def test_no_sweep_section_is_one_run(tmp_path):
    raw = tiny(tmp_path)
    del raw["sweep"]
    sweep = expand(raw)
    assert [r.name for r in sweep.runs] == ["run"] and sweep.runs[0].seed == derived_seeds(0, 1)[0]


@pytest.mark.parametrize("sweep, key", [
    ({"grid": {"model.n_neuronz": [2, 3]}}, "sweep.grid.model.n_neuronz"),
    ({"grid": {"modle.n_neurons": [2]}}, "sweep.grid.modle"),
    ({"grid": {"model.n_neurons": [2, -1]}}, "sweep.grid.model.n_neurons"),
    ({"grid": {"model.n_neurons": 5}}, "sweep.grid.model.n_neurons"),
    ({"zip": {"model.n_neurons": [2, 3], "data.params.k": [5]}}, "sweep.zip."),
    ({"repeats": 0}, "sweep.repeats"),
    ({"seeds": 1}, "sweep.seeds"),
    ({"grid": {"schedule.seed": [1, 2]}}, "sweep.grid.schedule.seed"),
    ({"grid": {"model.n_neurons": [2]}, "plot": {"x": "model.dtype", "metric": "m"}}, "sweep.plot.x"),
])
def test_bad_sweep_keys(tmp_path, sweep, key):
    with pytest.raises(SpecError) as err:
        expand(tiny(tmp_path, **sweep), "s.yaml")
    assert err.value.key.startswith(key), str(err.value)
    assert str(err.value).startswith("s.yaml: ")


@pytest.mark.parametrize("section", ["grid", "zip"])
@pytest.mark.parametrize("path, message", [("model.layers.7.params.learning_rate", "index 7 out of range"),
                                           ("model.layers.x.params.learning_rate", "expected a list index")])
def test_a_bad_list_index_under_a_swept_key_names_the_sweep_key(tmp_path, section, path, message):
    raw = tiny(tmp_path, **{section: {path: [0.1, 0.2]}})
    raw["model"] = {"layers": [{"rule": "softhebb", "n_neurons": 4}], "dtype": "float32"}
    with pytest.raises(SpecError) as err:
        expand(raw, "s.yaml")
    assert err.value.key == f"sweep.{section}.{path.rsplit('.', 2)[0]}" and message in err.value.message, str(err.value)


def test_dry_run_lists_runs(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny(tmp_path), sort_keys=False))
    assert main(["sweep", str(path), "--dry-run", "--set", "sweep.repeats=3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("tiny: 12 runs")
    seeds = derived_seeds(3, 3)
    assert lines[1].split("\t")[:2] == ["n_neurons=2,interaction=uniform,k=10,rep=0", f"seed={seeds[0]}"]
    assert len(lines) == 13 and not (tmp_path / "out").exists()


def _table(sweep):
    with open(sweep.directory / "sweep.csv", newline="") as fh:
        return {r["name"]: r for r in csv.DictReader(fh)}


@pytest.mark.parametrize("executor", [InProcess(), Local(workers=2)], ids=["inprocess", "local"])
def test_tiny_sweep_with_a_failing_run(tmp_path, executor):
    raw = tiny(tmp_path, seed=1, grid={"model.n_neurons": [2, 3]},
               zip={"data.params.k": [10, 900]})  # k=900 > 400 faces: fails when the data is drawn
    sweep = expand(raw)
    records = run_sweep(sweep, executor, log=lambda *a: None)
    status = {r["name"]: r["status"] for r in records}
    assert status == {"n_neurons=2,k=10": "completed", "n_neurons=2,k=900": "failed",
                      "n_neurons=3,k=10": "completed", "n_neurons=3,k=900": "failed"}
    rows = _table(sweep)
    assert list(rows) == [r.name for r in sweep.runs]
    bad = rows["n_neurons=3,k=900"]
    assert "data.params.k" in bad["message"] and "900" in bad["message"] and bad["network.capacity"] == ""
    good = rows["n_neurons=3,k=10"]
    assert good["model.n_neurons"] == "3" and good["seed"] == str(sweep.runs[0].seed)
    with h5py.File(sweep.directory / "n_neurons=3,k=10" / "run.h5", "r") as f:
        assert f.attrs["status"] == "completed" and f["final/weights"].shape[0] == 3
    # the table's metric is the run's own final metric
    saved = json.loads((sweep.directory / "n_neurons=3,k=10" / "sweep-run.json").read_text())
    assert float(good["network.mean_selectivity"]) == pytest.approx(saved["metrics"]["network.mean_selectivity"])


def test_same_run_same_trajectory_on_both_executors(tmp_path):
    runs = []
    for sub, executor in (("a", InProcess()), ("b", Local(workers=1))):
        raw = tiny(tmp_path / sub, seed=5, grid={"model.n_neurons": [3]})
        sweep = expand(raw)
        run_sweep(sweep, executor, log=lambda *a: None)
        with h5py.File(sweep.runs[0].output_dir / "run.h5", "r") as f:
            runs.append(f["final/weights"][:])
    np.testing.assert_array_equal(runs[0], runs[1])


def test_resume_skips_finished_runs(tmp_path):
    raw = tiny(tmp_path, seed=2, repeats=2, grid={"model.n_neurons": [2]})
    sweep = expand(raw)
    first = run_sweep(sweep, InProcess(), log=lambda *a: None)
    assert [r["status"] for r in first] == ["completed", "completed"]
    # mark one run unfinished: only that one runs again
    h5 = sweep.runs[1].output_dir / "run.h5"
    with h5py.File(h5, "r+") as f:
        f.attrs["status"] = "interrupted"
    stamp = (sweep.runs[0].output_dir / "run.h5").stat().st_mtime_ns
    ran = []

    class Spy(InProcess):
        def map(self, fn, tasks):
            tasks = list(tasks)
            ran.extend(t.name for t in tasks)
            return super().map(fn, tasks)

    again = run_sweep(expand(raw), Spy(), log=lambda *a: None)
    assert ran == [sweep.runs[1].name]
    assert (sweep.runs[0].output_dir / "run.h5").stat().st_mtime_ns == stamp
    assert [r["status"] for r in again] == ["completed", "completed"]
    assert json.dumps(again[0], sort_keys=True) == json.dumps(first[0], sort_keys=True)  # reused, NaN included
    assert len(_table(sweep)) == 2


def test_plot_metric_means_and_error_bars(tmp_path):
    rows = [
        {"name": f"r{i}", "status": "completed", "model.n_neurons": str(n), "model.interaction": inter,
         "network.mean_selectivity": str(v)}
        for i, (n, inter, v) in enumerate([(5, "uniform", 1.0), (5, "uniform", 3.0), (9, "uniform", 4.0),
                                           (5, "binocular", 2.0), (9, "binocular", 6.0), (9, "binocular", 8.0)])
    ] + [{"name": "bad", "status": "failed", "model.n_neurons": "5", "model.interaction": "uniform",
          "network.mean_selectivity": ""}]
    got = curves(rows, "model.n_neurons", "network.mean_selectivity")
    assert set(got) == {"interaction=uniform", "interaction=binocular"}
    xs, mean, std = got["interaction=uniform"]
    np.testing.assert_array_equal(xs, [5, 9])
    np.testing.assert_allclose(mean, [2.0, 4.0])
    np.testing.assert_allclose(std, [1.0, 0.0])
    np.testing.assert_allclose(got["interaction=binocular"][1], [2.0, 7.0])
    out = plot_metric(rows, "model.n_neurons", "network.mean_selectivity", tmp_path / "fig.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from plasticity_kit.errors import DataError

    with pytest.raises(DataError, match="no metric 'fid.fid'"):
        curves(rows, "model.n_neurons", "fid.fid")


def test_cli_sweep_runs_and_plots(tmp_path, capsys):
    raw = tiny(tmp_path, seed=1, repeats=2, grid={"model.n_neurons": [2, 3]},
               plot={"x": "model.n_neurons", "metric": "network.mean_selectivity"})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["sweep", str(path), "--executor", "inprocess"]) == 0
    out = capsys.readouterr().out
    d = tmp_path / "out" / "tiny"
    assert (d / "network.mean_selectivity-vs-n_neurons.png").exists()
    assert (d / "examples-by-n_neurons.png").exists()
    assert len(read_table(d / "sweep.csv")) == 4 and "4 to run" in out
    assert main(["sweep", str(path), "--executor", "nope"]) == 2
    assert "--executor: unknown executor 'nope'" in capsys.readouterr().err


def test_dask_executor(tmp_path):
    pytest.importorskip("distributed")
    from plasticity_kit.executors import Dask

    raw = tiny(tmp_path, seed=1, grid={"model.n_neurons": [2]}, zip={"data.params.k": [10, 900]})
    records = run_sweep(expand(raw), Dask(workers=1), log=lambda *a: None)
    assert sorted(r["status"] for r in records) == ["completed", "failed"]


def test_study_specs_expand():
    from pathlib import Path

    specs = Path(__file__).resolve().parents[1] / "specs"
    counts = {}
    for name in ("olivetti-matrices", "olivetti-dataset-size", "olivetti-batch-size"):
        sweep = load_sweep(specs / f"{name}.yaml")
        counts[name] = len(sweep.runs)
        assert len({r.name for r in sweep.runs}) == len(sweep.runs)
    assert counts["olivetti-matrices"] == 2 * 2 * 5 * 5  # interaction × data type × N × repeats
    assert counts["olivetti-dataset-size"] == 6 * 5 * 5  # data type × N × repeats
    assert counts["olivetti-batch-size"] == 3 * 4


def test_run_refuses_a_sweep_spec():
    from helpers import cli

    out = cli("run", "specs/olivetti-batch-size.yaml", cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert out.returncode == 2
    assert "sweep: this spec describes a sweep: run it with 'plasticity-kit sweep" in out.stderr


def test_replicated_sweep_aggregates_and_shows_examples(tmp_path):
    """sweep.replicas trains R networks per run: the table has the per-run metric means, each run
    file the replica axis, and the example grid the first network's middle neuron (B, odd N)."""
    raw = tiny(tmp_path, seed=1, replicas=3, grid={"model.n_neurons": [3, 5]})
    raw["model"]["interaction"] = "binocular"
    sweep = expand(raw)
    rows = run_sweep(sweep, InProcess(), log=lambda *a: None)
    assert [r["status"] for r in rows] == ["completed", "completed"]
    assert all("network.mean_selectivity_mean" in r["metrics"] for r in rows)
    for run in sweep.runs:
        n = run.params["model.n_neurons"]
        with h5py.File(run.output_dir / "run.h5", "r") as f:
            assert f.attrs["replicas"] == 3
            images = f["final/synthetic_images"][()]
        assert images.shape == (3, n, 4096)
        np.testing.assert_array_equal(example_image(run.output_dir / "run.h5"), images[0, n // 2].reshape(64, 64))
    out = plot_examples(sweep, "model.n_neurons", tmp_path / "examples.png")
    assert out.exists() and out.stat().st_size > 1000
