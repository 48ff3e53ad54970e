"""The example rule plugin (plugins/plasticity-kit-oja), exercised as users meet it: installed,
found through its entry point, listed and run by the CLI; plus the science it claims.

The plugin must be installed (the README's set-up command); if it is not, every test here fails
saying so — a missing plugin is a broken checkout, not a reason to skip.
"""
from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from plasticity_kit import cli
from plasticity_kit.plugins import registry
from plasticity_kit.scheduler import train
from plasticity_kit.testing import make_rule

SETUP = 'pip install -e ".[dev]" -e plugins/plasticity-kit-oja'
PLUGIN = "oja"  # the entry-point name in plugins/plasticity-kit-oja/pyproject.toml


def require_plugin() -> importlib.metadata.EntryPoint:
    """The plugin's entry point, or a test failure telling how to install it."""
    found = [ep for ep in importlib.metadata.entry_points(group="plasticity_kit") if ep.name == PLUGIN]
    if not found:
        pytest.fail(
            "the example plugin plasticity-kit-oja is not installed (no entry point 'oja' in group "
            f"'plasticity_kit'): run the README's set-up command from the repository root: {SETUP}",
            pytrace=False)
    return found[0]


def run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    """``plasticity-kit ARGS`` in a fresh interpreter (the console script runs the same ``main``)."""
    return subprocess.run([sys.executable, "-m", "plasticity_kit", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


# ---------------------------------------------------------------- packaging and discovery

def test_entry_point_loads_the_plugin_module():
    ep = require_plugin()
    assert ep.value == "plasticity_kit_oja"
    module = ep.load()
    assert hasattr(module.register_rules, "plasticity_kit_impl"), "register_rules is not a @hookimpl"
    dist = importlib.metadata.distribution("plasticity-kit-oja")
    assert any(req.split(";")[0].strip().startswith("plasticity-kit") for req in dist.requires or []), (
        f"plasticity-kit-oja must depend on plasticity-kit, requires {dist.requires}")
    reg = registry()
    for name, cls in (("oja", module.Oja), ("sanger", module.Sanger)):
        assert reg.rules.classes.get(name) is cls, f"rule {name!r} is not the plugin's class"
        assert reg.rules.owners[name] == PLUGIN


def test_cli_plugins_lists_both_rules(tmp_path):
    require_plugin()
    proc = run_cli("plugins", "--kind", "rules", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {tuple(line.split()[:3]) for line in proc.stdout.splitlines()}
    for name in ("oja", "sanger"):
        assert (PLUGIN, "rules", name) in rows, f"no row '{PLUGIN} rules {name}' in:\n{proc.stdout}"
    assert ("plasticity_kit.default_plugins", "rules", "bcm") in rows, proc.stdout


def test_spec_naming_sanger_validates_and_runs_through_the_cli(tmp_path, capsys):
    require_plugin()
    spec = {
        "name": "faces-gha",
        "data": {"name": "olivetti", "params": {"select": "persons", "persons": [0]}},
        "model": {"rule": "sanger", "n_neurons": 3},
        "schedule": {"epochs": 3, "batch_size": 5, "seed": 1},
        "record": {"every": 2},
    }
    path = tmp_path / "gha.yaml"
    path.write_text(yaml.safe_dump(spec))

    # validate in this process: the rule's defaults are filled in from its options schema
    assert cli.main(["validate", str(path), "--print", "--set", "model.rule.params.lr=1e-4",
                     "--set", "model.rule.params.center=true"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["model"]["rule"] == {"name": "sanger", "params": {"lr": 1e-4, "center": True}}
    assert resolved["model"]["initializer"]["name"] == "glorot_normal"
    assert "optimizer" not in resolved["model"]  # the rule applies its own step

    # a misspelt option is caught with the schema's did-you-mean
    assert cli.main(["validate", str(path), "--set", "model.rule.params.centre=true"]) == 2
    assert "did you mean 'center'" in capsys.readouterr().err

    proc = run_cli("run", str(path), "--quiet", "--set", "model.rule.params.lr=1e-4",
                   "--set", "model.rule.params.center=true", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = tmp_path / "runs" / "faces-gha"
    assert (run_dir / "synthetic.png").is_file(), proc.stdout
    with h5py.File(run_dir / "run.h5", "r") as f:
        assert f.attrs["status"] == "completed", f.attrs["message"]
        assert yaml.safe_load(f["spec"].asstr()[()])["model"]["rule"]["name"] == "sanger"
        steps = f["trajectory/step"][()]
        weights = f["trajectory/weights"]
        assert steps[0] == 0 and steps[-1] == 3 * 2  # 10 images, batch 5: 2 steps per epoch
        assert weights.shape == (len(steps), 3, 64 * 64)
        assert not np.array_equal(weights[0], weights[-1])
        assert f["final/synthetic_images"].shape == (3, 64 * 64)


# ---------------------------------------------------------------- science

EIGENVALUES = (8.0, 4.0, 2.0, 0.5, 0.4, 0.3, 0.2, 0.1)   # top 3 well separated from each other and the rest
K = 3


def gaussian(seed: int, n: int = 2000, mean_direction: int | None = None, offset: float = 0.0):
    """Zero-mean (or offset) Gaussian samples with covariance Q diag(EIGENVALUES) Qᵀ, Q random."""
    rng = np.random.default_rng(seed)
    d = len(EIGENVALUES)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    X = (rng.normal(size=(n, d)) * np.sqrt(EIGENVALUES)) @ Q.T
    if mean_direction is not None:
        X += offset * Q[:, mean_direction]
    return X, Q


def leading_eigenvectors(X: np.ndarray, k: int, center: bool) -> np.ndarray:
    """Columns: the top-k eigenvectors (decreasing eigenvalue) of the data's (second-moment or
    covariance) matrix, by numpy.linalg.eigh."""
    Xc = X - X.mean(axis=0) if center else X
    _, V = np.linalg.eigh(Xc.T @ Xc / len(X))
    return V[:, ::-1][:, :k]


def learn(rule_name: str, X: np.ndarray, *, dtype="float64", lr=0.01, center=False, epochs=10, seed=0):
    """Train the installed rule with the core's scheduler; returns the final weights (float64)."""
    rule = make_rule(rule_name, {"lr": lr, "center": center}, n_inputs=X.shape[1], n_neurons=K, dtype=dtype)
    state = rule.init_state(np.random.default_rng(seed))
    outcome = train(rule, state, np.ascontiguousarray(X, dtype=dtype), epochs=epochs, batch_size=20,
                    shuffle=True, rng=np.random.default_rng(seed + 1))
    assert outcome.status == "completed", outcome.message
    return state["weights"].astype(np.float64)


def row_cosines(W: np.ndarray, V: np.ndarray) -> np.ndarray:
    """|cos| between row i of W and column i of V."""
    return np.abs(np.sum(W * V.T, axis=1)) / np.linalg.norm(W, axis=1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sanger_rows_converge_to_the_principal_components_in_order(dtype):
    require_plugin()
    X, _ = gaussian(seed=3)
    W = learn("sanger", X, dtype=dtype)
    V = leading_eigenvectors(X, K, center=False)
    cos = row_cosines(W, V)
    assert (cos > 0.99).all(), f"|cos(w_i, v_i)| = {cos}"
    assert np.allclose(np.linalg.norm(W, axis=1), 1.0, atol=0.05), np.linalg.norm(W, axis=1)


def test_oja_converges_to_an_orthonormal_basis_of_the_principal_subspace():
    require_plugin()
    X, _ = gaussian(seed=4)
    W = learn("oja", X)
    gram = W @ W.T
    assert np.abs(gram - np.eye(K)).max() < 0.02, f"W Wᵀ =\n{gram}"
    V = leading_eigenvectors(X, K, center=False)
    # cosines of the principal angles between span(rows of W) and span(top-K eigenvectors)
    basis, _ = np.linalg.qr(W.T)
    cosines = np.linalg.svd(V.T @ basis, compute_uv=False)
    assert cosines.min() > 0.99, f"principal-angle cosines {cosines}"


def test_center_option_finds_the_covariance_components_of_offset_data():
    """With a mean offset along a minor direction (|m|² = 16 > λ₁ = 8), the second-moment matrix's
    top eigenvector is the mean: centring is what recovers the covariance's components."""
    require_plugin()
    X, Q = gaussian(seed=5, mean_direction=5, offset=4.0)
    V = leading_eigenvectors(X, K, center=True)
    centred = learn("sanger", X, center=True)
    assert (row_cosines(centred, V) > 0.99).all(), row_cosines(centred, V)
    raw = learn("sanger", X, center=False, lr=0.005)
    assert row_cosines(raw, Q[:, [5]].repeat(K, axis=1))[0] > 0.99, "uncentred: first row should find the mean"
    assert row_cosines(raw, V)[0] < 0.2
