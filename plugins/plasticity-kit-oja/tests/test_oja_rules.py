"""Conformance of the plugin's rules, using the suite plasticity-kit ships for rule authors.

Each class below inherits ~15 tests (registration through the entry point, options, state
dtypes and contiguity, step, determinism, transform, synthesize, divergence guard and a tiny
end-to-end run written to HDF5).  Run with ``python -m pytest`` in this folder after
``pip install -e .``.
"""
import numpy as np

from plasticity_kit.testing import RuleTestSuite, make_rule


class TestOja(RuleTestSuite):
    """Oja's subspace rule with its default options, apart from a faster learning rate."""

    rule = "oja"
    params = {"lr": 0.05}
    plugin_name = "oja"  # the entry-point name in pyproject.toml


class TestSanger(RuleTestSuite):
    """Sanger's rule, centring each batch, on a non-square input size (no image shape)."""

    rule = "sanger"
    params = {"lr": 0.05, "center": True}
    plugin_name = "oja"
    n_inputs = 10
    n_neurons = 3


def test_divergence_reports_runaway_weights():
    """Too large a learning rate makes the weights blow up; the guard says to lower lr."""
    rule = make_rule("oja", {"lr": 50.0}, n_inputs=16, n_neurons=4, dtype="float64")
    state = rule.init_state(np.random.default_rng(0))
    X = np.random.default_rng(1).random((8, 16))
    problem = None
    for _ in range(100):
        rule.step(state, X)
        problem = rule.divergence(state)
        if problem:
            break
    assert problem is not None and "lr" in problem
